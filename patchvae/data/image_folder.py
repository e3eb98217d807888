"""Class-per-folder image directories (torchvision's ImageFolder): ImageNet and any such dataset.

Layout: ``root/<split>/<class>/<image>`` (``root/train``, ``root/val``, ...). Labels index the class
folders sorted by name; every split must have the same class folders as ``root/train`` so that a
label means the same class in all splits.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import find_classes

__all__ = ["IMAGENET_NUM_CLASSES", "IMAGENET_SPLITS", "IMAGENET_URL", "load_image_folder", "load_imagenet"]

log = logging.getLogger(__name__)

IMAGENET_URL = "https://image-net.org/download-images.php"
IMAGENET_NUM_CLASSES = 1000
IMAGENET_SPLITS = ("unsupervised", "train", "val")
_IMAGENET_HOW_TO_GET = (
    f"Download ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar and ILSVRC2012_devkit_t12.tar.gz from "
    f"{IMAGENET_URL} into the root and run torchvision.datasets.ImageNet(root, split='train') and "
    "split='val' once: they extract the archives into root/train/<wnid>/ and root/val/<wnid>/."
)


def _check_class_folders(directory: Path, how_to_get: str) -> None:
    if not directory.is_dir():
        raise FileNotFoundError(f"expected the directory {directory} with one sub-directory per class. {how_to_get}".rstrip())
    if not any(entry.is_dir() for entry in os.scandir(directory)):
        raise FileNotFoundError(
            f"{directory} has no class sub-directories: images must be sorted into {directory}/<class>/. {how_to_get}".rstrip()
        )


def load_image_folder(
    root: str | os.PathLike,
    split: str | None = None,
    transform: Callable[[Any], Any] | None = None,
    how_to_get: str = "",
) -> ImageFolder:
    """``root/split`` (or ``root`` itself when ``split`` is None) as an ImageFolder; ``"unsupervised"``
    reads ``root/train``. Items are ``(transform(PIL RGB image), label)``.

    Raises:
        FileNotFoundError: the directory is missing or has no class folders.
        ValueError: its class folders differ from those of ``root/train``.
    """
    root = Path(root).expanduser()
    if split == "unsupervised":
        split = "train"
    directory = root / split if split else root
    _check_class_folders(directory, how_to_get)
    dataset = ImageFolder(str(directory), transform=transform)
    reference = root / "train"
    if split and split != "train" and reference.is_dir():
        ref_classes, _ = find_classes(reference)
        if dataset.classes != ref_classes:
            extra = sorted(set(dataset.classes) - set(ref_classes))
            absent = sorted(set(ref_classes) - set(dataset.classes))
            raise ValueError(
                f"the class folders of {directory} differ from those of {reference}, so labels would not match "
                f"(only in {split}: {extra[:5]}; only in train: {absent[:5]})"
            )
    log.info("image folder %s: %d images, %d classes", directory, len(dataset), len(dataset.classes))
    return dataset


def load_imagenet(
    root: str | os.PathLike, split: str = "train", transform: Callable[[Any], Any] | None = None
) -> ImageFolder:
    """ILSVRC-2012 ``split`` ("unsupervised" = "train", "train" or "val") from ``root/{train,val}/<wnid>/``."""
    if split not in IMAGENET_SPLITS:
        raise ValueError(f"unknown ImageNet split {split!r}; choose one of {IMAGENET_SPLITS}")
    dataset = load_image_folder(root, split, transform, how_to_get=_IMAGENET_HOW_TO_GET)
    if len(dataset.classes) != IMAGENET_NUM_CLASSES:
        log.warning("ImageNet at %s has %d classes, ILSVRC-2012 has %d", root, len(dataset.classes), IMAGENET_NUM_CLASSES)
    return dataset
