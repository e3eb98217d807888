"""The Recipe dataclass: everything needed to reproduce one unsupervised training run."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

__all__ = ["Recipe", "parse_overrides"]

Family = Literal["vae", "vae_gan", "bigan"]
GAN_UPDATES = ("authors", "joint")


@dataclass(frozen=True)
class Recipe:
    """One unsupervised training run of the paper (or of its Fashion-MNIST analogue).

    Optimisation defaults are the paper's (§4 "Training details"): Adam, lr 1e-4, batch 128; Adam
    betas (0.5, 0.999) as in the authors' ``run.py`` (the paper does not state them). The
    relaxed-Bernoulli temperature starts at 1.0 and anneals at 3e-5 per step to a floor of 0.1
    (see :class:`patchvae.losses.TemperatureSchedule`).
    """

    name: str
    description: str
    family: Family  #: "vae" (β-VAE or PatchVAE), "vae_gan" (+ image discriminator), "bigan"
    model: str  #: registry architecture, e.g. "patchvae_resnet9"
    dataset: str  #: "fashion_mnist", "cifar100", "indoor67", "places205", "imagenet", "imagefolder"
    epochs: int
    model_args: Mapping[str, Any] = field(default_factory=dict)
    #: "elbo": the negative ELBO of a model with a discrete likelihood (Zhang et al. 2022 PixelVAEs; inputs are
    #: the model's own preprocessing, see patchvae.training.data)
    #: "m2": the semi-supervised M2 bound of Zhang et al. 2022 §6 (labelled subset: objective_args.labels_per_class)
    objective: Literal["patchvae", "beta_vae", "bigan", "elbo", "m2"] = "patchvae"
    objective_args: Mapping[str, Any] = field(default_factory=dict)  #: e.g. beta_vis, weighted (L_w)
    split: str = "train"  #: dataset split used for unsupervised training
    image_size: int = 32
    batch_size: int = 128  #: global batch (split across DDP processes)
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 0.0
    gan_weight: float = 1.0  #: weight of the generator's adversarial term ('-GAN' variants)
    disc_lr: float = 1e-4
    temperature_start: float = 1.0
    temperature_anneal_rate: float = 3e-5
    temperature_floor: float = 0.1
    temperature_mode: Literal["reference", "exponential"] = "reference"
    seed: int = 0
    amp: Literal["auto", "bf16", "fp16", "none"] = "auto"  #: autocast dtype ("auto": bf16 where the hardware has it)
    channels_last: bool = True
    compile: Literal["none", "default", "reduce-overhead", "max-autotune"] = "none"  #: torch.compile the step
    fused_optimizer: bool = True  #: fused Adam kernels on CPU/CUDA (False: torch's default per-tensor loop)
    gemm_weight_grads: bool = True  #: bf16 on CPU: small-map transposed-conv weight gradients by one GEMM
    paper_ref: str = ""  #: where the run comes from, e.g. "Table 1, PatchVAE + L_w, CIFAR100"
    finetune_protocol: str = ""  #: evaluation protocol preset (patchvae.evaluation) matching the dataset
    notes: tuple[str, ...] = ()
    #: 0: an epoch is one pass over the training set; N: exactly N steps, cycling through reshuffled passes
    #: (the authors' run.py counts 390 steps per epoch on every dataset; patchvae.data.FixedStepBatches)
    steps_per_epoch: int = 0
    #: how a '-GAN' step updates the VAE. "authors": as the authors' run.py, an Adam step on reconstruction + KL,
    #: then a second forward pass and a second Adam step on gan_weight × the generator loss plus the first step's
    #: gradients (run.py does not zero them in between); "joint": one Adam step on reconstruction + KL +
    #: gan_weight × the generator loss (one forward pass; how our CIFAR-10 '-GAN' rows were trained)
    gan_update: Literal["authors", "joint"] = "authors"

    #: what a recipe saved before a field existed meant, where that differs from the field's default today
    #: (every '-GAN' run before ``gan_update`` took the joint update)
    LEGACY_VALUES: ClassVar[Mapping[str, Any]] = types.MappingProxyType({"gan_update": "joint"})

    def __post_init__(self) -> None:
        if self.family not in ("vae", "vae_gan", "bigan"):
            raise ValueError(f"{self.name}: family must be 'vae', 'vae_gan' or 'bigan', got {self.family!r}")
        if (self.family == "bigan") != (self.objective == "bigan"):
            raise ValueError(f"{self.name}: the 'bigan' family goes with the 'bigan' objective")
        for attr in ("epochs", "batch_size", "image_size"):
            if getattr(self, attr) < 1:
                raise ValueError(f"{self.name}: {attr} must be >= 1, got {getattr(self, attr)}")
        if isinstance(self.steps_per_epoch, bool) or not isinstance(self.steps_per_epoch, int) or self.steps_per_epoch < 0:
            raise ValueError(f"{self.name}: steps_per_epoch must be 0 (one pass per epoch) or a number of steps >= 1, "
                             f"got {self.steps_per_epoch!r}")
        if not self.lr > 0:
            raise ValueError(f"{self.name}: lr must be > 0, got {self.lr}")
        if self.gan_update not in GAN_UPDATES:
            raise ValueError(f"{self.name}: gan_update must be one of {GAN_UPDATES}, got {self.gan_update!r}")

    def replace(self, **changes: Any) -> Recipe:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model_args"], d["objective_args"] = dict(self.model_args), dict(self.objective_args)
        d["betas"], d["notes"] = list(self.betas), list(self.notes)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Recipe:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown recipe fields {sorted(unknown)}")
        d = dict(d)
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        if "notes" in d:
            d["notes"] = tuple(d["notes"])
        return cls(**d)

    def with_overrides(self, overrides: Mapping[str, Any] | Sequence[str]) -> Recipe:
        """A copy with fields changed: ``{"epochs": 2}``, or ``["epochs=2", "objective_args.beta_vis=5"]``."""
        if not isinstance(overrides, Mapping):
            overrides = parse_overrides(overrides)
        changes: dict[str, Any] = {}
        for key, value in overrides.items():
            top, _, sub = key.partition(".")
            if top in ("model_args", "objective_args") and sub:
                merged = dict(changes.get(top, getattr(self, top)))
                merged[sub] = value
                changes[top] = merged
            else:
                changes[top] = _coerce(self, top, value)
        return self.replace(**changes)


def _coerce(recipe: Recipe, name: str, value: Any) -> Any:
    fields = {f.name: f for f in dataclasses.fields(Recipe)}
    if name not in fields:
        raise ValueError(f"unknown recipe field {name!r}; fields: {sorted(fields)}")
    if not isinstance(value, str):
        return value
    hint = typing.get_type_hints(Recipe)[name]
    origin = typing.get_origin(hint)
    if hint is bool:
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{name} expects true/false, got {value!r}")
    if hint in (int, float):
        return hint(value)
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise ValueError(f"{name} must be one of {typing.get_args(hint)}, got {value!r}")
        return value
    if origin in (tuple, Mapping, dict, types.UnionType) or hint is not str:
        return _json_value(value)
    return value


def _json_value(text: str) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return tuple(value) if isinstance(value, list) else value


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["epochs=2", "objective_args.beta_vis=5"]`` -> ``{"epochs": "2", "objective_args.beta_vis": 5}``.

    Values of top-level fields stay strings (converted with the field's type); values inside
    ``model_args``/``objective_args`` are parsed as JSON when possible (numbers, true/false, lists).
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} must look like key=value (e.g. epochs=20 or objective_args.beta_vis=5)")
        out[key.strip()] = _json_value(value) if "." in key else value
    return out
