"""Random p×p patches of image batches: the training data of Sixt's patch VAEs (S §5, Fig. 3).

"Patches of size 9x9 are sampled uniformly from the dataset": a uniformly random image, then a uniformly
random valid position (every p×p crop that lies inside the image, H-p+1 × W-p+1 of them). The trainer
shuffles the images; :func:`random_patches` draws positions for a batch in one gather, on whatever tensor
it gets (the in-memory uint8 fast path hands it normalised float batches already on the device), so a
patch costs no more than indexing. :func:`fixed_patches` draws a seeded sample of a whole set, the
"fixed random subsample of test patches" the patch metrics average over (S Tables 2-3).
"""

from __future__ import annotations

import torch

__all__ = ["crop_at", "fixed_patches", "patch_positions", "random_patches"]


def _check(images: torch.Tensor, size: int) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"expected an image batch (B, C, H, W), got {getattr(images, 'shape', type(images).__name__)}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"the patch size must be an int >= 1, got {size!r}")
    if min(images.shape[-2:]) < size:
        raise ValueError(f"{size}x{size} patches do not fit in {images.shape[-2]}x{images.shape[-1]} images")


def patch_positions(
    batch: int, height: int, width: int, size: int, per_image: int = 1, *, generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Uniform top-left corners of ``per_image`` valid ``size``×``size`` crops per image: (batch·per_image, 2) (row, col)."""
    if per_image < 1:
        raise ValueError(f"per_image must be >= 1, got {per_image}")
    n = batch * per_image
    rows = torch.randint(0, height - size + 1, (n,), generator=generator, device=device)
    cols = torch.randint(0, width - size + 1, (n,), generator=generator, device=device)
    return torch.stack([rows, cols], dim=1)


def crop_at(images: torch.Tensor, size: int, positions: torch.Tensor, image_index: torch.Tensor) -> torch.Tensor:
    """The crops ``images[image_index[k], :, r_k:r_k+size, c_k:c_k+size]``: (K, C, size, size), one gather."""
    offsets = torch.arange(size, device=images.device)
    rows = (positions[:, 0:1].to(images.device) + offsets)[:, :, None]  # (K, size, 1)
    cols = (positions[:, 1:2].to(images.device) + offsets)[:, None, :]  # (K, 1, size)
    out = images[image_index.to(images.device)[:, None, None], :, rows, cols]  # (K, size, size, C)
    return out.permute(0, 3, 1, 2).contiguous()


def random_patches(
    images: torch.Tensor, size: int, per_image: int = 1, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``per_image`` uniformly placed ``size``×``size`` crops of every image: (B, C, H, W) -> (B·per_image, C, size, size).

    Patches of image b are rows b·per_image .. (b+1)·per_image − 1; values and dtype are the images' own.
    ``generator`` must live on the images' device (None: torch's global generator).
    """
    _check(images, size)
    batch, _, height, width = images.shape
    positions = patch_positions(batch, height, width, size, per_image, generator=generator, device=images.device)
    index = torch.arange(batch, device=images.device).repeat_interleave(per_image)
    return crop_at(images, size, positions, index)


def fixed_patches(images: torch.Tensor, size: int, num_patches: int, *, seed: int = 0) -> torch.Tensor:
    """A seeded sample of ``num_patches`` patches of a set of images (B, C, H, W): uniform image, uniform position.

    The same ``seed`` and set give the same patches on every run and machine (CPU generator).
    """
    _check(images, size)
    if num_patches < 1:
        raise ValueError(f"num_patches must be >= 1, got {num_patches}")
    gen = torch.Generator().manual_seed(seed)
    batch, _, height, width = images.shape
    index = torch.randint(0, batch, (num_patches,), generator=gen)
    positions = patch_positions(num_patches, height, width, size, generator=gen)
    return crop_at(images, size, positions, index)
