"""Fashion-MNIST (Xiao et al. 2017) as in-memory uint8 tensors.

Looked up in the ``root`` you pass, and only there; without one, in ``$PATCHVAE_FASHION_MNIST`` and
then Debian's ``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist``). A directory
may hold the four standard IDX files (``.gz`` or not) or torchvision's ``FashionMNIST/raw`` layout.
If none is found and ``download=True``, torchvision downloads the data into ``root``. An explicit
``root`` without the files is an error (or a download), never a silent fallback to another copy.
"""

from __future__ import annotations

import gzip
import logging
import os
from pathlib import Path

import numpy as np
import torch

from .memory import ImageTensorDataset

__all__ = ["CLASSES", "DEBIAN_DIR", "find_fashion_mnist", "load_fashion_mnist"]

log = logging.getLogger(__name__)

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_SIZES = {True: 60_000, False: 10_000}


def _candidate_dirs(root: str | os.PathLike | None) -> list[Path]:
    dirs = []
    bases = (root,) if root is not None else (os.environ.get("PATCHVAE_FASHION_MNIST"), DEBIAN_DIR)
    for base in bases:
        if base:
            base = Path(base).expanduser()
            dirs += [base, base / "FashionMNIST" / "raw", base / "fashion-mnist"]
    return dirs


def _find_file(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def find_fashion_mnist(root: str | os.PathLike | None = None) -> Path | None:
    """The first directory holding all four Fashion-MNIST IDX files (only under ``root`` if given), or None."""
    for directory in _candidate_dirs(root):
        if all(_find_file(directory, stem) for split in (True, False) for stem in _FILES[split]):
            return directory
    return None


def _read_idx(path: Path, ndim: int, count: int) -> np.ndarray:
    """Parse a uint8 IDX file (optionally gzipped); checks the magic number and the item count."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[:4], "big")
    if magic != 0x0800 + ndim:
        raise ValueError(f"{path} is not a uint8 IDX file with {ndim} dimension(s) (magic {magic:#x}); re-download it")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    header = 4 + 4 * ndim
    if shape[0] != count or len(data) != header + int(np.prod(shape)):
        raise ValueError(f"{path} holds {shape} / {len(data)} bytes, expected {count} items; the file is damaged")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def load_fashion_mnist(
    root: str | os.PathLike | None = None, train: bool = True, download: bool = False
) -> ImageTensorDataset:
    """The train (60,000) or test (10,000) split: uint8 images (N, 1, 28, 28) and int64 labels (N,)."""
    directory = find_fashion_mnist(root)
    if directory is not None:
        img_stem, lbl_stem = _FILES[train]
        images = _read_idx(_find_file(directory, img_stem), 3, _SIZES[train])
        labels = _read_idx(_find_file(directory, lbl_stem), 1, _SIZES[train])
        log.debug("Fashion-MNIST %s split from %s", "train" if train else "test", directory)
        return ImageTensorDataset(
            torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)), CLASSES
        )
    if download:
        from torchvision.datasets import FashionMNIST

        target = Path(root or Path.home() / ".cache" / "patchvae" / "data").expanduser()
        ds = FashionMNIST(str(target), train=train, download=True)
        return ImageTensorDataset(ds.data.unsqueeze(1).contiguous(), ds.targets.long(), CLASSES)
    if root is not None:
        raise FileNotFoundError(
            f"Fashion-MNIST not found in {Path(root).expanduser()} (expected the four IDX files, e.g. "
            "train-images-idx3-ubyte[.gz], there or in FashionMNIST/raw/). Fix --data-dir / root=..., drop it to use "
            "$PATCHVAE_FASHION_MNIST or the system copy, or allow downloading into it (--download / download=True)."
        )
    searched = ", ".join(str(d) for d in _candidate_dirs(root)[::3])
    raise FileNotFoundError(
        f"Fashion-MNIST not found (looked in: {searched}). Install it with "
        "'apt-get install dataset-fashion-mnist', pass the directory holding the IDX files "
        "(--data-dir / root=...), or allow downloading with --download (Python: download=True)."
    )
