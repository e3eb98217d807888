"""Places205 (Zhou et al. 2014): 205 scene classes, ~2.45 M training images, read from disk.

Layout of ``root`` (the official ``imagesPlaces205_resize.tar.gz`` and ``trainvalsplit_places205.tar.gz``
extracted into it)::

    root/data/vision/torralba/deeplearning/images256/<path>     e.g. a/abbey/00000001.jpg
    root/trainvalsplit_places205/train_places205.csv            lines "<path> <label>"
    root/trainvalsplit_places205/val_places205.csv

Splits: ``"train"``, ``"val"``, and ``"unsupervised"`` (= ``"train"``, used for pretraining).
Labels are the ones in the csv files; class names are the folders of the images (``a/abbey``).
"""

from __future__ import annotations

import logging
import os
import posixpath
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .image_list import ImageListDataset

__all__ = ["PLACES205_IMAGES", "PLACES205_NUM_CLASSES", "PLACES205_SPLITS", "PLACES205_URL", "load_places205"]

log = logging.getLogger(__name__)

PLACES205_URL = "http://places.csail.mit.edu/downloadData.html"
PLACES205_NUM_CLASSES = 205
PLACES205_SPLITS = ("unsupervised", "train", "val")
#: image directory relative to the root, as extracted from the official archive
PLACES205_IMAGES = Path("data/vision/torralba/deeplearning/images256")
_SPLIT_DIR = "trainvalsplit_places205"
_HOW_TO_GET = (
    f"Get imagesPlaces205_resize.tar.gz and trainvalsplit_places205.tar.gz from {PLACES205_URL} "
    "and extract both into the root."
)


def _read_split_csv(path: Path) -> tuple[list[str], list[int]]:
    """Relative image paths and labels of a ``<path> <label>`` split file."""
    if not path.is_file():
        raise FileNotFoundError(f"Places205 split file {path.name} not found: expected {path}. {_HOW_TO_GET}")
    paths, labels = [], []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.strip().rsplit(maxsplit=1)
            if not fields:
                continue
            try:
                rel, label = fields[0].lstrip("/"), int(fields[1])
            except (IndexError, ValueError):
                raise ValueError(f"{path}:{lineno}: expected '<path> <label>', got {line.strip()!r}") from None
            if not 0 <= label < PLACES205_NUM_CLASSES:
                raise ValueError(f"{path}:{lineno}: label {label} is outside [0, {PLACES205_NUM_CLASSES})")
            paths.append(rel)
            labels.append(label)
    return paths, labels


def _class_names(paths: list[str], labels: list[int]) -> tuple[str, ...]:
    """Name of each label: the folder of its images (``a/abbey``); the label itself if no image has it."""
    names: dict[int, str] = {}
    for rel, label in zip(paths, labels):
        names.setdefault(label, posixpath.dirname(rel))
    size = max(names, default=-1) + 1
    return tuple(names.get(i, str(i)) for i in range(size))


def load_places205(
    root: str | os.PathLike, split: str = "train", transform: Callable[[Any], Any] | None = None
) -> ImageListDataset:
    """Places205 ``split`` ("unsupervised", "train" or "val"); items are ``(transform(PIL RGB image), label)``.

    Only the first listed image is checked for existence (the train list has ~2.45 M entries).

    Raises:
        ValueError: unknown split or a malformed split file.
        FileNotFoundError: the image directory, the split file or its first image is missing.
    """
    if split not in PLACES205_SPLITS:
        raise ValueError(f"unknown Places205 split {split!r}; choose one of {PLACES205_SPLITS}")
    root = Path(root).expanduser()
    images_dir = root / PLACES205_IMAGES
    if not images_dir.is_dir():
        raise FileNotFoundError(f"Places205 images not found: expected the directory {images_dir}. {_HOW_TO_GET}")
    csv_name = f"{'val' if split == 'val' else 'train'}_places205.csv"
    csv_path = root / _SPLIT_DIR / csv_name
    paths, labels = _read_split_csv(csv_path)
    if paths and not (images_dir / paths[0]).is_file():
        raise FileNotFoundError(
            f"{images_dir / paths[0]}, the first image listed in {csv_path}, does not exist: "
            f"the root should hold both {PLACES205_IMAGES}/ and {_SPLIT_DIR}/. {_HOW_TO_GET}"
        )
    log.info("Places205 %s split: %d images from %s", split, len(paths), root)
    return ImageListDataset(images_dir, paths, labels, _class_names(paths, labels), transform=transform)
