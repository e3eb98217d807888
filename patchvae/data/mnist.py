"""MNIST (LeCun et al. 1998) as in-memory uint8 tensors: the four IDX files, or torchvision's ``MNIST/raw``.

``root`` (default ``$PATCHVAE_DATA_DIR/mnist``) holds ``train-images-idx3-ubyte[.gz]`` and the three other
files, directly or in ``MNIST/raw/``; ``download=True`` fetches them with torchvision. Zhang et al. 2022's
Table 2 and Table 6 use it (Fashion-MNIST stands in for it in our own runs: MNIST is not available here).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from .fashion_mnist import _FILES, _SIZES, _find_file, _read_idx
from .memory import ImageTensorDataset

__all__ = ["MNIST_CLASSES", "find_mnist", "load_mnist"]

log = logging.getLogger(__name__)

MNIST_CLASSES = tuple(str(d) for d in range(10))


def find_mnist(root: str | os.PathLike) -> Path | None:
    """The directory under ``root`` holding all four MNIST IDX files (``root`` or ``root/MNIST/raw``), or None."""
    base = Path(root).expanduser()
    for directory in (base, base / "MNIST" / "raw"):
        if all(_find_file(directory, stem) for split in (True, False) for stem in _FILES[split]):
            return directory
    return None


def load_mnist(root: str | os.PathLike, train: bool = True, download: bool = False) -> ImageTensorDataset:
    """The train (60,000) or test (10,000) split: uint8 images (N, 1, 28, 28) and int64 labels (N,)."""
    directory = find_mnist(root)
    if directory is None and download:
        from torchvision.datasets import MNIST

        MNIST(str(Path(root).expanduser()), train=train, download=True)
        directory = find_mnist(root)
    if directory is None:
        raise FileNotFoundError(
            f"MNIST not found in {Path(root).expanduser()} (expected the four IDX files, e.g. train-images-idx3-ubyte[.gz], "
            "there or in MNIST/raw/). Pass the directory holding them (--data-dir / root=...) or allow downloading "
            "(--download / download=True)."
        )
    img_stem, lbl_stem = _FILES[train]
    images = _read_idx(_find_file(directory, img_stem), 3, _SIZES[train])
    labels = _read_idx(_find_file(directory, lbl_stem), 1, _SIZES[train])
    log.debug("MNIST %s split from %s", "train" if train else "test", directory)
    return ImageTensorDataset(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)),
                              MNIST_CLASSES)
