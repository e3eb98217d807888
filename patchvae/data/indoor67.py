"""MIT Indoor Scene Recognition (Quattoni & Torralba 2009): 67 classes, 15,620 images, read from disk.

Layout of ``root`` (the official ``indoorCVPR_09.tar`` extracted into it, plus the two split files)::

    root/Images/<class>/<file>.jpg      e.g. Images/kitchen/int474.jpg
    root/TrainImages.txt                one path relative to Images/ a line (5,360 lines)
    root/TestImages.txt                 (1,340 lines)

Splits (paper §4): ``"train"`` / ``"test"`` are the official lists (classification);
``"unsupervised"`` is every image under ``Images/`` except the test images (pretraining).
Labels index the class folders sorted by name, as torchvision's ImageFolder, in every split.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

from .image_list import ImageListDataset

__all__ = ["INDOOR67_NUM_CLASSES", "INDOOR67_SPLITS", "INDOOR67_URL", "load_indoor67"]

log = logging.getLogger(__name__)

INDOOR67_URL = "https://web.mit.edu/torralba/www/indoor.html"
INDOOR67_NUM_CLASSES = 67
INDOOR67_SPLITS = ("unsupervised", "train", "test")
_SPLIT_FILES = {"train": "TrainImages.txt", "test": "TestImages.txt"}
_HOW_TO_GET = (
    f"Get indoorCVPR_09.tar, TrainImages.txt and TestImages.txt from {INDOOR67_URL}, extract the tar "
    "into the root (it creates Images/) and put both .txt files next to Images/."
)


def _read_split_file(path: Path) -> list[str]:
    """Relative paths (``class/file.jpg``) listed in an official split file."""
    if not path.is_file():
        raise FileNotFoundError(f"Indoor67 split file {path.name} not found: expected {path}. {_HOW_TO_GET}")
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = line.strip().replace("\\", "/")
        if entry:
            entries.append(str(PurePosixPath(entry)))
    return entries


def _scan_images(images_dir: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """Class names and (relative posix path, label) of every image under ``images_dir``."""
    if not images_dir.is_dir():
        raise FileNotFoundError(
            f"Indoor67 images not found: expected the directory {images_dir} holding one folder per class. {_HOW_TO_GET}"
        )
    classes, class_to_idx = find_classes(images_dir)
    samples = make_dataset(images_dir, class_to_idx, extensions=IMG_EXTENSIONS)
    rel = [(Path(path).relative_to(images_dir).as_posix(), label) for path, label in samples]
    return classes, rel


def _check_listed(listed: list[str], available: set[str], split_file: Path, images_dir: Path) -> None:
    missing = [p for p in listed if p not in available]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise FileNotFoundError(
            f"{len(missing)} image(s) listed in {split_file} are missing under {images_dir}: {shown}. "
            f"The image tree is incomplete or does not match the split file. {_HOW_TO_GET}"
        )


def load_indoor67(
    root: str | os.PathLike, split: str = "train", transform: Callable[[Any], Any] | None = None
) -> ImageListDataset:
    """Indoor67 ``split`` ("unsupervised", "train" or "test"); items are ``(transform(PIL RGB image), label)``.

    Raises:
        ValueError: unknown split.
        FileNotFoundError: ``Images/``, a split file, or an image listed in a split file is missing.
    """
    if split not in INDOOR67_SPLITS:
        raise ValueError(f"unknown Indoor67 split {split!r}; choose one of {INDOOR67_SPLITS}")
    root = Path(root).expanduser()
    images_dir = root / "Images"
    classes, all_samples = _scan_images(images_dir)
    if len(classes) != INDOOR67_NUM_CLASSES:
        log.warning("Indoor67 at %s has %d classes, the official release has %d", root, len(classes), INDOOR67_NUM_CLASSES)
    available = {path for path, _ in all_samples}
    list_file = root / _SPLIT_FILES["train" if split == "train" else "test"]
    listed = _read_split_file(list_file)
    _check_listed(listed, available, list_file, images_dir)
    keep = available - set(listed) if split == "unsupervised" else set(listed)
    chosen = [(path, label) for path, label in all_samples if path in keep]
    log.info("Indoor67 %s split: %d of %d images from %s", split, len(chosen), len(all_samples), root)
    return ImageListDataset(
        images_dir, [p for p, _ in chosen], [label for _, label in chosen], classes, transform=transform
    )
