"""CIFAR-100 (Krizhevsky 2009) as in-memory uint8 tensors, read with torchvision's ``CIFAR100``.

``root`` holds torchvision's layout: ``root/cifar-100-python/{train,test,meta}`` (the official
``cifar-100-python.tar.gz`` extracted into ``root``); passing the ``cifar-100-python`` folder itself
also works. torchvision checks the files' md5 sums, so only the official files are accepted.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from .memory import ImageTensorDataset

__all__ = ["CIFAR100_URL", "find_cifar100", "load_cifar100"]

log = logging.getLogger(__name__)

CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
_FOLDER = "cifar-100-python"
_FILES = ("train", "test", "meta")


def find_cifar100(root: str | os.PathLike) -> Path | None:
    """The directory holding ``cifar-100-python/`` (torchvision's ``root``), or None if absent."""
    root = Path(root).expanduser()
    for base in (root, root.parent if root.name == _FOLDER else None):
        if base is not None and all((base / _FOLDER / name).is_file() for name in _FILES):
            return base
    return None


def load_cifar100(root: str | os.PathLike, train: bool = True, download: bool = False) -> ImageTensorDataset:
    """The train (50,000) or test (10,000) split: uint8 images (N, 3, 32, 32), fine labels (N,) in [0, 100).

    Raises:
        FileNotFoundError: the files are absent and ``download`` is False.
        RuntimeError: the files are present but fail torchvision's md5 check.
    """
    from torchvision.datasets import CIFAR100

    found = find_cifar100(root)
    if found is None and not download:
        expected = Path(root).expanduser() / _FOLDER
        raise FileNotFoundError(
            f"CIFAR-100 not found: expected the files {', '.join(_FILES)} in {expected}. Download "
            f"{CIFAR100_URL} and extract it into {Path(root).expanduser()}, or pass --download (Python: download=True)."
        )
    base = found if found is not None else Path(root).expanduser()
    try:
        ds = CIFAR100(str(base), train=train, download=download)
    except RuntimeError as err:
        raise RuntimeError(
            f"CIFAR-100 files in {base / _FOLDER} fail torchvision's md5 check (damaged, or not the official "
            f"release): delete them and download {CIFAR100_URL} again, or pass --download (Python: download=True). ({err})"
        ) from err
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # (N, 32, 32, 3) HWC -> NCHW
    log.debug("CIFAR-100 %s split from %s: %d images", "train" if train else "test", base, len(images))
    return ImageTensorDataset(images, torch.as_tensor(ds.targets, dtype=torch.long), ds.classes)
