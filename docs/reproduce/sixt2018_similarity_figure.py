"""Similarity maps (Sixt 2018 §7.2, Figs 6-7 analogue) of the six packaged patch VAEs on synthetic images.

    python docs/reproduce/sixt2018_similarity_figure.py [OUT_DIR]

The committed figure uses procedurally drawn 32x32 images (disks, stripes, a checkerboard, edges), so it holds
no pixel of CIFAR-10; the same figure on CIFAR-10 test images is one command:
``patchvae similarity sixt2018_patch_p9_i1 --data-dir ../shared/data/cifar10-jpeg.zip --out sim.png``.
The query (red square) is a patch on the left edge of the red disk of the first image.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torchvision.utils import save_image

import patchvae.models as zoo
from patchvae.visualize import similarity_grid

CONFIGS = ((3, 1), (9, 1), (9, 3), (15, 1), (15, 3), (15, 5))


def synthetic_images() -> torch.Tensor:
    """Six 32x32 RGB uint8 test images drawn from formulas (no dataset pixels)."""
    r, c = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")

    def rgb(*chans: torch.Tensor) -> torch.Tensor:
        return torch.stack([ch.clamp(0, 1) for ch in chans])

    disk = ((r - 16) ** 2 + (c - 16) ** 2 < 81).float()
    two = (((r - 10) ** 2 + (c - 9) ** 2 < 36) | ((r - 22) ** 2 + (c - 23) ** 2 < 49)).float()
    stripes = ((c // 3) % 2).float()
    checker = (((r // 4) + (c // 4)) % 2).float()
    square = ((r > 8) & (r < 24) & (c > 8) & (c < 24)).float()
    edge = (r > 15).float()
    images = torch.stack([
        rgb(0.9 * disk + 0.1, 0.2 + 0 * r, 0.8 * (1 - disk) + 0.1),
        rgb(0.2 + 0.6 * two, 0.2 + 0.2 * two, 0.7 - 0.5 * two),
        rgb(stripes, stripes, stripes),
        rgb(0.2 + 0.6 * checker, 0.5 + 0 * r, 0.8 - 0.6 * checker),
        rgb(r / 31, 0.3 + 0.6 * square, c / 31),
        rgb(0.3 + 0.5 * edge, 0.6 - 0.4 * edge, 0.3 + 0 * r),
    ])
    return (images * 255).round().to(torch.uint8)


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/figures")
    out.mkdir(parents=True, exist_ok=True)
    images = synthetic_images()
    for p, i in CONFIGS:
        model = zoo.create(f"sixt2018_patch_p{p}_i{i}", pretrained=True).eval()
        path = out / f"sixt2018_p{p}_i{i}-similarity-synthetic.png"
        save_image(similarity_grid(model, images[0], (16, 8), images), path)
        print(path)


if __name__ == "__main__":
    main()
