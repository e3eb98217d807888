"""Figures of a model on images: part crops (paper Figure 3), reconstructions, visibility maps, L_w masks,
and patch-code similarity maps (Sixt 2018 §7.2, Figs 6-7).

Each function takes a model of the zoo (through its protocol: ``represent`` for the part visibility,
``reconstruct`` for reconstructions, so any family that exposes those works), uint8 images
(N, C, H, W) and returns a float image grid (3, H', W') in [0, 1]; :func:`save_figures` writes the set
as PNGs (``torchvision.utils.save_image``), which is what ``patchvae figures NAME`` runs::

    from patchvae.visualize import save_figures
    save_figures("patchvae_resnet9", images, "docs/figures", prefix="cifar10")
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.utils import make_grid, save_image

from .data.memory import BatchPreprocess
from .training.images import to_unit_range

__all__ = [
    "lw_mask_grid",
    "part_crop_grid",
    "reconstruction_grid",
    "sample_grid",
    "save_figures",
    "similarity_grid",
    "similarity_maps",
    "visibility_grid",
]

log = logging.getLogger(__name__)


def _unit(x: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """Model-space images -> [0, 1] pixels, undoing the weights' normalisation."""
    return to_unit_range(x, model.data_config)


def _preprocess(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise TypeError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
    return BatchPreprocess(model.data_config, train=False)(images)


def _visibility(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    if "visibility" not in model.representations():
        raise ValueError(f"{type(model).__name__} has no part visibility ('visibility' layer): part figures need a part model")
    maps = [model.represent(x[i : i + batch_size], ["visibility"])["visibility"].float() for i in range(0, len(x), batch_size)]
    return torch.cat(maps)


@torch.no_grad()
def reconstruction_grid(model: nn.Module, images: torch.Tensor, per_row: int = 8) -> torch.Tensor:
    """Rows of ``per_row`` originals, each above its eval-mode reconstruction: (3, H', W') in [0, 1]."""
    x = _preprocess(model, images)
    recon = model.reconstruct(x)
    x = x[..., : recon.shape[-2], : recon.shape[-1]]  # patch models reconstruct the largest tiled region
    rows = []
    for start in range(0, len(x), per_row):
        rows += [_unit(x[start : start + per_row], model), _unit(recon[start : start + per_row], model)]
    return make_grid(torch.cat(rows), nrow=per_row, padding=1, pad_value=1.0)


@torch.no_grad()
def sample_grid(model: nn.Module, num_samples: int = 32, seed: int = 0, per_row: int = 8) -> torch.Tensor:
    """Images decoded from ``num_samples`` prior draws (``model.sample``), seeded: (3, H', W') in [0, 1]."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        samples = model.sample(num_samples)
    return make_grid(_unit(samples, model).expand(-1, 3, -1, -1), nrow=per_row, padding=1, pad_value=1.0)


@torch.no_grad()
def visibility_grid(model: nn.Module, images: torch.Tensor, scale: int = 2) -> torch.Tensor:
    """One row per image: the image, then the visibility map Q^V(z_vis = 1 | x) of every part (white =
    visible, nearest-upsampled to the image), each ``scale``× enlarged: (3, H', W')."""
    x = _preprocess(model, images)
    vis = _visibility(model, x)  # (B, P, h, w)
    maps = F.interpolate(vis, size=x.shape[-2:], mode="nearest").unsqueeze(2).expand(-1, -1, 3, -1, -1)
    pixels = _unit(x, model).expand(-1, 3, -1, -1).unsqueeze(1)
    tiles = torch.cat([pixels, maps], dim=1).flatten(0, 1)  # (B·(1+P), 3, H, W)
    tiles = F.interpolate(tiles, scale_factor=scale, mode="nearest")
    return make_grid(tiles, nrow=vis.shape[1] + 1, padding=1, pad_value=0.5)


@torch.no_grad()
def part_crop_grid(
    model: nn.Module, images: torch.Tensor, parts: Sequence[int] | None = None, per_part: int = 16,
    context: int = 1, scale: int = 2,
) -> tuple[torch.Tensor, list[int]]:
    """Paper Figure 3 analogue: for each part, the ``per_part`` images where it is most visible, cropped
    around the location of its highest P(visible).

    The crop is the latent cell of that location plus ``context`` cells on each side (clipped to the
    image), resized to a common size. One row per part.

    Args:
        parts: which parts (default: all, in order).
    Returns:
        the grid (3, H', W') in [0, 1], and the parts in row order.
    """
    x = _preprocess(model, images)
    vis = _visibility(model, x)  # (B, P, h, w)
    b, p, h, w = vis.shape
    stride_h, stride_w = x.shape[-2] // h, x.shape[-1] // w
    side_h = min(stride_h * (2 * context + 1), x.shape[-2])
    side_w = min(stride_w * (2 * context + 1), x.shape[-1])
    pixels = _unit(x, model).expand(-1, 3, -1, -1)
    parts = list(range(p)) if parts is None else list(parts)
    tiles = []
    for part in parts:
        peak, where = vis[:, part].flatten(1).max(dim=1)  # per image: highest visibility and its location
        for i in peak.argsort(descending=True)[: min(per_part, b)].tolist():
            row, col = divmod(int(where[i]), w)
            top = min(max(0, (row - context) * stride_h), x.shape[-2] - side_h)
            left = min(max(0, (col - context) * stride_w), x.shape[-1] - side_w)
            crop = pixels[i, :, top : top + side_h, left : left + side_w]
            tiles.append(F.interpolate(crop[None], size=(side_h * scale, side_w * scale), mode="nearest")[0])
        tiles += [torch.ones(3, side_h * scale, side_w * scale)] * (per_part - min(per_part, b))
    return make_grid(torch.stack(tiles), nrow=per_part, padding=1, pad_value=1.0), parts


@torch.no_grad()
def lw_mask_grid(model: nn.Module, images: torch.Tensor, cell: int | None = None, scale: int = 2) -> torch.Tensor:
    """Supplement Figure 1 analogue: each image beside its L_w weight map (gradient energy of its
    ``cell``×``cell`` patches, default the model's latent cell), scaled to [0, 1] per image."""
    from .losses import laplacian_weights

    x = _preprocess(model, images)
    if cell is None:
        cell = x.shape[-1] // model.representations(tuple(x.shape[1:]))["features"].shape[-1]
    weights = laplacian_weights(x, cell).float().mean(1, keepdim=True)  # (B, 1, H, W)
    peak = weights.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)
    tiles = torch.stack([_unit(x, model).expand(-1, 3, -1, -1), (weights / peak).expand(-1, 3, -1, -1)], dim=1)
    tiles = F.interpolate(tiles.flatten(0, 1), scale_factor=scale, mode="nearest")
    return make_grid(tiles, nrow=16, padding=1, pad_value=0.5)


def _dense_layer(model: nn.Module, layer: str) -> None:
    infos = model.representations()
    if layer not in infos or len(infos[layer].shape) != 3:
        raise ValueError(f"{type(model).__name__} has no dense map layer {layer!r} (a (d, h, w) map of patch codes, e.g. "
                         f"the sixt2018_patch_* models' 'dense'); its layers: {list(infos)}")


@torch.no_grad()
def similarity_maps(
    model: nn.Module, query: torch.Tensor, position: tuple[int, int], images: torch.Tensor, *, layer: str = "dense",
    batch_size: int = 256,
) -> tuple[torch.Tensor, int]:
    """Sixt §7.2: the L2 distance between the code of the query patch and the code of every patch of ``images``.

    Args:
        query: the query image, uint8 (C, H, W).
        position: (row, col) of the query patch's centre pixel in the query image.
        images: uint8 (N, C, H, W), the images to score (the query image may be among them).
        layer: the model's dense map of patch codes (μ, mode "mean"), (d, H-p+1, W-p+1).
    Returns:
        distances (N, H-p+1, W-p+1), float32 (entry (r, c) is the patch centred at (r + o, c + o)), and the
        offset o = (H - h) // 2 of the map's first position from the image's corner (⌊p/2⌋).
    """
    _dense_layer(model, layer)
    q = _preprocess(model, query[None])
    codes = model.represent(q, [layer])[layer].float()  # (1, d, h, w)
    offset = (q.shape[-2] - codes.shape[-2]) // 2
    row, col = position[0] - offset, position[1] - offset
    if not (0 <= row < codes.shape[-2] and 0 <= col < codes.shape[-1]):
        raise ValueError(f"the query patch centre {tuple(position)} must be at least {offset} pixels from the border "
                         f"of the {q.shape[-2]}x{q.shape[-1]} image (the patch must lie inside it)")
    target = codes[0, :, row, col][:, None, None]  # (d, 1, 1)
    x = _preprocess(model, images)
    out = []
    for start in range(0, len(x), batch_size):
        maps = model.represent(x[start : start + batch_size], [layer])[layer].float()  # (B, d, h, w)
        out.append((maps - target).square().sum(1).sqrt())
    return torch.cat(out), offset


@torch.no_grad()
def similarity_grid(
    model: nn.Module, query: torch.Tensor, position: tuple[int, int], images: torch.Tensor, *, layer: str = "dense",
    scale: int = 3,
) -> torch.Tensor:
    """The similarity maps as a figure: the query image (its patch outlined in red), then each image above its
    map (bright = similar: the distance min-max normalised per image, grey where no patch is centred):
    (3, H', W') in [0, 1]."""
    dist, offset = similarity_maps(model, query, position, images, layer=layer)
    n, h, w = dist.shape
    height, width = images.shape[-2:]
    lo = dist.flatten(1).amin(1).view(n, 1, 1)
    hi = dist.flatten(1).amax(1).view(n, 1, 1)
    sim = 1.0 - (dist - lo) / (hi - lo).clamp_min(1e-12)
    heat = torch.full((n, 3, height, width), 0.5)
    heat[:, :, offset : offset + h, offset : offset + w] = sim[:, None]
    pixels = _unit(_preprocess(model, images), model).expand(-1, 3, -1, -1)
    q = _unit(_preprocess(model, query[None]), model).expand(-1, 3, -1, -1).clone()
    p = height - h + 1
    top, left = position[0] - offset, position[1] - offset
    red = torch.tensor([1.0, 0.0, 0.0])[:, None, None]
    for r in (top, top + p - 1):
        q[0, :, r : r + 1, left : left + p] = red
    for c in (left, left + p - 1):
        q[0, :, top : top + p, c : c + 1] = red
    blank = torch.ones_like(q)
    tiles = torch.cat([torch.cat([q, pixels]), torch.cat([blank, heat])])
    tiles = F.interpolate(tiles, scale_factor=scale, mode="nearest")
    return make_grid(tiles, nrow=n + 1, padding=1, pad_value=1.0)


def save_figures(
    model_or_name: nn.Module | str, images: torch.Tensor, out_dir: str | Path, *, prefix: str = "", parts: str = "active",
    num_images: int = 8,
) -> dict[str, Path]:
    """Write the figures of a model on uint8 ``images`` (N, C, H, W) to ``out_dir`` as PNGs.

    Always: ``reconstructions`` (``num_images`` images spread evenly over ``images``; patch models: the
    tiled reconstruction of S Figs 4-5) and, for generative
    models, ``samples`` (decoded prior draws: no pixel of ``images`` in them). For part models also ``visibility``, ``parts`` (Figure 3 analogue over
    all of ``images``; ``parts="active"``: only the active parts of
    :func:`patchvae.evaluation.part_health`, else all) and ``lw_masks``. ``prefix`` starts every file
    name. Models with a dense map of patch codes (``dense``) also get ``similarity`` (S Figs 6-7: the first
    image's centre patch against every patch of the images). Returns {figure: path}.
    """
    from .models import create

    model = create(model_or_name, pretrained=True) if isinstance(model_or_name, str) else model_or_name
    model = model.eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = (prefix + "-") if prefix else ""
    written: dict[str, Path] = {}
    first = images[torch.linspace(0, len(images) - 1, min(num_images, len(images))).round().long()]
    save_image(reconstruction_grid(model, first), written.setdefault("reconstructions", out / f"{name}reconstructions.png"))
    if hasattr(model, "sample"):
        save_image(sample_grid(model), written.setdefault("samples", out / f"{name}samples.png"))
    if "visibility" in model.representations():
        save_image(visibility_grid(model, first), written.setdefault("visibility", out / f"{name}visibility.png"))
        chosen = None
        if parts == "active":
            from .evaluation.part_health import part_health

            chosen = list(part_health(model, images, progress=False).active)
        grid, _ = part_crop_grid(model, images, parts=chosen)
        save_image(grid, written.setdefault("parts", out / f"{name}parts.png"))
        save_image(lw_mask_grid(model, images[:16]), written.setdefault("lw_masks", out / f"{name}lw_masks.png"))
    if "dense" in model.representations():  # patch-code similarity (Sixt Figs 6-7): the first image's centre patch
        centre = (images.shape[-2] // 2, images.shape[-1] // 2)
        save_image(similarity_grid(model, first[0], centre, first),
                   written.setdefault("similarity", out / f"{name}similarity.png"))
    for figure, path in written.items():
        log.info("wrote %s: %s", figure, path)
    return written
