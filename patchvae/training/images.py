"""Per-epoch PNGs: reconstructions, part visibility maps, prior samples (``torchvision.utils.save_image``)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.utils import save_image

from ..data.config import DataConfig

__all__ = ["save_reconstructions", "save_samples", "save_visibility_maps", "to_unit_range"]


def to_unit_range(x: torch.Tensor, data_config: DataConfig) -> torch.Tensor:
    """Undo the normalisation: model-space images -> [0, 1] pixels (B, C, H, W)."""
    mean = torch.tensor(data_config.mean, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(data_config.std, device=x.device).view(1, -1, 1, 1)
    return (x.float() * std + mean).clamp(0, 1)


def save_reconstructions(path: Path, images: torch.Tensor, recon: torch.Tensor, data_config: DataConfig) -> Path:
    """Row pairs: originals above their reconstructions (8 per row)."""
    rows = []
    for start in range(0, images.shape[0], 8):
        rows += [images[start : start + 8], recon[start : start + 8]]
    grid = torch.cat([to_unit_range(r, data_config) for r in rows])
    save_image(grid, path, nrow=8, padding=1, pad_value=1.0)
    return path


def save_visibility_maps(path: Path, images: torch.Tensor, visibility: torch.Tensor, data_config: DataConfig) -> Path:
    """One row per image: the image, then the N part-visibility probability maps (nearest-upsampled)."""
    b, n = visibility.shape[:2]
    maps = F.interpolate(visibility.float(), size=images.shape[-2:], mode="nearest")  # (B, N, H, W)
    maps = maps.unsqueeze(2).expand(-1, -1, images.shape[1], -1, -1)  # (B, N, C, H, W)
    tiles = torch.cat([to_unit_range(images, data_config).unsqueeze(1), maps], dim=1)  # (B, 1+N, C, H, W)
    save_image(tiles.flatten(0, 1), path, nrow=n + 1, padding=1, pad_value=0.5)
    return path


def save_samples(path: Path, samples: torch.Tensor, data_config: DataConfig) -> Path:
    save_image(to_unit_range(samples, data_config), path, nrow=8, padding=1, pad_value=1.0)
    return path
