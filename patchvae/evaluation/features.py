"""Frozen φ features for the probes: eval mode, no augmentation, global average pooling."""

from __future__ import annotations

import logging

import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ..data import DataConfig
from ..models import ResNetTrunk
from ..data import EpochBatches
from .._runtime import autocast, resolve_device

__all__ = ["pooled_features"]

log = logging.getLogger(__name__)


@torch.no_grad()
def pooled_features(
    backbone: ResNetTrunk,
    dataset: Dataset,
    *,
    data_config: DataConfig | None,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    amp: str | None = None,
    progress: bool = True,
    desc: str = "features",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Globally average-pooled φ(x) of every image, in dataset order.

    Returns features float32 (N, backbone.num_features) and labels int64 (N,), on the CPU. φ runs
    in eval mode (BatchNorm uses its running statistics) and is restored to its previous mode.
    """
    device = resolve_device(device)
    batches = EpochBatches(dataset, batch_size=batch_size, train=False, data_config=data_config, device=device)
    was_training = backbone.training
    backbone.eval()
    param = next(backbone.parameters())
    moved = param.device != device
    if moved:
        backbone.to(device)
    feats, labels = [], []
    try:
        for images, target in tqdm(batches, total=len(batches), desc=desc, disable=not progress, leave=False, unit="batch"):
            with autocast(device, amp):
                fmap = backbone.forward_features(images.to(param.dtype) if amp is None else images)
            feats.append(fmap.float().mean(dim=(2, 3)).cpu())
            labels.append(target.cpu())
    finally:
        backbone.train(was_training)
        if moved:
            backbone.to(param.device)
    if not feats:
        raise ValueError("cannot extract features of an empty dataset")
    return torch.cat(feats), torch.cat(labels).long()
