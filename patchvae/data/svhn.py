"""SVHN (Netzer et al. 2011), cropped digits, as in-memory uint8 tensors from the official ``.mat`` files.

``root`` (default ``$PATCHVAE_DATA_DIR/svhn``) holds ``train_32x32.mat`` and ``test_32x32.mat`` (the ``extra``
split is not used, as in Zhang et al. 2022 §6); ``download=True`` fetches them with torchvision. The files are
MATLAB v5 arrays ``X`` (32, 32, 3, N) uint8 and ``y`` (N, 1) with the digit 0 stored as 10 (mapped to 0 here).
Reading them needs SciPy (``pip install scipy``; scikit-learn, in the ``dev``/``sklearn`` extras, brings it).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from .memory import ImageTensorDataset

__all__ = ["SVHN_CLASSES", "find_svhn", "load_svhn"]

log = logging.getLogger(__name__)

SVHN_CLASSES = tuple(str(d) for d in range(10))
_FILES = {True: "train_32x32.mat", False: "test_32x32.mat"}


def find_svhn(root: str | os.PathLike, train: bool = True) -> Path | None:
    """The ``.mat`` file of the split under ``root``, or None."""
    path = Path(root).expanduser() / _FILES[train]
    return path if path.is_file() else None


def load_svhn(root: str | os.PathLike, train: bool = True, download: bool = False) -> ImageTensorDataset:
    """The train (73,257) or test (26,032) split: uint8 images (N, 3, 32, 32) and int64 labels (N,) in [0, 10)."""
    path = find_svhn(root, train)
    if path is None and download:
        from torchvision.datasets import SVHN

        SVHN(str(Path(root).expanduser()), split="train" if train else "test", download=True)
        path = find_svhn(root, train)
    if path is None:
        raise FileNotFoundError(
            f"SVHN not found: expected {Path(root).expanduser() / _FILES[train]}. Download it from "
            "http://ufldl.stanford.edu/housenumbers/ into that directory, or pass --download (Python: download=True)."
        )
    try:
        from scipy.io import loadmat
    except ImportError as err:
        raise ImportError("reading SVHN's .mat files needs SciPy: pip install scipy") from err
    try:
        mat = loadmat(str(path))
        images, labels = mat["X"], mat["y"]
    except (KeyError, ValueError, OSError) as err:
        raise ValueError(f"{path} is not an SVHN .mat file with arrays X (32, 32, 3, N) and y (N, 1): {err}; "
                         "download it again") from err
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[:3] != (32, 32, 3) or labels.size != images.shape[3]:
        raise ValueError(f"{path}: X must be uint8 (32, 32, 3, N) and y hold N labels, got X {images.dtype} "
                         f"{images.shape}, y {labels.shape}; download it again")
    labels = labels.reshape(-1).astype(np.int64) % 10  # the digit 0 is stored as 10
    log.debug("SVHN %s split from %s: %d images", "train" if train else "test", path, len(labels))
    return ImageTensorDataset(torch.from_numpy(np.ascontiguousarray(images.transpose(3, 2, 0, 1))),
                              torch.from_numpy(labels), SVHN_CLASSES)
