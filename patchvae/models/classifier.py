"""The recognition network of supplement Table 5: φ + FC 512 + FC classes, with the paper's freeze presets.

After unsupervised training, the decoder is discarded and φ is kept (paper §4 "Learning
paradigm"). The classifier flattens φ's map (so it has a fixed input size), applies dropout
(as the authors' code) and two fully-connected layers::

    x ─φ─► (B, d_e, h, w) ─flatten─► (B, d_e·h·w) ─dropout, FC 512, ReLU─► (B, 512) ─FC─► (B, classes)

Freeze presets are named after the columns of paper Table 1. Following §4.1, a "conv layer" of φ is
the stem conv or one residual BasicBlock (φ = "a conv layer followed by two residual blocks (each
having 2 conv layers)"): ``conv1`` freezes the stem, ``conv3`` the stem and ``layer1``, ``conv5``
all of ResNet-9 (only the two FC layers train). For ResNet-18, ``conv5`` freezes the stem,
``layer1`` and ``layer2`` and fine-tunes the last two stages: the protocol of paper Table 2.
Freezing works at block granularity, so any ``freeze=k`` (e.g. 2: stem + ``layer1.0``) is valid.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..data.config import CIFAR, IMAGENET, SCENES_64
from ._builder import build_model_with_cfg
from ._pretrained import PretrainedCfg
from ._protocol import (
    NoiseFn,
    RepresentationInfo,
    check_representation_names,
    model_input_size,
    select,
    trunk_representation_infos,
    trunk_representations,
)
from ._registry import register_model
from .backbones import ResNetTrunk, build_backbone
from .beta_vae import bottleneck_size
from .layers import check_images

__all__ = ["FREEZE_PRESETS", "Classifier", "resolve_freeze"]

#: Paper Table 1 column -> number of leading φ units frozen (see module docstring).
FREEZE_PRESETS: dict[str, int] = {"none": 0, "conv1": 1, "conv3": 3, "conv5": 5}


def resolve_freeze(freeze: str | int, backbone: ResNetTrunk) -> int:
    """Preset name or unit count -> number of leading :meth:`ResNetTrunk.paper_conv_units` to freeze."""
    num_units = len(backbone.paper_conv_units())
    if isinstance(freeze, str):
        if freeze == "all":
            return num_units
        if freeze not in FREEZE_PRESETS:
            raise ValueError(f"unknown freeze preset {freeze!r}; choose one of {[*FREEZE_PRESETS, 'all']} or an int")
        freeze = FREEZE_PRESETS[freeze]
    if isinstance(freeze, bool) or not isinstance(freeze, int) or not 0 <= freeze <= num_units:
        raise ValueError(f"freeze must be a preset name or an int in [0, {num_units}], got {freeze!r}")
    return freeze


class Classifier(nn.Module):
    """Supplement Table 5 classifier. 1,783,460 parameters at 32×32×3 with 100 classes.

    Args:
        num_classes: output classes (0: no final FC, ``forward`` returns the 512-d pre-logits).
        in_chans: image channels. img_size: input side length (the FC input is d_e·(img_size/stride)²).
        backbone: φ, ``"resnet9"`` or ``"resnet18"``.
        hidden_dim: width of the hidden FC layer (512).
        drop_rate: dropout before the hidden FC layer (0.5, as the authors' code).
        freeze: preset (``"none"``, ``"conv1"``, ``"conv3"``, ``"conv5"``, ``"all"``) or number of φ units.

    Frozen units have ``requires_grad=False`` and their BatchNorm layers stay in eval mode (running
    statistics are not updated) even when the classifier is in training mode. :meth:`set_bn_mode`
    ``("authors")`` switches to the authors' fine-tuning BatchNorm instead.
    """

    def __init__(
        self,
        num_classes: int = 100,
        in_chans: int = 3,
        img_size: int = 32,
        backbone: str = "resnet9",
        hidden_dim: int = 512,
        drop_rate: float = 0.5,
        freeze: str | int = "none",
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.img_size = img_size
        self.check_inputs = True
        self.backbone = build_backbone(backbone, in_chans)
        side = bottleneck_size(img_size, self.backbone)
        self.num_features = self.backbone.num_features
        self.head_hidden_size = hidden_dim
        self.head = nn.Sequential(
            OrderedDict(
                flatten=nn.Flatten(1),
                drop=nn.Dropout(drop_rate),
                fc1=nn.Linear(self.num_features * side * side, hidden_dim),
                act=nn.ReLU(inplace=True),
            )
        )
        self.fc = nn.Linear(hidden_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.frozen_units = 0
        self.bn_mode = "ours"
        self.freeze(freeze)

    # ----------------------------------------------------------------- timm model contract
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> φ(x), (B, d_e, h, w)."""
        if self.check_inputs:
            check_images(
                x, in_chans=self.in_chans, stride=self.backbone.stride,
                image_size=(self.img_size, self.img_size), param_dtype=self.fc1_weight_dtype,
            )
        return self.backbone.forward_features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """φ(x) -> (B, hidden_dim) if ``pre_logits`` else logits (B, num_classes)."""
        x = self.head(x)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    # ----------------------------------------------------------------- representation protocol
    def representations(self, input_size: tuple[int, int, int] | None = None) -> dict[str, RepresentationInfo]:
        """φ's layers, ``pre_logits`` (hidden_dim,) and, with classes, ``logits`` (num_classes,)."""
        infos = trunk_representation_infos(self.backbone, model_input_size(self, input_size))
        infos["pre_logits"] = RepresentationInfo("pre_logits", (self.head_hidden_size,), "the hidden FC layer (after ReLU)")
        if self.num_classes > 0:
            infos["logits"] = RepresentationInfo("logits", (self.num_classes,), "the class scores")
        return infos

    def represent(
        self, x: torch.Tensor, names: Sequence[str], mode: str = "mean", noise: NoiseFn | None = None
    ) -> dict[str, torch.Tensor]:
        """The layers ``names`` of a preprocessed batch (B, C, img_size, img_size); deterministic in every mode."""
        names = check_representation_names(self, names, mode)
        check_images(
            x, in_chans=self.in_chans, stride=self.backbone.stride,
            image_size=(self.img_size, self.img_size), param_dtype=self.fc1_weight_dtype,
        )
        out, f = trunk_representations(self.backbone, x, names)
        if "pre_logits" in names or "logits" in names:
            out["pre_logits"] = self.forward_head(f, pre_logits=True)
            out["logits"] = self.fc(out["pre_logits"])
        return select(out, names)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """New, freshly initialised final FC with ``num_classes`` outputs (0: none)."""
        w = self.head.fc1.weight
        self.num_classes = num_classes
        self.fc = nn.Linear(self.head_hidden_size, num_classes).to(w.device, w.dtype) if num_classes > 0 else nn.Identity()

    @property
    def fc1_weight_dtype(self) -> torch.dtype:
        return self.head.fc1.weight.dtype

    # ----------------------------------------------------------------- freezing (paper Table 1 columns)
    def freeze(self, freeze: str | int) -> None:
        """Freeze the first ``freeze`` φ units (preset name or count); units after it are trainable."""
        count = resolve_freeze(freeze, self.backbone)
        for idx, (_, modules) in enumerate(self.backbone.paper_conv_units()):
            for module in modules:
                module.requires_grad_(idx >= count)
        self.frozen_units = count
        if self.bn_mode == "authors":
            for module in self.backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.requires_grad_(False)
        self.train(self.training)

    def set_bn_mode(self, mode: str) -> None:
        """How φ's BatchNorm layers fine-tune.

        ``"ours"`` (default): BN layers of frozen units stay in eval mode (running statistics fixed);
        those of trainable units train their scale/shift and statistics. ``"authors"`` (the authors'
        classifier code): every BN scale/shift of φ has ``requires_grad=False``, trainable units
        included, and every BN layer follows the classifier's mode: in training, batch statistics,
        and running statistics are updated in frozen units too.
        """
        if mode not in ("ours", "authors"):
            raise ValueError(f"bn_mode must be 'ours' or 'authors', got {mode!r}")
        self.bn_mode = mode
        self.freeze(self.frozen_units)

    def frozen_modules(self) -> list[nn.Module]:
        return [m for _, mods in self.backbone.paper_conv_units()[: self.frozen_units] for m in mods]

    def train(self, mode: bool = True) -> Classifier:
        super().train(mode)
        if self.bn_mode == "ours":
            for module in self.frozen_modules():
                module.eval()
        return self


# --------------------------------------------------------------------------- zoo entrypoints
def _create_classifier(variant: str, pretrained: bool, defaults: dict[str, Any], **kwargs: Any) -> Classifier:
    if kwargs.get("num_classes") is not None and not pretrained and kwargs.get("checkpoint_path") is None:
        defaults = {**defaults, "num_classes": kwargs["num_classes"]}  # a fresh model: build the head at that size
    return build_model_with_cfg(Classifier, variant, pretrained, model_defaults=defaults, **kwargs)


def _cfg(**kwargs: Any) -> PretrainedCfg:
    return PretrainedCfg(input_convs=("backbone.conv1",), **kwargs)


default_cfgs: dict[str, PretrainedCfg] = {
    "classifier_resnet9_32": _cfg(data_config=CIFAR, description="Supplement Table 5 classifier, 32×32 (CIFAR-100)"),
    "classifier_resnet9_64": _cfg(data_config=SCENES_64, description="Supplement Table 5 classifier, 64×64 (Indoor67/Places205)"),
    "classifier_resnet18_224": _cfg(data_config=IMAGENET, description="ResNet-18 φ + FC 512 + FC classes (paper Table 2)"),
}


@register_model
def classifier_resnet9_32(pretrained: bool = False, **kwargs: Any) -> Classifier:
    """Supplement Table 5 classifier for 32×32 images (1,783,460 parameters with 100 classes)."""
    defaults = {"num_classes": 100, "img_size": 32, "backbone": "resnet9"}
    return _create_classifier("classifier_resnet9_32", pretrained, defaults, **kwargs)


@register_model
def classifier_resnet9_64(pretrained: bool = False, **kwargs: Any) -> Classifier:
    """Supplement Table 5 classifier for 64×64 images (4,912,259 parameters with 67 classes)."""
    defaults = {"num_classes": 67, "img_size": 64, "backbone": "resnet9"}
    return _create_classifier("classifier_resnet9_64", pretrained, defaults, **kwargs)


@register_model
def classifier_resnet18_224(pretrained: bool = False, **kwargs: Any) -> Classifier:
    """ResNet-18 φ + FC 512 + FC classes for 224×224 ImageNet (paper Table 2 protocol)."""
    defaults = {"num_classes": 1000, "img_size": 224, "backbone": "resnet18"}
    return _create_classifier("classifier_resnet18_224", pretrained, defaults, **kwargs)
