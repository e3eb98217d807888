"""Per-epoch PNGs: reconstructions, part visibility maps, prior samples; enlarged and labelled (one title line)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.utils import make_grid

from ..data.config import DataConfig

__all__ = ["save_labelled_grid", "save_reconstructions", "save_samples", "save_visibility_maps", "to_unit_range"]

#: grids are enlarged (nearest) until they are at least this tall, so 32×32 images stay readable
MIN_HEIGHT = 256


def save_labelled_grid(tiles: torch.Tensor, path: Path, title: str, nrow: int, pad_value: float = 1.0) -> Path:
    """Write ``tiles`` (N, C, H, W) in [0, 1] as one PNG: a grid of ``nrow`` per row, enlarged by an integer
    factor (nearest) to at least :data:`MIN_HEIGHT` pixels, under a one-line ``title``."""
    from PIL import Image, ImageDraw

    grid = make_grid(tiles.float().cpu(), nrow=nrow, padding=1, pad_value=pad_value)
    scale = max(1, -(-MIN_HEIGHT // grid.shape[-2]))
    grid = F.interpolate(grid[None], scale_factor=scale, mode="nearest")[0]
    pixels = (grid.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    body = Image.fromarray(pixels if pixels.shape[2] == 3 else pixels[..., 0])
    page = Image.new("RGB", (body.width, body.height + 16), (255, 255, 255))
    page.paste(body.convert("RGB"), (0, 16))
    ImageDraw.Draw(page).text((4, 2), title, fill=(0, 0, 0))
    page.save(path)
    return path


def to_unit_range(x: torch.Tensor, data_config: DataConfig) -> torch.Tensor:
    """Undo the normalisation: model-space images -> [0, 1] pixels (B, C, H, W)."""
    mean = torch.tensor(data_config.mean, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(data_config.std, device=x.device).view(1, -1, 1, 1)
    return (x.float() * std + mean).clamp(0, 1)


def save_reconstructions(path: Path, images: torch.Tensor, recon: torch.Tensor, data_config: DataConfig) -> Path:
    """Row pairs: originals above their reconstructions (8 per row), labelled."""
    rows = []
    for start in range(0, images.shape[0], 8):
        rows += [images[start : start + 8], recon[start : start + 8]]
    grid = torch.cat([to_unit_range(r, data_config) for r in rows])
    return save_labelled_grid(grid, path, f"{path.stem}: rows of originals, each above its reconstructions", nrow=8)


def save_visibility_maps(path: Path, images: torch.Tensor, visibility: torch.Tensor, data_config: DataConfig) -> Path:
    """One row per image: the image, then the N part-visibility probability maps (nearest-upsampled)."""
    b, n = visibility.shape[:2]
    maps = F.interpolate(visibility.float(), size=images.shape[-2:], mode="nearest")  # (B, N, H, W)
    maps = maps.unsqueeze(2).expand(-1, -1, images.shape[1], -1, -1)  # (B, N, C, H, W)
    tiles = torch.cat([to_unit_range(images, data_config).unsqueeze(1), maps], dim=1)  # (B, 1+N, C, H, W)
    title = f"{path.stem}: each image, then P(visible) of parts 0-{n - 1} (white = visible)"
    return save_labelled_grid(tiles.flatten(0, 1), path, title, nrow=n + 1, pad_value=0.5)


def save_samples(path: Path, samples: torch.Tensor, data_config: DataConfig) -> Path:
    """Decoded prior samples (8 per row), labelled."""
    return save_labelled_grid(to_unit_range(samples, data_config), path, f"{path.stem}: decoded prior samples", nrow=8)
