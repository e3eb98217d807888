"""Where φ comes from: a registry name, a weights folder, a module, or a baseline.

* ``"patchvae_resnet9"`` / ``"patchvae_resnet9.tag"``: ``create_backbone(name, pretrained=True)``.
* a weights folder (``model.safetensors`` + ``config.json``, or the ``model.safetensors`` in it):
  ``from_pretrained(folder).backbone``, carrying the folder's ``data_config``.
* a :class:`~patchvae.models.ResNetTrunk` instance (used as given; its ``data_config`` if it has one).
* ``"random"``: a randomly initialised φ of ``arch``, fine-tuned with the requested freeze preset
  (the "random init" rows of the paper's tables: a frozen random φ with a trained head).
* ``"supervised"``: a randomly initialised φ trained end to end (nothing frozen, whatever preset
  is asked for): the fully supervised reference.

The random φ is drawn from a generator seeded with ``seed``, so baselines are reproducible.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from ..data import DataConfig
from ..models import BACKBONES, ResNetTrunk, build_backbone, create_backbone, from_pretrained, is_model

__all__ = ["BASELINES", "BackboneSource", "backbone_arch", "resolve_backbone"]

log = logging.getLogger(__name__)

#: Baseline names accepted wherever a backbone source is.
BASELINES = ("random", "supervised")

SourceKind = Literal["registry", "folder", "module", "random", "supervised"]


@dataclass
class BackboneSource:
    """A resolved φ and how to evaluate it.

    Attributes:
        backbone: φ (a :class:`ResNetTrunk`, num_classes=0).
        kind: ``"registry"``, ``"folder"``, ``"module"``, ``"random"`` or ``"supervised"``.
        name: a short description (the name, folder or baseline) for reports.
        data_config: the preprocessing the weights were trained with, if known.
    """

    backbone: ResNetTrunk
    kind: SourceKind
    name: str
    data_config: DataConfig | None = None

    def freeze_for(self, preset: str | int) -> str | int:
        """The freeze preset actually used: ``"none"`` for the supervised baseline, ``preset`` otherwise."""
        if self.kind == "supervised" and preset not in ("none", 0):
            log.info("supervised baseline: training every layer (freeze preset %r ignored)", preset)
            return "none"
        return preset


def backbone_arch(trunk: ResNetTrunk) -> str:
    """Name in :data:`patchvae.models.BACKBONES` of a trunk's architecture (``"resnet9"`` / ``"resnet18"``)."""
    layers = tuple(len(getattr(trunk, name)) for name in trunk.stage_names)
    channels = tuple(info["num_chs"] for info in trunk.feature_info[1:])
    for name, spec in BACKBONES.items():
        if tuple(spec["layers"]) == layers and tuple(spec["channels"]) == channels:
            return name
    raise ValueError(f"φ with stages {layers} / widths {channels} matches none of {sorted(BACKBONES)}")


def _random_backbone(arch: str, in_chans: int, seed: int) -> ResNetTrunk:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if arch in BACKBONES:
            return build_backbone(arch, in_chans)
        if not is_model(arch):
            raise ValueError(f"unknown architecture {arch!r} for a baseline: use a zoo model name or one of {sorted(BACKBONES)}")
        return create_backbone(arch, pretrained=False, in_chans=in_chans)


def _is_weights_path(source: str | os.PathLike) -> bool:
    return Path(source).expanduser().exists()


def resolve_backbone(
    source: str | os.PathLike | nn.Module,
    *,
    arch: str = "patchvae_resnet9",
    in_chans: int | None = None,
    img_size: int | None = None,
    seed: int = 0,
) -> BackboneSource:
    """Resolve ``source`` (see the module docstring) to φ.

    Args:
        source: registry name, weights folder (or its ``model.safetensors``), ``ResNetTrunk``,
            ``"random"`` or ``"supervised"``.
        arch: zoo model (or bare φ name ``"resnet9"``/``"resnet18"``) whose φ the baselines use.
        in_chans: image channels of the baselines' φ (default 3); for pretrained weights, adapts
            their first conv when it differs (1-channel weights used on RGB images, or the reverse).
        img_size: the baselines' input side, recorded in their ``data_config`` (default: arch's).
        seed: seed of the baselines' random φ.
    """
    if isinstance(source, nn.Module):
        if not isinstance(source, ResNetTrunk):
            trunk = getattr(source, "backbone", None)
            if not isinstance(trunk, ResNetTrunk):
                raise TypeError(f"expected a ResNetTrunk (φ) or a zoo model with .backbone, got {type(source).__name__}")
            trunk.data_config = getattr(source, "data_config", None)
            source = trunk
        return BackboneSource(source, "module", type(source).__name__, getattr(source, "data_config", None))
    if isinstance(source, str) and source in BASELINES:
        chans = in_chans or 3
        trunk = _random_backbone(arch, chans, seed)
        cfg = getattr(trunk, "data_config", None)
        if cfg is not None:
            cfg = cfg.with_channels(chans)
            if img_size:
                cfg = dataclasses.replace(cfg, input_size=(chans, img_size, img_size))
        trunk.data_config = cfg
        return BackboneSource(trunk, source, f"{source}:{arch}", cfg)  # type: ignore[arg-type]
    kwargs = {"in_chans": in_chans} if in_chans else {}
    if _is_weights_path(source):
        path = Path(source).expanduser()
        folder = path.parent if path.is_file() else path
        model = from_pretrained(folder, **kwargs)
        trunk = model if isinstance(model, ResNetTrunk) else getattr(model, "backbone", None)
        if not isinstance(trunk, ResNetTrunk):
            raise ValueError(f"{folder} holds a {type(model).__name__}, which has no φ to evaluate")
        trunk.reset_classifier(0)
        trunk.data_config = model.data_config
        log.info("φ from weights folder %s (%s)", folder, model.pretrained_cfg.architecture)
        return BackboneSource(trunk, "folder", str(folder), model.data_config)
    name = os.fspath(source)
    if not is_model(name):
        raise ValueError(
            f"{name!r} is neither a weights folder, a zoo model (patchvae.models.list_pretrained()) "
            f"nor a baseline {BASELINES}"
        )
    trunk = create_backbone(name, pretrained=True, **kwargs)
    return BackboneSource(trunk, "registry", name, trunk.data_config)
