"""Legacy PyTorch checkpoints (``.pt``/``.pth``) and the authors' key names.

Files are read with ``torch.load(weights_only=True)``, never full pickle. Accepted layouts: a bare
state dict, or a dict holding one under ``state_dict``/``model``/``model_state_dict``/``vae_dict``
(the authors' ``run.py`` saves ``{'args': Namespace, 'vae_dict': ..., 'loss': ..., ['disc_dict']}``).
``module.`` (DataParallel/DDP) and ``_orig_mod.`` (torch.compile) prefixes are stripped.

State dicts in the key layout of the authors' reference implementation (their ``PatchyVAE`` and
``VAE`` classes with a ResNet encoder and the pyramid decoder) are detected and renamed to ours,
whatever the container (``.pt`` or ``.safetensors``). The architecture arguments (N, d_p, D, image
channels, ...) are read from the tensor shapes, and the preprocessing from the saved ``args``
when the checkpoint has them.
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..data.config import IMAGENET_NORMALIZATION, MINUS_ONE_TO_ONE, DataConfig
from ._weights import WeightsError

__all__ = [
    "AUTHORS_PATCHVAE",
    "AUTHORS_VAE",
    "ConvertedWeights",
    "convert_state_dict",
    "detect_format",
    "load_legacy_checkpoint",
    "read_legacy_checkpoint",
    "strip_prefixes",
    "unwrap_state_dict",
]

log = logging.getLogger(__name__)

_CONTAINER_KEYS = ("state_dict", "model_state_dict", "model", "vae_dict", "module")
_PREFIXES = ("module.", "_orig_mod.")

AUTHORS_PATCHVAE = "authors-patchyvae"  #: the authors' ``PatchyVAE`` (model.py)
AUTHORS_VAE = "authors-vae"  #: the authors' ``VAE`` (their β-VAE baseline)
NATIVE = "patchvae"
UNKNOWN = "unknown"

# children of torchvision's resnet18 kept by the authors' ``features`` Sequential, by index
_RESNET_CHILDREN = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}
_PYRAMID_CONV = re.compile(r"^pyramid-(\d+)-(\d+)-conv$")
_PYRAMID_BN = re.compile(r"^pyramid-(\d+)-batchnorm$")


@dataclass
class ConvertedWeights:
    """A state dict in our key layout, with what its file says about the model that made it."""

    state: dict[str, torch.Tensor]
    source_format: str = NATIVE  #: :data:`AUTHORS_PATCHVAE`, :data:`AUTHORS_VAE`, ``"patchvae"`` or ``"unknown"``
    family: str | None = None  #: model class the weights belong to (``"PatchVAE"``, ``"BetaVAE"``), when known
    model_args: dict[str, Any] = field(default_factory=dict)  #: constructor arguments read from the file
    data_config: DataConfig | None = None  #: preprocessing read from the authors' saved ``args``


# --------------------------------------------------------------------------- containers
def strip_prefixes(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove ``module.`` / ``_orig_mod.`` prefixes (in any order and number) from every key."""
    out = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for prefix in _PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix) :], True
        out[key] = value
    return out


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def unwrap_state_dict(obj: Any, source: str | os.PathLike) -> dict[str, torch.Tensor]:
    if _is_state_dict(obj):
        return strip_prefixes(obj)
    if isinstance(obj, Mapping):
        for key in _CONTAINER_KEYS:
            if key in obj and _is_state_dict(obj[key]):
                return strip_prefixes(obj[key])
    keys = list(obj)[:8] if isinstance(obj, Mapping) else type(obj).__name__
    raise WeightsError(
        f"{source} holds no state dict (found {keys}); expected a state dict or a dict with one of {_CONTAINER_KEYS}"
    )


def _safe_globals() -> list[Any]:
    """Plain-data globals an authors' checkpoint pickles besides tensors: their argparse ``args``
    (numpy scalars, e.g. the annealed temperature, and a ``torch.device``)."""
    import numpy as np

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar
    dtypes = [type(np.dtype(t)) for t in ("f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "?")]
    allowed: list[Any] = [argparse.Namespace, scalar, np.dtype, *dtypes]
    if scalar.__module__ != "numpy.core.multiarray":  # checkpoints written under numpy 1.x name it so
        allowed.append((scalar, "numpy.core.multiarray.scalar"))
    return allowed


def _load(path: str | os.PathLike) -> Any:
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise WeightsError(
            f"{path} contains pickled Python objects that cannot be loaded safely (torch.load(weights_only=True) "
            f"refused: {str(err).splitlines()[0]}). Re-save only the tensors (torch.save(model.state_dict(), ...)) "
            "or convert to safetensors, then load that file."
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise WeightsError(
            f"cannot read {path} as a PyTorch checkpoint ({err}); the file is truncated or damaged: copy or "
            "download it again"
        ) from err


def load_legacy_checkpoint(path: str | os.PathLike) -> ConvertedWeights:
    """Read a legacy checkpoint safely, unwrap it and convert the authors' key names (see module docs)."""
    obj = _load(path)
    state = unwrap_state_dict(obj, path)
    args = obj.get("args") if isinstance(obj, Mapping) else None
    if isinstance(obj, Mapping) and "disc_dict" in obj:
        log.info("%s also holds a GAN discriminator ('disc_dict'); only the VAE ('vae_dict') is loaded", path)
    return convert_state_dict(state, path, args=args)


def read_legacy_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """State dict of a legacy checkpoint, in our key layout."""
    return load_legacy_checkpoint(path).state


# --------------------------------------------------------------------------- the authors' layout
def detect_format(state: Mapping[str, torch.Tensor]) -> str:
    """Which key layout ``state`` uses: ours, the authors' ``PatchyVAE`` or ``VAE``, or unknown."""
    keys = set(state)
    if "vis_mean_logit.0.weight" in keys and "app_mu.0.weight" in keys:
        return AUTHORS_PATCHVAE
    if "reduce.0.weight" in keys and "app_mu.0.weight" in keys:
        return AUTHORS_VAE
    if any(k.startswith(("encoder.", "decoder.", "backbone.", "conv1.", "features.conv0")) for k in keys):
        return NATIVE
    return UNKNOWN


def _split_param(key: str) -> tuple[str, str]:
    module, _, param = key.rpartition(".")
    return module, param


def _feature_key(rest: str, source: Any) -> str:
    index, _, tail = rest.partition(".")
    if index not in _RESNET_CHILDREN:
        raise WeightsError(
            f"{source}: the authors' encoder key 'features.{rest}' is not a ResNet-18 part. Only their "
            "encoder_arch='resnet'/'resnet18' checkpoints have an architecture in the zoo (pyramid/alexnet/"
            "resnet50 encoders do not)."
        )
    return f"{_RESNET_CHILDREN[index]}.{tail}"


def _pyramid_names(modules: set[str], source: Any) -> dict[str, str]:
    """Authors' pyramid-decoder module names -> ours (``stem.conv``, ``blocks.k.conv``, ``head`` ...)."""
    convs = sorted(((int(m[1]), int(m[2])) for m in map(_PYRAMID_CONV.match, modules) if m), reverse=True)
    names = {"input-conv": "stem.conv", "input-batchnorm": "stem.bn", "ouput-conv": "head", "output-conv": "head"}
    for idx, (chs_in, chs_out) in enumerate(convs):
        names[f"pyramid-{chs_in}-{chs_out}-conv"] = f"blocks.{idx}.conv"
        names[f"pyramid-{chs_out}-batchnorm"] = f"blocks.{idx}.bn"
    unknown = sorted(m for m in modules if m not in names)
    if unknown:
        raise WeightsError(f"{source}: unknown modules {unknown} in the authors' pyramid decoder; cannot convert")
    return names


def _rename(state: Mapping[str, torch.Tensor], fmt: str, source: Any) -> dict[str, torch.Tensor]:
    heads = (
        {"app_mu.0": "encoder.appearance_mean", "app_logvar.0": "encoder.appearance_logvar", "vis_mean_logit.0": "encoder.visibility"}
        if fmt == AUTHORS_PATCHVAE
        else {"app_mu.0": "encoder.mean", "app_logvar.0": "encoder.logvar", "reduce.0": "encoder.reduce.conv", "reduce.1": "encoder.reduce.bn"}
    )
    pyramid_prefix = "decoder." if fmt == AUTHORS_PATCHVAE else "decoder.3."
    pyramid_modules = {
        _split_param(k[len(pyramid_prefix) :])[0] for k in state if k.startswith(pyramid_prefix) and "-" in k
    }
    pyramid = _pyramid_names(pyramid_modules, source)
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in state.items():
        module, param = _split_param(key)
        if key.startswith("features."):
            new = f"encoder.backbone.{_feature_key(key[len('features.'):], source)}"
        elif module in heads:
            new = f"{heads[module]}.{param}"
        elif key.startswith(pyramid_prefix) and module[len(pyramid_prefix) :] in pyramid:
            new = f"decoder.{pyramid[module[len(pyramid_prefix):]]}.{param}"
        elif fmt == AUTHORS_VAE and module in ("decoder.0", "decoder.1"):
            new = f"decoder.expand.{'conv' if module == 'decoder.0' else 'bn'}.{param}"
        else:
            unknown.append(key)
            continue
        out[new] = value
    if unknown:
        raise WeightsError(f"{source}: cannot convert the authors' keys {unknown[:5]} (format {fmt})")
    return out


def _arg(args: Any, name: str, default: Any = None) -> Any:
    return getattr(args, name, default) if args is not None else default


def _authors_data_config(args: Any, in_chans: int) -> DataConfig | None:
    """Preprocessing of the authors' run: ``--inet`` normalisation, 32×32 for CIFAR-100/MNIST, else ``--size``."""
    if args is None or not hasattr(args, "inet"):
        return None
    dataset = str(_arg(args, "dataset", ""))
    size = 32 if dataset in ("cifar100", "mnist", "shapes", "binshapes", "bincircles") else int(_arg(args, "size", 64))
    if bool(args.inet) and in_chans == 3:
        mean, std = IMAGENET_NORMALIZATION
    else:
        mean, std = (MINUS_ONE_TO_ONE[0],) * in_chans, (MINUS_ONE_TO_ONE[1],) * in_chans
    return DataConfig((in_chans, size, size), tuple(mean), tuple(std), resize_mode="resize_crop")


def _backbone_name(state: Mapping[str, torch.Tensor], source: Any) -> str:
    stages = {k.split(".")[2] for k in state if k.startswith("encoder.backbone.layer")}
    if stages == {"layer1", "layer2"}:
        return "resnet9"
    if stages == {"layer1", "layer2", "layer3", "layer4"}:
        return "resnet18"
    raise WeightsError(
        f"{source}: the authors' encoder keeps ResNet-18 stages {sorted(stages)}; the zoo has scale 8 "
        "(layer1-2, 'resnet9') and scale 32 (layer1-4, 'resnet18') only"
    )


def convert_state_dict(
    state: Mapping[str, torch.Tensor], source: str | os.PathLike = "state dict", *, args: Any = None
) -> ConvertedWeights:
    """Detect the key layout of ``state`` and convert the authors' layout to ours.

    Returns the (possibly renamed) state with the architecture arguments read from the tensor
    shapes. ``args`` is the authors' saved ``argparse.Namespace`` (for the preprocessing and the
    ``hard`` flag); their ``categorical`` and ``independent`` variants have no counterpart in the
    zoo and raise :class:`WeightsError`.
    """
    fmt = detect_format(state)
    if fmt not in (AUTHORS_PATCHVAE, AUTHORS_VAE):
        return ConvertedWeights(dict(state), fmt)
    for flag in ("categorical", "independent"):
        if bool(_arg(args, flag, False)):
            raise WeightsError(
                f"{source} is an authors' checkpoint trained with --{flag}; that variant has no architecture "
                "in the zoo (only the default relaxed-Bernoulli visibility with a shared decoder)"
            )
    new = _rename(state, fmt, source)
    backbone = _backbone_name(new, source)
    in_chans = int(new["encoder.backbone.conv1.weight"].shape[1])
    model_args: dict[str, Any] = {"in_chans": in_chans, "backbone": backbone, "decoder_width": int(new["decoder.head.weight"].shape[0])}
    if fmt == AUTHORS_PATCHVAE:
        family = "PatchVAE"
        num_parts = int(new["encoder.visibility.weight"].shape[0])
        model_args.update(num_parts=num_parts, part_dim=int(new["encoder.appearance_mean.weight"].shape[0]) // num_parts)
        if _arg(args, "hard") is not None:
            model_args["hard"] = bool(args.hard)
    else:
        family = "BetaVAE"
        stride = 8 if backbone == "resnet9" else 32
        mean = new["encoder.mean.weight"]
        model_args.update(
            latent_dim=int(mean.shape[0]),
            img_size=int(mean.shape[-1]) * stride,
            reduce_width=int(new["encoder.reduce.conv.weight"].shape[0]),
        )
    log.info("%s: converted the authors' %s checkpoint (%s)", source, family, model_args)
    return ConvertedWeights(new, fmt, family, model_args, _authors_data_config(args, in_chans))


#: (family, backbone, img_size) -> zoo architecture for the authors' checkpoints
_AUTHORS_ARCHS = {
    ("PatchVAE", "resnet9", None): "patchvae_resnet9",
    ("PatchVAE", "resnet18", None): "patchvae_resnet18",
    ("BetaVAE", "resnet9", 32): "beta_vae_resnet9_32",
    ("BetaVAE", "resnet9", 64): "beta_vae_resnet9_64",
    ("BetaVAE", "resnet18", 224): "beta_vae_resnet18_224",
}


def suggest_architecture(weights: ConvertedWeights) -> str | None:
    """The zoo architecture that fits converted authors' weights, if there is one."""
    key = (weights.family, weights.model_args.get("backbone"), weights.model_args.get("img_size"))
    return _AUTHORS_ARCHS.get(key)
