"""The contract every zoo model implements, so that extraction, probes and metrics never name a family.

Two small protocols (``docs/api.md`` documents them with every family's layers):

* :class:`Representable`: ``representations()`` names the layers a model exposes, with their
  per-image shapes; ``represent(x, names, mode)`` computes them for a preprocessed batch. Every
  model of the zoo implements it: the φ trunk, the VAEs, BiGAN, the classifier.
* :class:`GenerativeModel`: ``encode(x)`` (image -> the family's posterior, a named tuple whose
  ``code()`` is the decoder's input), ``decode(code)``, ``sample(num_samples)`` and
  ``reconstruct(x)``, on top of :class:`Representable`.
* :class:`RateModel`: ``rate(x)``, KL(q(z|x) ‖ p(z)) per image in nats (every VAE): what the
  rate / mutual-information metric of :mod:`patchvae.evaluation` averages.
* :class:`LikelihoodModel`: ``elbo_terms(x)`` and ``log_importance_weights(x, k)`` for models with a
  discrete likelihood over the 256 pixel values (bits per dimension, IWAE bounds).

Representation modes: ``"mean"`` (deterministic: posterior means, probabilities), ``"sample"``
(a draw from the posterior, noise from ``noise``), ``"embedding"`` (the distribution's parameters:
``[μ, σ]`` concatenated on the last axis for Gaussian latents, as Zhang et al. 2022's
"distribution embedding"; deterministic layers give their mean value).

This module also holds the plumbing that every φ-based family shares: the representations of the
ResNet trunk (stem, stages, feature map, pooled), computed in one pass.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, runtime_checkable

import torch

if TYPE_CHECKING:
    from .backbones import ResNetTrunk

__all__ = [
    "MODES",
    "ELBOTerms",
    "GenerativeModel",
    "LikelihoodModel",
    "NoiseFn",
    "RateModel",
    "Representable",
    "RepresentationInfo",
    "check_representation_names",
    "default_noise",
    "gaussian_latent_infos",
    "gaussian_representation",
    "trunk_representation_infos",
    "trunk_representations",
]

RepresentMode = Literal["mean", "sample", "embedding"]
#: the representation modes every model accepts
MODES: tuple[str, ...] = ("mean", "sample", "embedding")

#: ``noise(like, draw)``: a tensor shaped like ``like`` (B, ...), standard normal (``draw="normal"``)
#: or uniform on [0, 1) (``draw="uniform"``). ``extract_features`` passes per-image seeded noise so
#: that samples do not depend on the batch size.
NoiseFn = Callable[[torch.Tensor, str], torch.Tensor]


def default_noise(like: torch.Tensor, draw: str) -> torch.Tensor:
    """Fresh noise from torch's global generator (see :data:`NoiseFn`)."""
    return torch.rand_like(like) if draw == "uniform" else torch.randn_like(like)


@dataclass(frozen=True)
class RepresentationInfo:
    """One layer a model exposes through :meth:`Representable.represent`.

    Attributes:
        name: the layer name (``"pooled"``, ``"visibility"``, ``"latent"`` ...).
        shape: per-image shape for the model's input size (the batch axis excluded).
        description: what it is, in the paper's terms.
        stochastic: ``mode="sample"`` draws it from the posterior (else all modes agree, except
            ``"embedding"`` for the layers listed in ``embedding_shape``).
        embedding_shape: per-image shape under ``mode="embedding"`` when it differs from ``shape``.
    """

    name: str
    shape: tuple[int, ...]
    description: str
    stochastic: bool = False
    embedding_shape: tuple[int, ...] | None = None

    def shape_for(self, mode: str) -> tuple[int, ...]:
        """Per-image shape of this layer under ``mode``."""
        return self.embedding_shape if mode == "embedding" and self.embedding_shape is not None else self.shape


@runtime_checkable
class Representable(Protocol):
    """A model whose named layers can be extracted (every model of the zoo)."""

    def representations(self, input_size: tuple[int, int, int] | None = None) -> dict[str, RepresentationInfo]:
        """The layers :meth:`represent` computes, by name, with per-image shapes for ``input_size`` (C, H, W)."""
        ...

    def represent(
        self, x: torch.Tensor, names: Sequence[str], mode: str = "mean", noise: NoiseFn | None = None
    ) -> dict[str, torch.Tensor]:
        """The layers ``names`` of a preprocessed batch ``x`` (B, C, H, W), each (B, *shape), in one pass."""
        ...


@runtime_checkable
class GenerativeModel(Representable, Protocol):
    """A model with an encoder and a decoder (PatchVAE, β-VAE, BiGAN)."""

    def encode(self, x: torch.Tensor) -> Any:
        """Images (B, C, H, W) -> the family's posterior (a named tuple with a ``code()`` method)."""
        ...

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """A latent code (the posterior's ``code()``) -> images (B, C, H, W) in [-1, 1]."""
        ...

    def sample(self, num_samples: int, **kwargs: Any) -> torch.Tensor:
        """Images decoded from codes drawn from the prior, (num_samples, C, H, W) in [-1, 1]."""
        ...

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> the decoder's output for the posterior mean code (eval-mode forward)."""
        ...


class ELBOTerms(NamedTuple):
    """The two terms of the negative ELBO of each image, in nats: −ELBO = reconstruction_nll + kl."""

    reconstruction_nll: torch.Tensor  #: −log p(x | z), z ~ q(z | x) one sample per image, (B,)
    kl: torch.Tensor  #: KL(q(z | x) ‖ p(z)), (B,) (analytic where the family allows)


@runtime_checkable
class RateModel(Protocol):
    """A VAE whose rate KL(q(z|x) ‖ p(z)) can be computed per image."""

    def rate(self, x: torch.Tensor) -> torch.Tensor:
        """KL(q(z | x) ‖ p(z)) of a preprocessed batch (B, C, H, W), in nats, (B,)."""
        ...


@runtime_checkable
class LikelihoodModel(RateModel, Protocol):
    """A VAE with a discrete likelihood p(x | z) over the 256 values of each pixel (x in [-1, 1]).

    Bits per dimension are ``(reconstruction_nll + kl) / (C·H·W·ln 2)``.
    """

    def elbo_terms(self, x: torch.Tensor) -> ELBOTerms:
        """The negative-ELBO terms of a preprocessed batch (B, C, H, W), one posterior sample per image."""
        ...

    def log_importance_weights(self, x: torch.Tensor, num_samples: int) -> torch.Tensor:
        """log p(x | z_k) + log p(z_k) − log q(z_k | x) for k = 1..num_samples, z_k ~ q(z | x): (B, num_samples) nats."""
        ...


def check_representation_names(model: Any, names: Sequence[str], mode: str) -> list[str]:
    """Validated, de-duplicated ``names`` of ``model``'s representations; ValueError naming the close matches."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if isinstance(names, str):
        names = [names]
    known = list(model.representations())
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{type(model).__name__} has no layer {name!r}.{hint} Its layers: {known}")
    return list(dict.fromkeys(names))


# --------------------------------------------------------------------------- Gaussian latents, shared by the VAEs
def gaussian_latent_infos(dim: int, reference: str = "") -> dict[str, RepresentationInfo]:
    """``latent`` (μ / z / [μ, σ]) and ``latent_var`` (σ²) of a D-dimensional Gaussian posterior."""
    where = f", {reference}" if reference else ""
    return {
        "latent": RepresentationInfo(
            "latent", (dim,), f"z: μ (mean), z ~ N(μ, σ²) (sample), [μ, σ] (embedding{where})",
            stochastic=True, embedding_shape=(2 * dim,),
        ),
        "latent_var": RepresentationInfo("latent_var", (dim,), "σ², the posterior variance"),
    }


def gaussian_representation(mean: torch.Tensor, var: torch.Tensor, mode: str, noise: NoiseFn) -> torch.Tensor:
    """A Gaussian posterior N(μ, σ²) as a representation: μ (``"mean"``), μ + σ·ε with ε = ``noise(μ,
    "normal")`` (``"sample"``), or [μ, σ] concatenated on the last axis (``"embedding"``)."""
    if mode == "sample":
        return mean + var.sqrt() * noise(mean, "normal")
    if mode == "embedding":
        return torch.cat([mean, var.sqrt()], dim=-1)
    return mean


# --------------------------------------------------------------------------- φ, shared by every family
def trunk_representation_infos(trunk: ResNetTrunk, input_size: tuple[int, int, int]) -> dict[str, RepresentationInfo]:
    """The layers of φ for ``input_size`` (C, H, W): stem, each stage, the feature map and its pooled vector."""
    _, height, width = input_size
    infos: dict[str, RepresentationInfo] = {}
    names = ["stem", *trunk.stage_names]
    for name, info in zip(names, trunk.feature_info):
        what = "φ's stem (7×7/2 conv + BN + ReLU)" if name == "stem" else f"φ's residual stage {name}"
        r = info["reduction"]
        infos[name] = RepresentationInfo(name, (info["num_chs"], height // r, width // r), what)
    s = trunk.stride
    infos["features"] = RepresentationInfo(
        "features", (trunk.num_features, height // s, width // s), "f = φ(x), the last stage of the trunk"
    )
    infos["pooled"] = RepresentationInfo("pooled", (trunk.num_features,), "the global average of φ(x)")
    return infos


def trunk_representations(trunk: ResNetTrunk, x: torch.Tensor, names: Sequence[str]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Run φ once on ``x`` (B, C, H, W); return the requested trunk layers and the feature map f = φ(x).

    The operations are exactly those of ``trunk.forward_features`` (same results, bitwise); the stem
    and stage outputs are kept on the way when ``names`` asks for them. ``"pooled"`` is computed in
    float32.
    """
    out: dict[str, torch.Tensor] = {}
    wanted = set(names)
    x = trunk.act1(trunk.bn1(trunk.conv1(x)))
    if "stem" in wanted:
        out["stem"] = x
    x = trunk.maxpool(x)
    for name in trunk.stage_names:
        x = getattr(trunk, name)(x)
        if name in wanted:
            out[name] = x
    if "features" in wanted:
        out["features"] = x
    if "pooled" in wanted:
        out["pooled"] = x.float().mean(dim=(2, 3))
    return out, x


def model_input_size(model: Any, input_size: tuple[int, int, int] | None) -> tuple[int, int, int]:
    """``input_size`` if given, else the model's ``data_config.input_size``, else (in_chans, img_size or 32, ...)."""
    if input_size is not None:
        if len(input_size) != 3 or min(int(v) for v in input_size) < 1:
            raise ValueError(f"input_size must be (C, H, W) with positive entries, got {input_size!r}")
        return (int(input_size[0]), int(input_size[1]), int(input_size[2]))
    config = getattr(model, "data_config", None)
    if config is not None:
        return tuple(config.input_size)  # type: ignore[return-value]
    side = int(getattr(model, "img_size", 32) or 32)
    return (int(model.in_chans), side, side)


def select(values: Mapping[str, torch.Tensor], names: Sequence[str]) -> dict[str, torch.Tensor]:
    """The entries ``names`` of ``values``, in that order."""
    return {name: values[name] for name in names}
