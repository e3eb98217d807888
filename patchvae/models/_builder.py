"""Building models from the registry: arguments, weights, channel adaptation, heads, feature extractors.

``create(name, pretrained=True)`` resolves the name to an entrypoint and a :class:`PretrainedCfg`,
builds the model with the weights' constructor arguments, loads the weights strictly (after
checking their sha256), adapts the image convs if ``in_chans`` differs, and attaches
``pretrained_cfg``, ``model_args`` and ``data_config`` (the preprocessing) to the model.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.config import CIFAR, DataConfig
from ._hub import CONFIG_FILENAME, WEIGHTS_FILENAME, resolve_weights_file
from ._pretrained import PretrainedCfg
from ._registry import get_architecture_cfg, get_pretrained_cfg, model_entrypoint, split_model_name_tag
from ._weights import WeightsError, adapt_in_chans, load_state_dict_strict, read_safetensors, verify_sha256

__all__ = ["build_model_with_cfg", "create", "create_backbone", "from_pretrained", "read_folder_config", "read_state_dict"]

log = logging.getLogger(__name__)

FORMAT_VERSION = "patchvae/1"
LEGACY_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".tar")


# --------------------------------------------------------------------------- reading weights
def read_folder_config(checkpoint_path: str | os.PathLike | None) -> dict[str, Any] | None:
    """``config.json`` next to a weights file (or inside a weights folder), if there is one."""
    if checkpoint_path is None:
        return None
    path = Path(checkpoint_path).expanduser()
    config = path / CONFIG_FILENAME if path.is_dir() else path.parent / CONFIG_FILENAME
    if not config.is_file() or (not path.is_dir() and path.name != WEIGHTS_FILENAME):
        return None
    try:
        data = json.loads(config.read_text())
    except json.JSONDecodeError as err:
        raise WeightsError(f"{config} is not valid JSON ({err}); re-export the weights folder") from err
    if not isinstance(data, dict) or "architecture" not in data:
        raise WeightsError(f"{config} has no 'architecture' entry; it is not a patchvae weights folder")
    return data


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """State dict of a ``.safetensors`` file, or of a legacy PyTorch checkpoint (``torch.load(weights_only=True)``)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    if path.suffix in LEGACY_SUFFIXES:
        from ._legacy import read_legacy_checkpoint

        return read_legacy_checkpoint(path)
    raise WeightsError(
        f"{path}: unknown weights format {path.suffix!r}; expected .safetensors (or a legacy {'/'.join(LEGACY_SUFFIXES)})"
    )


# --------------------------------------------------------------------------- building
def _constructor_default(model_cls: type, arg: str) -> Any:
    param = inspect.signature(model_cls).parameters.get(arg)
    return None if param is None or param.default is inspect.Parameter.empty else param.default


def _select_cfg(variant: str, tag: str, pretrained: bool, checkpoint_path: Any, folder: dict | None) -> PretrainedCfg:
    if folder is not None:
        if folder["architecture"] != variant:
            raise WeightsError(
                f"{checkpoint_path} holds weights of {folder['architecture']!r}, not {variant!r}; "
                f"create({folder['architecture']!r}, ...) or use patchvae.models.from_pretrained({str(checkpoint_path)!r})"
            )
        base = get_architecture_cfg(variant)
        data = folder.get("data_config")
        return base.replace(
            tag=folder.get("tag") or "",
            model_args=dict(folder.get("model_args") or {}),
            data_config=DataConfig.from_dict(data) if data else base.data_config,
            metrics=dict(folder.get("metrics") or {}),
            dataset=folder.get("dataset"),
            recipe=folder.get("recipe"),
            command=folder.get("command"),
        )
    if tag or (pretrained and checkpoint_path is None):
        return get_pretrained_cfg(f"{variant}.{tag}" if tag else variant)
    return get_architecture_cfg(variant)


def build_model_with_cfg(
    model_cls: type[nn.Module],
    variant: str,
    pretrained: bool = False,
    *,
    pretrained_tag: str = "",
    checkpoint_path: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    in_chans: int | None = None,
    num_classes: int | None = None,
    features_only: bool = False,
    out_indices: tuple[int, ...] | None = None,
    model_defaults: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build ``model_cls`` for registry entry ``variant`` (see :func:`create` for the arguments).

    Constructor arguments: the entrypoint's ``model_defaults``, then the weights' ``model_args``,
    then the caller's ``kwargs``.
    """
    folder = read_folder_config(checkpoint_path)
    cfg = _select_cfg(variant, pretrained_tag, pretrained, checkpoint_path, folder)
    load = pretrained or checkpoint_path is not None
    model_args = {**(model_defaults or {}), **cfg.model_args, **kwargs}
    weights_chans = model_args.get("in_chans", _constructor_default(model_cls, "in_chans"))
    target_chans = weights_chans if in_chans is None else in_chans
    if target_chans is not None:
        model_args["in_chans"] = target_chans
    model = model_cls(**model_args)
    if load:
        path, sha256 = resolve_weights_file(cfg, checkpoint_path=checkpoint_path, cache_dir=cache_dir)
        if folder is not None and folder.get("sha256"):
            sha256 = folder["sha256"]
        if checkpoint_path is None and path.suffix != ".safetensors":
            raise WeightsError(f"published weights must be safetensors, got {path}")
        if sha256:
            verify_sha256(path, sha256)
        state = read_state_dict(path)
        if target_chans is not None:
            state = adapt_in_chans(state, target_chans, cfg.input_convs, cfg.output_convs)
        load_state_dict_strict(model, state, path)
        log.info("loaded %s weights from %s", cfg.name, path)
    data_config = cfg.data_config or CIFAR
    model.pretrained_cfg = cfg
    model.model_args = model_args
    model.data_config = data_config.with_channels(target_chans) if target_chans else data_config
    return _finalize(model, num_classes, features_only, out_indices)


def _attach(target: nn.Module, source: nn.Module) -> nn.Module:
    for attr in ("pretrained_cfg", "model_args", "data_config"):
        setattr(target, attr, getattr(source, attr))
    return target


def _finalize(model: nn.Module, num_classes: int | None, features_only: bool, out_indices: Any) -> nn.Module:
    trunk = getattr(model, "backbone", None)
    if features_only:
        from timm.models import FeatureListNet

        base = trunk if trunk is not None else model
        if not hasattr(base, "feature_info"):
            raise ValueError(f"{type(model).__name__} has no feature pyramid; features_only is not supported")
        indices = tuple(range(len(base.feature_info))) if out_indices is None else tuple(out_indices)
        return _attach(FeatureListNet(base, out_indices=indices), model)
    if num_classes is None:
        return model
    if hasattr(model, "reset_classifier"):  # a classifier: a new head if the class count differs
        if getattr(model, "num_classes", None) != num_classes:
            model.reset_classifier(num_classes)
            model.model_args["num_classes"] = num_classes
        return model
    if trunk is None:
        raise ValueError(f"{type(model).__name__} has no classification head or backbone for num_classes")
    trunk.reset_classifier(num_classes)  # a VAE: φ with a fresh linear head (timm semantics)
    return _attach(trunk, model)


# --------------------------------------------------------------------------- public API
def create(
    name: str,
    pretrained: bool = False,
    *,
    checkpoint_path: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    in_chans: int | None = None,
    num_classes: int | None = None,
    features_only: bool = False,
    out_indices: tuple[int, ...] | None = None,
    **overrides: Any,
) -> nn.Module:
    """Create a model of the zoo by name.

    Args:
        name: ``arch`` or ``arch.tag`` (see :func:`list_models` / :func:`list_pretrained`); a bare
            ``arch`` with ``pretrained=True`` means its default weights.
        pretrained: load weights (explicit ``checkpoint_path`` -> shipped ``weights/`` -> Hugging Face Hub).
        checkpoint_path: a ``model.safetensors`` file or weights folder (or a legacy ``.pt``) to load instead.
        cache_dir: Hugging Face cache directory for downloads.
        in_chans: image channels; pretrained input/output convs are adapted (e.g. 1-channel weights at 3).
        num_classes: for classifiers, a new head if it differs; for VAEs, returns φ with a fresh
            ``num_classes``-way linear head (0: pooled features), like ``timm.create_model``.
        features_only, out_indices: return φ's feature pyramid (timm ``FeatureListNet``, strides 2/4/8[/16/32]).
        **overrides: constructor arguments (e.g. ``num_parts=8``, ``hard=True``).

    The model carries ``pretrained_cfg``, ``model_args`` (its exact constructor arguments) and
    ``data_config`` (its preprocessing; see :func:`patchvae.data.create_transform`).
    """
    arch, tag = split_model_name_tag(name)
    entrypoint = model_entrypoint(arch)
    return entrypoint(
        pretrained=pretrained,
        pretrained_tag=tag,
        checkpoint_path=checkpoint_path,
        cache_dir=cache_dir,
        in_chans=in_chans,
        num_classes=num_classes,
        features_only=features_only,
        out_indices=out_indices,
        **overrides,
    )


def create_backbone(name: str, pretrained: bool = False, *, num_classes: int = 0, **kwargs: Any) -> nn.Module:
    """φ of a zoo model, for fine-tuning: a timm-style ResNet trunk (``num_classes=0``: pooled features)."""
    model = create(name, pretrained, **kwargs)
    trunk = getattr(model, "backbone", None)
    if trunk is None:
        raise ValueError(f"{name!r} has no backbone")
    trunk.reset_classifier(num_classes)
    return _attach(trunk, model)


def from_pretrained(directory: str | os.PathLike, **kwargs: Any) -> nn.Module:
    """Load a published weights folder (``model.safetensors`` + ``config.json``), whatever its architecture."""
    folder = read_folder_config(directory)
    if folder is None:
        raise FileNotFoundError(f"{directory} is not a weights folder: expected {CONFIG_FILENAME} and {WEIGHTS_FILENAME}")
    return create(folder["architecture"], pretrained=True, checkpoint_path=directory, **kwargs)


def folder_config_dict(model: nn.Module, sha256: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``config.json`` written next to a model's ``model.safetensors``."""
    from ..version import __version__

    cfg: PretrainedCfg | None = getattr(model, "pretrained_cfg", None)
    if cfg is None or not hasattr(model, "model_args"):
        raise ValueError("save_pretrained needs a model created by patchvae.models.create(...) (it records its arguments)")
    return {
        "format": FORMAT_VERSION,
        "architecture": cfg.architecture,
        "tag": cfg.tag,
        "model_args": dict(model.model_args),
        "data_config": model.data_config.to_dict(),
        "num_params": sum(p.numel() for p in model.parameters()),
        "sha256": sha256,
        "library": f"patchvae {__version__}",
        **dict(extra or {}),
    }
