"""PretrainedCfg: one set of published weights, or an architecture's defaults when it has none."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..data.config import CIFAR, FASHION_MNIST, DataConfig

__all__ = ["PretrainedCfg"]


@dataclass(frozen=True)
class PretrainedCfg:
    """Where a set of weights lives, what the model needs to use it, how it was made and how it scores.

    Resolution order of the weights for ``pretrained=True``: an explicit ``checkpoint_path``; the
    packaged ``file`` (relative to the ``weights/`` folder shipped in the wheel); the Hugging Face
    Hub repo ``hf_hub_id`` at the pinned ``hf_revision``.
    """

    architecture: str = ""
    tag: str = ""
    # where the weights are
    file: str | None = None
    sha256: str | None = None
    hf_hub_id: str | None = None
    hf_revision: str | None = None
    # what the model needs
    model_args: Mapping[str, Any] = field(default_factory=dict)
    data_config: DataConfig | None = None
    input_convs: tuple[str, ...] = ()  #: convs reading images, adapted when ``in_chans`` differs from the weights
    output_convs: tuple[str, ...] = ()  #: (transposed) convs writing images, adapted likewise
    num_classes: int | None = None
    # provenance and results
    dataset: str | None = None
    recipe: str | None = None
    command: str | None = None  #: the exact command that trained the weights
    epochs: int | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    eval_command: str | None = None  #: the command(s) that reproduce ``metrics``
    protocol: str | None = None  #: how ``metrics`` were measured (e.g. "paper Table 1: conv5 frozen, CIFAR-100 test top-1")
    num_params: int | None = None
    license: str = "mit"
    description: str | None = None
    notes: tuple[str, ...] = ()
    paper: str = "gupta2020"  #: key of patchvae.models._papers.PAPERS: the source the card cites

    @property
    def name(self) -> str:
        return f"{self.architecture}.{self.tag}" if self.tag else self.architecture

    @property
    def has_weights(self) -> bool:
        return bool(self.file or self.hf_hub_id)

    def replace(self, **changes: Any) -> PretrainedCfg:
        return replace(self, **changes)

    def to_timm(self) -> dict[str, Any]:
        """This cfg in timm's ``pretrained_cfg`` vocabulary (``None`` values left out).

        The preprocessing keys come from :meth:`DataConfig.to_timm`, so ``timm.data.create_transform``
        on them is :func:`patchvae.data.create_transform` of ``data_config``.
        """
        out: dict[str, Any] = {
            "architecture": self.architecture,
            "tag": self.tag or None,
            "hf_hub_id": self.hf_hub_id,
            "file": self.file,
            "num_classes": self.num_classes,
            "first_conv": self.input_convs[0] if self.input_convs else None,
            "license": self.license,
            "description": self.description,
            **(self.data_config.to_timm() if self.data_config is not None else {}),
        }
        return {k: v for k, v in out.items() if v is not None}

    def get(self, key: str, default: Any = None) -> Any:
        """timm's read access to a pretrained cfg: ``timm.data.resolve_data_config(model=model)`` reads
        ``model.pretrained_cfg.get("input_size")`` / ``["input_size"]`` etc. Keys are those of :meth:`to_timm`."""
        return self.to_timm().get(key, default)

    def __getitem__(self, key: str) -> Any:
        timm_cfg = self.to_timm()
        if key not in timm_cfg:
            raise KeyError(f"{key!r} is not set in the cfg of {self.name!r}; its keys: {sorted(timm_cfg)}")
        return timm_cfg[key]

    def __contains__(self, key: object) -> bool:
        return key in self.to_timm()

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (what goes into a published ``config.json``)."""
        out = asdict(self)
        out["data_config"] = self.data_config.to_dict() if self.data_config is not None else None
        out["model_args"] = dict(self.model_args)
        out["metrics"] = dict(self.metrics)
        out["notes"] = list(self.notes)
        out["input_convs"], out["output_convs"] = list(self.input_convs), list(self.output_convs)
        return out


FMNIST_PROTOCOL = (
    "Fashion-MNIST test split (10,000 images), top-1/top-5 in %. Fine-tuning (paper §4 protocol, scaled "
    "down): supplement Table 5 classifier on φ, Table 1 columns Conv1/Conv3/Conv5 (first 1/3/5 units of φ "
    "frozen), fashion_mnist preset: SGD momentum 0.9, weight decay 1e-4, batch 128, lr 1e-2 divided by 10 "
    "after epochs 4 and 8, 12 epochs, float32, seed 0. Probes: globally average-pooled φ features; linear = "
    "L-BFGS logistic regression (L2 chosen on 10% of the training split), kNN = cosine, k=20, weighted votes."
)


def fmnist_provenance(name: str, recipe: str, epochs: int = 20) -> dict[str, Any]:
    """How the packaged Fashion-MNIST weights ``name`` were trained and evaluated (docs/results.md)."""
    return {
        "dataset": "fashion_mnist",
        "recipe": recipe,
        "command": f"patchvae train {recipe} --out runs/{recipe}",
        "epochs": epochs,
        "protocol": FMNIST_PROTOCOL,
        "eval_command": (f"patchvae finetune {name} --preset conv1 conv3 conv5 --seed 0\n"
                         f"patchvae eval {name} --probe all --seed 0"),
    }


def fmnist_weights(name: str, recipe: str) -> dict[str, Any]:
    """``PretrainedCfg`` fields shared by the packaged Fashion-MNIST weights ``name`` (``weights/<name>/``)."""
    return {"file": f"{name}/model.safetensors", "model_args": {"in_chans": 1}, "data_config": FASHION_MNIST,
            **fmnist_provenance(name, recipe)}


CIFAR10_PROTOCOL = (
    "CIFAR-10 (JPEG copy, quality 75; shared/data/cifar10-jpeg.zip) test split (10,000 images), top-1/top-5 in %. "
    "Fine-tuning: supplement Table 5 classifier on φ, Conv5 (all of φ frozen), cifar10 preset (the paper's "
    "protocol scaled down): SGD momentum 0.9, weight decay 1e-4, batch 128, lr 1e-2 divided by 10 after epochs 5 "
    "and 10, 15 epochs, the authors' BatchNorm handling and head init, float32, seed 0. Probes: globally "
    "average-pooled φ features of the 50,000 training images; linear = L-BFGS logistic regression (L2 chosen on "
    "10% of the training split), kNN = cosine, k=20, weighted votes. Part health: std of P(visible) over the "
    "10,000 test images x locations > 0.02."
)
CIFAR10_DATA_DIR = "../shared/data/cifar10-jpeg.zip"
#: pretraining epochs of the packaged CIFAR-10 weights (docs/reproduce/cifar10_weights.sh; the paper: 90)
CIFAR10_EPOCHS = 30


def cifar10_provenance(name: str, recipe: str, epochs: int, threads: int | None = None) -> dict[str, Any]:
    """How the packaged CIFAR-10 weights ``name`` were trained and evaluated (docs/results.md, CIFAR-10).

    ``threads``: the run's ``--threads`` (1: two runs side by side on the 2-core machine; 2: one run alone on it);
    None: the command without it (and with images, the CLI default).
    """
    data = f"--data-dir {CIFAR10_DATA_DIR}" + (f" --threads {threads} --no-images" if threads else "")
    probes = "linear knn parts rate intrinsic_dim" if name.startswith("patchvae_") else "linear knn rate intrinsic_dim"
    return {
        "dataset": "cifar10",
        "recipe": recipe,
        "command": f"patchvae train {recipe} {data} --epochs {epochs} --out runs/{recipe}",
        "epochs": epochs,
        "protocol": CIFAR10_PROTOCOL,
        "eval_command": (f"patchvae finetune {name} --data-dir {CIFAR10_DATA_DIR} --preset conv5 --seed 0\n"
                         f"patchvae eval {name} --data-dir {CIFAR10_DATA_DIR} --probe {probes} --seed 0"),
    }


def cifar10_weights(name: str, recipe: str, epochs: int = CIFAR10_EPOCHS, threads: int = 1) -> dict[str, Any]:
    """``PretrainedCfg`` fields shared by the packaged CIFAR-10 weights ``name`` (``weights/<name>/``); by default
    those of the shipped budget: :data:`CIFAR10_EPOCHS` epochs, one thread per run."""
    return {"file": f"{name}/model.safetensors", "model_args": {"in_chans": 3}, "data_config": CIFAR,
            **cifar10_provenance(name, recipe, epochs, threads)}


SIXT2018_PROTOCOL = (
    "CIFAR-10 (JPEG copy, quality 75; shared/data/cifar10-jpeg.zip), under our architecture (Sixt 2018 gives none). "
    "Patch models: M = E KL(q(z|patch) || N(0, I)) in bits and per pixel (/p^2), cross entropy in bits/dim over 3p^2 "
    "(reconstruction NLL only, and -ELBO), on 50,000 seeded random test patches (seed 0). Linear classification "
    "(Sixt §6): mu of the dense stride-1 map (patch models; valid borders) or of the latent (global VAEs), "
    "flattened, standardised; softmax regression by plain SGD lr 0.01, batch 100, early stopping (patience 5, at "
    "most 100 epochs) on 5,000 held-out images of a seeded class-stratified subset of 15,000 training images "
    "(10,000 fitted); top-1 on the 10,000 test images."
)


def _trained_here_provenance(recipe: str, run: str, epochs: int, protocol: str, eval_command: str) -> dict[str, Any]:
    """Provenance of weights trained here on CIFAR-10 (JPEG copy) with one thread and seed 0."""
    return {
        "dataset": "cifar10",
        "recipe": recipe,
        "command": f"patchvae train {recipe} --data-dir {CIFAR10_DATA_DIR} --threads 1 --seed 0 --out runs/{run}",
        "epochs": epochs,
        "protocol": protocol,
        "eval_command": eval_command,
    }


def sixt2018_provenance(name: str, recipe: str, run: str, epochs: int) -> dict[str, Any]:
    """How the packaged Sixt 2018 weights ``name`` were trained and evaluated (docs/results.md, Sixt 2018)."""
    return _trained_here_provenance(
        recipe, run, epochs, SIXT2018_PROTOCOL,
        f"python docs/reproduce/sixt2018_tables.py --data-dir {CIFAR10_DATA_DIR} --runs runs "
        "--out docs/results/sixt2018_cifar10.json")


ZHANG2022_CIFAR10_PROTOCOL = (
    "CIFAR-10 (JPEG copy, quality 75; shared/data/cifar10-jpeg.zip) test split (10,000 images), seed 0, one run. "
    "BPD = single-sample -ELBO in bits/dim (D = 3072); MI = rate E_x KL(q(z|x) || N(0, I)) in nats; conditional "
    "entropy of q(z|x) in nats; intrinsic dimension = PCA components of the posterior means with explained-variance "
    "ratio > 1e-3. Probes on the posterior mean mu (64-d) of the 50,000 training images: linear = liblinear "
    "LinearSVC (the paper: SVC(kernel='linear')), nonlinear = the paper's MLP-200 (100 epochs)."
)


def zhang2022_provenance(name: str, recipe: str, run: str, epochs: int) -> dict[str, Any]:
    """How the packaged Zhang et al. 2022 CIFAR-10 weights ``name`` were trained and evaluated (docs/results.md)."""
    variant = recipe.removeprefix("zhang2022_cifar10_")
    return _trained_here_provenance(
        recipe, run, epochs, ZHANG2022_CIFAR10_PROTOCOL,
        f"patchvae eval {name} --dataset cifar10 --data-dir {CIFAR10_DATA_DIR} --seed 0 --probe bpd rate "
        f"conditional_entropy intrinsic_dim linear_svm_fast nonlinear --out docs/results/zhang2022_cifar10_{variant}.json")
