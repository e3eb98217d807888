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

from __future__ import annotations

from typing import Any

import torch
from timm.layers import create_classifier
from timm.models._features import feature_take_indices
from timm.models._manipulate import checkpoint_seq
from timm.models.resnet import BasicBlock, make_blocks
from torch import nn

__all__ = ["BACKBONES", "ResNetTrunk", "build_backbone"]

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
        self.stage_names: tuple[str, ...] = tuple(name for name, _ in stages)
        self.feature_info: list[dict[str, Any]] = [
            {"num_chs": _STEM_WIDTH, "reduction": 2, "module": "act1"},
            *stage_info,
        ]
        self.stride: int = stage_info[-1]["reduction"]
        self.num_features = self.head_hidden_size = channels[-1]
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes, pool_type=global_pool)
        _init_weights(self)

    # ----------------------------------------------------------------- timm model contract
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> feature map f = φ(x), (B, num_features, H/stride, W/stride)."""
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        stages = [getattr(self, name) for name in self.stage_names]
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq(stages, x, flatten=True)
        for stage in stages:
            x = stage(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Feature map -> pooled (B, num_features) if ``pre_logits`` else logits (B, num_classes)."""
        x = self.global_pool(x)
        if self.drop_rate:
            x = nn.functional.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        stop_early: bool = False,
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """timm-style intermediates: index 0 is the stem (stride 2), index k the k-th stage."""
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        intermediates = []
        x = self.act1(self.bn1(self.conv1(x)))
        if 0 in take_indices:
            intermediates.append(x)
        x = self.maxpool(x)
        names = self.stage_names[:max_index] if stop_early else self.stage_names
        for idx, name in enumerate(names, start=1):
            x = getattr(self, name)(x)
            if idx in take_indices:
                intermediates.append(x)
        return intermediates if intermediates_only else (x, intermediates)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the head by a freshly initialised one with ``num_classes`` outputs (0: no head)."""
        self.num_classes = num_classes
        pool_type = self.global_pool.pool_type if global_pool is None else global_pool
        param = self.conv1.weight
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes, pool_type=pool_type)
        self.fc.to(device=param.device, dtype=param.dtype)
        self.global_pool.train(self.training)
        self.fc.train(self.training)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, str]:
        return {"stem": r"^conv1|bn1|maxpool", "blocks": r"^layer(\d+)" if coarse else r"^layer(\d+)\.(\d+)"}

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

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
