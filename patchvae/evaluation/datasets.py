"""Classification benchmarks by name: train/test splits, class count, preprocessing, default protocol.

The datasets come from the registry of :mod:`patchvae.data` (``get_dataset``, ``data_config_for``):
a classifier trains on a dataset's ``train_split`` and is tested on its ``eval_split``. Adding a
benchmark is one entry of ``patchvae.data.DATASETS`` plus its protocol in :data:`PROTOCOL_OF`.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from torch.utils.data import Dataset

from ..data import DATASETS, DataConfig, data_config_for, dataset_spec, get_dataset
from ..data.subsets import random_subset

__all__ = [
    "PROTOCOL_OF",
    "ClassificationSplits",
    "classification_splits",
    "default_protocol",
    "limit_dataset",
    "list_datasets",
]

#: dataset -> its fine-tuning protocol (:mod:`patchvae.evaluation.config`)
PROTOCOL_OF: dict[str, str] = {
    "fashion_mnist": "fashion_mnist",
    "cifar10": "cifar10",
    "cifar100": "paper_cifar100",
    "indoor67": "paper_indoor67",
    "places205": "paper_places205",
    "imagenet": "paper_imagenet",
    "imagefolder": "paper_indoor67",
}


class ClassificationSplits(NamedTuple):
    """``train, test, num_classes, data_config = classification_splits(name)``."""

    train: Dataset
    test: Dataset
    num_classes: int
    data_config: DataConfig


def list_datasets() -> list[str]:
    return sorted(DATASETS)


def default_protocol(name: str) -> str:
    """Name of the fine-tuning protocol of dataset ``name``."""
    dataset_spec(name)
    return PROTOCOL_OF[name]


def classification_splits(
    name: str, root: str | os.PathLike | None = None, *, image_size: int | None = None,
    train_split: str | None = None, eval_split: str | None = None,
) -> ClassificationSplits:
    """Train and test splits of benchmark ``name``, its number of classes and its preprocessing.

    ``image_size`` is required for ``"imagefolder"``. ``train_split`` / ``eval_split`` name the splits
    (default: the dataset's, ``train`` and ``val`` for an image folder, whose splits may be any of its
    sub-folders).
    """
    spec = dataset_spec(name)
    config = data_config_for(name, image_size=image_size)
    size = image_size if name == "imagefolder" else None
    train = get_dataset(name, root, train_split or spec.train_split, train_transform=True, image_size=size)
    test = get_dataset(name, root, eval_split or spec.eval_split, train_transform=False, image_size=size)
    num_classes = spec.num_classes or len(train.classes)
    return ClassificationSplits(train, test, num_classes, config)


def limit_dataset(dataset: Dataset, limit: int | None, seed: int = 0) -> Dataset:
    """A seeded random subset of ``limit`` samples (in dataset order, class-stratified when the labels are
    known: :func:`patchvae.data.subsets.random_subset`), for quick runs; all if None."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    return random_subset(dataset, limit, seed)
