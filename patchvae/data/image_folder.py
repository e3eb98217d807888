"""Class-per-folder image directories (torchvision's ImageFolder): ImageNet and any such dataset.

Layout: ``root/<split>/<class>/<image>`` (``root/train``, ``root/val``, ...). Labels index the class
folders sorted by name; every split must have the same class folders as ``root/train`` so that a
label means the same class in all splits. A folder of images without class sub-folders (flat,
unlabelled) is read as one class (label 0): :class:`FlatImageFolder`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS, default_loader, find_classes

__all__ = ["IMAGENET_NUM_CLASSES", "IMAGENET_SPLITS", "IMAGENET_URL", "FlatImageFolder", "load_image_folder", "load_imagenet"]

log = logging.getLogger(__name__)

IMAGENET_URL = "https://image-net.org/download-images.php"
IMAGENET_NUM_CLASSES = 1000
IMAGENET_SPLITS = ("unsupervised", "train", "val")
_IMAGENET_HOW_TO_GET = (
    f"Download ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar and ILSVRC2012_devkit_t12.tar.gz from "
    f"{IMAGENET_URL} into the root and run torchvision.datasets.ImageNet(root, split='train') and "
    "split='val' once: they extract the archives into root/train/<wnid>/ and root/val/<wnid>/."
)


class FlatImageFolder(Dataset):
    """The image files directly under ``root`` (sorted by name), unlabelled: items are
    ``(transform(PIL RGB image), 0)``; ``samples`` lists ``(path, 0)`` like torchvision's ImageFolder."""

    def __init__(self, root: str | os.PathLike, transform: Callable[[Any], Any] | None = None) -> None:
        self.root = str(root)
        self.transform = transform
        files = sorted(p for p in Path(root).iterdir() if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS)
        self.samples = [(str(p), 0) for p in files]
        self.targets = [0] * len(self.samples)
        self.classes = [""]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = default_loader(self.samples[index][0])
        return (self.transform(image) if self.transform is not None else image), 0


def _has_images(directory: Path) -> bool:
    return directory.is_dir() and any(
        entry.is_file() and entry.name.lower().endswith(IMG_EXTENSIONS) for entry in os.scandir(directory)
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
    reads ``root/train``. Items are ``(transform(PIL RGB image), label)``. A directory with image files
    and no class sub-folders (and no ``how_to_get``, i.e. not a named benchmark) is read as a
    :class:`FlatImageFolder` (one class, label 0).

    Raises:
        FileNotFoundError: the directory is missing or has no class folders.
        ValueError: its class folders differ from those of ``root/train``.
    """
    root = Path(root).expanduser()
    if split == "unsupervised":
        split = "train"
    directory = root / split if split else root
    if not how_to_get and _has_images(directory) and not any(entry.is_dir() for entry in os.scandir(directory)):
        flat = FlatImageFolder(directory, transform)
        log.info("image folder %s: %d images, no class folders (unlabelled, label 0)", directory, len(flat))
        return flat  # type: ignore[return-value]
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
