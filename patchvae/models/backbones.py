"""φ(x): the ResNet feature trunks shared by every model in the zoo.

* ``resnet9`` (supplement Table 5, "Conv1-5"; paper §4 "a conv layer followed by two residual
  blocks"): 7×7/2 conv + BN + ReLU + 3×3/2 max-pool, then ResNet-18's ``layer1`` and ``layer2``.
  Output stride 8, 128 channels, 683,072 parameters at ``in_chans=3``.
* ``resnet18`` (paper Table 2, ImageNet): all four ResNet-18 stages. Output stride 32, 512 channels.

The residual stages are timm's ``BasicBlock`` stages (``timm.models.resnet.make_blocks``), so the
state-dict keys are the ones every ResNet-18 user knows (``conv1.weight``, ``bn1.*``,
``layer1.0.conv1.weight``, ``layer2.0.downsample.0.weight`` ...). The trunk follows timm's model
contract (``num_features``, ``feature_info``, ``forward_features``, ``forward_head``,
``reset_classifier``, ``forward_intermediates``); with ``num_classes > 0`` it is a plain
classifier with a global-pool + linear head.
"""

# no ``from __future__ import annotations``: TorchScript of an fx-traced trunk needs real (not string) annotations
from collections.abc import Sequence
from typing import Any

import torch
from timm.layers import create_classifier
from timm.models._features import feature_take_indices
from timm.models._manipulate import checkpoint_seq
from timm.models.resnet import BasicBlock, make_blocks
from torch import nn

from ._protocol import (
    NoiseFn,
    RepresentationInfo,
    check_representation_names,
    model_input_size,
    select,
    trunk_representation_infos,
    trunk_representations,
)
from .layers import check_images

__all__ = ["BACKBONES", "ResNetTrunk", "backbone_stride", "build_backbone"]

#: Architecture of each φ: BasicBlocks per stage and stage widths.
BACKBONES: dict[str, dict[str, tuple[int, ...]]] = {
    "resnet9": {"layers": (2, 2), "channels": (64, 128)},
    "resnet18": {"layers": (2, 2, 2, 2), "channels": (64, 128, 256, 512)},
}

_STEM_WIDTH = 64


class ResNetTrunk(nn.Module):
    """ResNet stem + the first ``len(layers)`` BasicBlock stages, with an optional timm-style head.

    Args:
        layers: BasicBlocks per stage, e.g. ``(2, 2)`` for ResNet-9.
        channels: width of each stage, e.g. ``(64, 128)``.
        in_chans: input image channels (1 for Fashion-MNIST, 3 for RGB).
        num_classes: classes of the linear head; 0 (default) makes ``forward`` return pooled features.
        global_pool: timm pool type of the head (``"avg"``, ``"max"``, ``""`` for none ...).
        drop_rate: dropout before the linear head.

    Shapes: ``forward_features``: (B, in_chans, H, W) -> (B, num_features, H/stride, W/stride);
    ``forward``: -> (B, num_classes) or (B, num_features) when ``num_classes == 0``.
    """

    def __init__(
        self,
        layers: tuple[int, ...] = (2, 2),
        channels: tuple[int, ...] = (64, 128),
        in_chans: int = 3,
        num_classes: int = 0,
        global_pool: str = "avg",
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if len(layers) != len(channels) or not 1 <= len(layers) <= 4:
            raise ValueError(
                f"layers and channels must have the same length between 1 and 4; got {layers} and {channels}"
            )
        if in_chans < 1:
            raise ValueError(f"in_chans must be a positive number of image channels, got {in_chans}")
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.grad_checkpointing = False

        self.conv1 = nn.Conv2d(in_chans, _STEM_WIDTH, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(_STEM_WIDTH)
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        stages, stage_info = make_blocks(
            (BasicBlock,) * len(layers), tuple(channels), tuple(layers), inplanes=_STEM_WIDTH
        )
        for name, stage in stages:
            self.add_module(name, stage)
        self.stage_names = tuple(name for name, _ in stages)
        self.feature_info = [
            {"num_chs": _STEM_WIDTH, "reduction": 2, "module": "act1"},
            *stage_info,
        ]
        self.stride = stage_info[-1]["reduction"]
        self.num_features = channels[-1]
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes, pool_type=global_pool)
        self.head_hidden_size = self.num_features * self.global_pool.feat_mult()  # 2x with "catavgmax"
        _init_weights(self)

    # ----------------------------------------------------------------- timm model contract
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> feature map f = φ(x), (B, num_features, H/stride, W/stride).

        TorchScript-compatible: the stages are called by their literal names (``hasattr`` on a module
        is resolved when scripting), so ``torch.jit.script(trunk)`` works for every depth.
        """
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq(self._stages(), x, flatten=True)
        x = self.layer1(x)
        if hasattr(self, "layer2"):
            x = self.layer2(x)
        if hasattr(self, "layer3"):
            x = self.layer3(x)
        if hasattr(self, "layer4"):
            x = self.layer4(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Feature map -> pooled (B, head_hidden_size) if ``pre_logits`` else logits (B, num_classes).

        With ``global_pool=""`` (no pooling) the map passes through unpooled (B, num_features, h, w).
        """
        x = self.global_pool(x)
        if self.drop_rate > 0.0:
            x = nn.functional.dropout(x, p=float(self.drop_rate), training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> logits (B, num_classes), or pooled features (B, head_hidden_size) without a head."""
        return self.forward_head(self.forward_features(x))

    @torch.jit.ignore
    def _stages(self) -> list[nn.Module]:
        return [getattr(self, name) for name in self.stage_names]

    @torch.jit.ignore
    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | tuple[int, ...] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """timm's ``forward_intermediates``: index 0 is the stem (stride 2), index k the k-th stage.

        Args:
            x: images (B, in_chans, H, W).
            indices: feature levels to return: the last ``n`` if an int, all if ``None``, else these indices.
            norm: accepted for timm's API; φ has no final norm layer, so it changes nothing.
            stop_early: stop after the last requested level (the returned final map is then that level).
            output_fmt: only ``"NCHW"``.
            intermediates_only: return only the list of maps.

        Returns:
            ``(final map, [maps])`` or ``[maps]``; map k is ``(B, feature_info[k]["num_chs"], H/r_k, W/r_k)``.
        """
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt must be 'NCHW' (φ returns channels-first maps), got {output_fmt!r}")
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        intermediates: list[torch.Tensor] = []
        x = self.act1(self.bn1(self.conv1(x)))
        if 0 in take_indices:
            intermediates.append(x)
        x = self.maxpool(x)
        stages = self._stages()[:max_index] if stop_early else self._stages()
        for idx, stage in enumerate(stages, start=1):
            x = checkpoint_seq(stage, x) if self.grad_checkpointing else stage(x)
            if idx in take_indices:
                intermediates.append(x)
        return intermediates if intermediates_only else (x, intermediates)

    @torch.jit.ignore
    def prune_intermediate_layers(
        self, indices: int | list[int] | tuple[int, ...] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the layers after the last feature level in ``indices`` (timm's feature-getter contract).

        Pruned stages become empty ``nn.Sequential`` (their parameters are gone, the names stay), so
        ``forward_features`` then ends at the last kept level. ``prune_norm`` is accepted for timm's
        API (φ has no final norm). The head is replaced by none (``reset_classifier(0, "")``) when
        ``prune_head`` or when the features no longer end at the last stage.

        Returns:
            the feature indices to pass to :meth:`forward_intermediates`.
        """
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        for name in self.stage_names[max_index:]:
            setattr(self, name, nn.Sequential())
        if max_index == 0:
            self.maxpool = nn.Identity()  # it follows the stem level
        prune_end = max_index < len(self.stage_names)
        if prune_end:
            self.num_features = self.head_hidden_size = self.feature_info[max_index]["num_chs"]
            self.stride = self.feature_info[max_index]["reduction"]
        if prune_head or prune_end:
            self.reset_classifier(0, "")
        return list(take_indices)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the head by a freshly initialised one with ``num_classes`` outputs (0: no head).

        ``global_pool=None`` keeps the current pooling; the new layers get the trunk's device, dtype
        and train/eval mode.
        """
        self.num_classes = num_classes
        pool_type = self.global_pool.pool_type if global_pool is None else global_pool
        param = self.conv1.weight
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes, pool_type=pool_type)
        self.head_hidden_size = self.num_features * self.global_pool.feat_mult()
        self.fc.to(device=param.device, dtype=param.dtype)
        self.global_pool.train(self.training)
        self.fc.train(self.training)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, str]:
        return {"stem": r"^conv1|bn1|maxpool", "blocks": r"^layer(\d+)" if coarse else r"^layer(\d+)\.(\d+)"}

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    # ----------------------------------------------------------------- representation protocol
    @torch.jit.ignore
    def representations(self, input_size: tuple[int, int, int] | None = None) -> dict[str, RepresentationInfo]:
        """``stem``, each stage, ``features`` (φ(x)) and ``pooled``, with per-image shapes for ``input_size``."""
        return trunk_representation_infos(self, model_input_size(self, input_size))

    @torch.jit.ignore
    def represent(
        self, x: torch.Tensor, names: Sequence[str], mode: str = "mean", noise: NoiseFn | None = None
    ) -> dict[str, torch.Tensor]:
        """The layers ``names`` of a preprocessed batch (B, in_chans, H, W); deterministic in every mode."""
        names = check_representation_names(self, names, mode)
        check_images(x, in_chans=self.in_chans, stride=self.stride, param_dtype=self.conv1.weight.dtype)
        out, _ = trunk_representations(self, x, names)
        return select(out, names)

    # ----------------------------------------------------------------- paper vocabulary
    def paper_conv_units(self) -> list[tuple[str, list[nn.Module]]]:
        """φ split into the paper's "conv layers", in forward order.

        Unit 1 ("conv1") is the stem conv + BN; every later unit is one residual BasicBlock
        (``layer1.0``, ``layer1.1``, ``layer2.0`` ...). This is the counting of paper §4.1 / Table 1
        ("a conv layer followed by two residual blocks (each having 2 conv layers)"), under which
        freezing 5 units freezes all of ResNet-9 and 3 units freezes the stem and ``layer1``.
        """
        units: list[tuple[str, list[nn.Module]]] = [("conv1", [self.conv1, self.bn1])]
        for stage_name in self.stage_names:
            for block_idx, block in enumerate(getattr(self, stage_name)):
                units.append((f"{stage_name}.{block_idx}", [block]))
        return units


def backbone_stride(name: str) -> int:
    """Output stride of φ ``name``: 4 after the stem (conv/2, max-pool/2), then 2 per stage after the first."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    return 4 * 2 ** (len(BACKBONES[name]["layers"]) - 1)


def build_backbone(name: str, in_chans: int = 3, **kwargs: Any) -> ResNetTrunk:
    """φ by name (``"resnet9"`` or ``"resnet18"``), without a classification head by default."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    return ResNetTrunk(**BACKBONES[name], in_chans=in_chans, **kwargs)


def _init_weights(module: nn.Module) -> None:
    """He (fan-out) init for convs, identity BN: torchvision's ResNet init, as the reference code."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
