"""timm interop: the zoo's backbones φ in timm's model registry.

After ``import patchvae`` (see :mod:`patchvae._timm_hook`), ``timm.create_model("patchvae_resnet9",
pretrained=True, features_only=True)`` works through timm's public API. Registered are the
representation-learning families (PatchVAE, β-VAE, BiGAN); their timm entrypoints return φ as
:func:`patchvae.models.create_backbone` does (``num_classes=0``: pooled features by default), since
φ is what a timm user fine-tunes. The full VAEs stay in :func:`patchvae.models.create`.

timm arguments honoured: ``pretrained``, ``pretrained_cfg`` (a tag, or a cfg naming a ``tag``/``file``),
``pretrained_cfg_overlay`` (``file``: load that weights file or folder), ``cache_dir``,
``features_only``, ``out_indices``, ``feature_cls`` (``"getter"``: timm's ``FeatureGetterNet`` over
``forward_intermediates``), ``num_classes``, ``in_chans``, ``global_pool``, ``drop_rate``, ``device``,
``dtype``, plus the architecture's own constructor arguments. Others (``drop_path_rate``,
``output_stride`` ...) raise ``TypeError``.

As in timm, a bare name means its default weights' configuration whether or not ``pretrained`` is
set: ``timm.create_model("patchvae_resnet9")`` builds φ for the channels of the default weights, so
their state dict loads into it (``patchvae.models.create`` without weights builds the architecture's
own defaults instead). TorchScript: φ can be scripted (``torch.jit.script``) and exported
(``torch.export``, :func:`patchvae.models.export_onnx`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, is_dataclass
from typing import Any

from torch import nn

from ..data.config import DataConfig
from ._builder import _attach, create_backbone
from ._pretrained import PretrainedCfg
from ._registry import get_architecture_cfg, get_pretrained_cfg, list_models, list_pretrained, model_entrypoint
from .backbones import BACKBONES, backbone_stride

__all__ = ["TIMM_ARCHITECTURES", "create_timm_backbone", "register_timm_models", "timm_pretrained_cfg"]

log = logging.getLogger(__name__)

#: families registered in timm (their φ is a timm-style backbone)
TIMM_FAMILIES = ("patchvae_*", "beta_vae_*", "bigan_*")
_UNSUPPORTED = ("drop_path_rate", "drop_block_rate", "output_stride", "feature_cfg", "pretrained_strict")
_FEATURE_CLASSES = (None, "", "list", "getter")
_OVERLAY_KEYS = ("file", "tag", "architecture")

default_cfgs: dict[str, Any] = {}  # timm DefaultCfgs, filled by register_timm_models
_registered: list[str] = []


def timm_architectures() -> list[str]:
    return [name for pattern in TIMM_FAMILIES for name in list_models(pattern)]


TIMM_ARCHITECTURES = ()  # filled by register_timm_models


def feature_stride(arch: str) -> int:
    """Output stride of φ of a registered architecture (from the backbone its name carries)."""
    for backbone in sorted(BACKBONES, key=len, reverse=True):
        if f"_{backbone}" in arch:
            return backbone_stride(backbone)
    raise ValueError(f"cannot tell the backbone of {arch!r} from its name; expected one of {sorted(BACKBONES)} in it")


def timm_pretrained_cfg(
    cfg: PretrainedCfg, data_config: DataConfig | None = None, num_classes: int = 0, stride: int | None = None
) -> dict[str, Any]:
    """timm pretrained cfg dict of φ of a zoo cfg (what ``timm.data.resolve_model_data_config`` and
    ``timm.layers.apply_test_time_pool`` read).

    Args:
        cfg: the zoo cfg (weights or architecture defaults).
        data_config: the model's preprocessing if it differs from the cfg's (e.g. adapted ``in_chans``).
        num_classes: classes of φ's head (0: pooled features).
        stride: φ's output stride (default: from the architecture's name); gives ``pool_size``, the
            (h, w) of ``forward_features`` at ``input_size``.
    """
    data = data_config or cfg.data_config
    out = cfg.replace(data_config=data).to_timm()
    out.update(
        num_classes=num_classes,
        first_conv="conv1",
        classifier="fc",
        paper_ids="arXiv:2004.03623",
        paper_name="PatchVAE: Learning Local Latent Codes for Recognition",
    )
    if data is not None:
        stride = stride or feature_stride(cfg.architecture)
        out["pool_size"] = tuple(math.ceil(side / stride) for side in data.input_size[1:])
    return out


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
    feature_cls: str | None = None,
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
    if feature_cls not in _FEATURE_CLASSES:
        raise TypeError(f"{arch!r} (a patchvae backbone) supports feature_cls 'list' (default) or 'getter', not {feature_cls!r}")
    tag, file = _weights_request(arch, pretrained_cfg, pretrained_cfg_overlay)
    if file is not None and not pretrained:
        raise ValueError(f"pretrained_cfg(_overlay) names the weights file {file!r} but pretrained=False: pass pretrained=True")
    if features_only and (global_pool is not None or drop_rate):
        raise ValueError("global_pool/drop_rate configure the classifier head, which features_only=True does not have")
    if not tag and file is None:
        tag = get_pretrained_cfg(arch).tag  # timm: a bare name is its default weights' configuration
    name = f"{arch}.{tag}" if tag else arch
    getter = features_only and feature_cls == "getter"
    model = create_backbone(
        name,
        pretrained,
        num_classes=num_classes,
        features_only=features_only and not getter,
        out_indices=tuple(out_indices) if out_indices is not None and not getter else None,
        checkpoint_path=file,
        cache_dir=cache_dir,
        in_chans=in_chans,
        **kwargs,
    )
    if getter:
        from timm.models._features import FeatureGetterNet

        indices = tuple(out_indices) if out_indices is not None else tuple(range(len(model.feature_info)))
        model = _attach(FeatureGetterNet(model, out_indices=indices), model, "features")
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
