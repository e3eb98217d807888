"""timm interop: the zoo's backbones φ in timm's model registry.

After ``import patchvae`` (see :mod:`patchvae._timm_hook`), ``timm.create_model("patchvae_resnet9",
pretrained=True, features_only=True)`` works through timm's public API. Registered are the
representation-learning families (PatchVAE, β-VAE, BiGAN); their timm entrypoints return φ as
:func:`patchvae.models.create_backbone` does (``num_classes=0``: pooled features by default), since
φ is what a timm user fine-tunes. The full VAEs stay in :func:`patchvae.models.create`.

timm arguments honoured: ``pretrained``, ``pretrained_cfg`` (a tag, or a cfg naming a ``tag``/``file``),
``pretrained_cfg_overlay`` (``file``: load that weights file or folder), ``cache_dir``,
``features_only``, ``out_indices``, ``num_classes``, ``in_chans``, ``global_pool``, ``drop_rate``,
plus the architecture's own constructor arguments. Others (``drop_path_rate``, ``output_stride`` ...)
raise ``TypeError``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, is_dataclass
from typing import Any

from torch import nn

from ._builder import create_backbone
from ._pretrained import PretrainedCfg
from ._registry import get_architecture_cfg, get_pretrained_cfg, list_models, list_pretrained, model_entrypoint

__all__ = ["TIMM_ARCHITECTURES", "create_timm_backbone", "register_timm_models", "timm_pretrained_cfg"]

log = logging.getLogger(__name__)

#: families registered in timm (their φ is a timm-style backbone)
TIMM_FAMILIES = ("patchvae_*", "beta_vae_*", "bigan_*")
_UNSUPPORTED = ("drop_path_rate", "drop_block_rate", "output_stride", "feature_cls", "feature_cfg", "pretrained_strict")
_OVERLAY_KEYS = ("file", "tag", "architecture")

default_cfgs: dict[str, Any] = {}  # timm DefaultCfgs, filled by register_timm_models
_registered: list[str] = []


def timm_architectures() -> list[str]:
    return [name for pattern in TIMM_FAMILIES for name in list_models(pattern)]


TIMM_ARCHITECTURES = ()  # filled by register_timm_models


def timm_pretrained_cfg(cfg: PretrainedCfg, data_config: Any = None, num_classes: int = 0) -> dict[str, Any]:
    """timm-style pretrained cfg dict of a zoo cfg (what ``timm.data.resolve_model_data_config`` reads)."""
    data = data_config or cfg.data_config
    out: dict[str, Any] = {
        "architecture": cfg.architecture,
        "tag": cfg.tag or None,
        "hf_hub_id": cfg.hf_hub_id,
        "file": cfg.file,
        "num_classes": num_classes,
        "first_conv": "conv1",
        "classifier": "fc",
        "license": cfg.license,
        "description": cfg.description,
        "paper_ids": "arXiv:2004.03623",
        "paper_name": "PatchVAE: Learning Local Latent Codes for Recognition",
        "crop_pct": 1.0,
        "crop_mode": "center",
    }
    if data is not None:
        out.update(input_size=tuple(data.input_size), mean=tuple(data.mean), std=tuple(data.std), interpolation=data.interpolation)
    return {k: v for k, v in out.items() if v is not None}


def _as_dict(cfg: Any, what: str) -> dict[str, Any]:
    if cfg is None:
        return {}
    if isinstance(cfg, Mapping):
        return dict(cfg)
    if hasattr(cfg, "to_dict"):
        return dict(cfg.to_dict())
    if is_dataclass(cfg):
        return asdict(cfg)
    raise TypeError(f"{what} must be a tag string, a dict or a timm PretrainedCfg, got {type(cfg).__name__}")


def _weights_request(arch: str, pretrained_cfg: Any, overlay: Any) -> tuple[str, Any]:
    """(tag, checkpoint file or None) asked for by timm's ``pretrained_cfg``/``pretrained_cfg_overlay``."""
    if isinstance(pretrained_cfg, str):
        cfg = {"tag": pretrained_cfg}
    else:
        cfg = _as_dict(pretrained_cfg, "pretrained_cfg")
    cfg.update(_as_dict(overlay, "pretrained_cfg_overlay"))
    tag = cfg.get("tag") or ""
    if cfg.get("architecture") not in (None, arch):
        raise ValueError(f"pretrained_cfg is for {cfg['architecture']!r}, not {arch!r}")
    # a cfg we generated ourselves (timm passes the registered one back) is fine; foreign sources are not
    if not isinstance(tag, str):
        raise TypeError(f"pretrained_cfg tag must be a string, got {tag!r}")
    known = timm_pretrained_cfg(get_pretrained_cfg(f"{arch}.{tag}" if tag else arch))
    foreign = [
        k for k in ("url", "hf_hub_id", "hf_hub_filename", "state_dict")
        if cfg.get(k) not in (None, "", known.get(k))
    ]
    if foreign:
        raise ValueError(
            f"patchvae backbones load weights from the patchvae registry, a tag, or a local file; {foreign} in "
            f"pretrained_cfg is not supported. Download the weights folder (huggingface_hub.snapshot_download) and "
            "pass pretrained_cfg_overlay=dict(file=<folder or model.safetensors>)."
        )
    file = cfg.get("file")
    if file is not None and file == known.get("file"):
        file = None  # our own registry entry's packaged file: resolved by the registry itself
    return tag, file


def create_timm_backbone(
    arch: str,
    pretrained: bool = False,
    pretrained_cfg: Any = None,
    pretrained_cfg_overlay: Any = None,
    cache_dir: Any = None,
    *,
    features_only: bool = False,
    out_indices: Any = None,
    num_classes: int = 0,
    in_chans: int | None = None,
    global_pool: str | None = None,
    drop_rate: float | None = None,
    **kwargs: Any,
) -> nn.Module:
    """The timm entrypoint of ``arch``: φ with timm's conventions (see the module docstring)."""
    unsupported = [k for k in kwargs if k in _UNSUPPORTED]
    if unsupported:
        raise TypeError(f"{arch!r} (a patchvae backbone) does not support the timm argument(s) {unsupported}")
    tag, file = _weights_request(arch, pretrained_cfg, pretrained_cfg_overlay)
    if file is not None and not pretrained:
        raise ValueError(f"pretrained_cfg(_overlay) names the weights file {file!r} but pretrained=False: pass pretrained=True")
    if features_only and (global_pool is not None or drop_rate):
        raise ValueError("global_pool/drop_rate configure the classifier head, which features_only=True does not have")
    name = f"{arch}.{tag}" if tag else arch
    model = create_backbone(
        name,
        pretrained,
        num_classes=num_classes,
        features_only=features_only,
        out_indices=tuple(out_indices) if out_indices is not None else None,
        checkpoint_path=file,
        cache_dir=cache_dir,
        in_chans=in_chans,
        **kwargs,
    )
    if not features_only:
        if global_pool is not None:
            model.reset_classifier(num_classes, global_pool)
        if drop_rate is not None:
            model.drop_rate = float(drop_rate)
    timm_cfg = timm_pretrained_cfg(model.pretrained_cfg, model.data_config, num_classes if not features_only else 0)
    model.patchvae_cfg = model.pretrained_cfg  # ours; timm reads pretrained_cfg as a dict
    model.pretrained_cfg = model.default_cfg = timm_cfg
    return model


def _make_entrypoint(arch: str) -> Callable[..., nn.Module]:
    def entrypoint(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        return create_timm_backbone(arch, pretrained, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = arch
    entrypoint.__module__ = __name__
    summary = (model_entrypoint(arch).__doc__ or arch).strip().splitlines()[0]
    entrypoint.__doc__ = (
        f"φ (the ResNet feature trunk) of patchvae's {arch}: {summary}\n\n"
        f"timm entrypoint registered by patchvae; ``patchvae.models.create({arch!r})`` builds the whole model."
    )
    return entrypoint


def register_timm_models() -> list[str]:
    """Register the backbone families in timm's registry (once; names timm already has are skipped)."""
    global TIMM_ARCHITECTURES
    if _registered:
        return list(_registered)
    import timm.models
    from timm.models import generate_default_cfgs, register_model

    archs = timm_architectures()
    cfgs: dict[str, Any] = {}
    for arch in archs:
        cfgs[arch] = timm_pretrained_cfg(get_architecture_cfg(arch))
        for name in list_pretrained(f"{arch}.*"):
            cfgs[name] = timm_pretrained_cfg(get_pretrained_cfg(name))
    default_cfgs.update(generate_default_cfgs(cfgs))
    for arch in archs:
        if timm.models.is_model(arch):
            log.warning("timm already has a model named %r; patchvae's backbone is not registered under it", arch)
            continue
        fn = _make_entrypoint(arch)
        globals()[arch] = fn
        register_model(fn)
        _registered.append(arch)
    TIMM_ARCHITECTURES = tuple(_registered)
    log.debug("registered %s in timm", _registered)
    return list(_registered)
