"""Classification benchmarks by name: train/test splits, class count, preprocessing, default protocol.

Adding a dataset is one entry of :data:`DATASETS`: a function ``(root, train) -> Dataset`` (an
:class:`~patchvae.data.ImageTensorDataset` of uint8 images, or any Dataset of transformed
``(image, label)`` pairs), its :class:`~patchvae.data.DataConfig`, its class count and the name of
its fine-tuning protocol, e.g.::

    "cifar100": DatasetSpec(load_cifar100, CIFAR, 100, "paper_cifar100"),
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch.utils.data import Dataset, Subset

from ..data import FASHION_MNIST, DataConfig, ImageTensorDataset, load_fashion_mnist

__all__ = [
    "DATASETS",
    "ClassificationSplits",
    "DatasetSpec",
    "classification_splits",
    "default_protocol",
    "limit_dataset",
    "list_datasets",
]

SplitLoader = Callable[[str | os.PathLike | None, bool], Dataset]


class DatasetSpec(NamedTuple):
    """How to load one benchmark: ``loader(root, train)``, preprocessing, classes, protocol name."""

    loader: SplitLoader
    data_config: DataConfig
    num_classes: int
    protocol: str


class ClassificationSplits(NamedTuple):
    """``train, test, num_classes, data_config = classification_splits(name)``."""

    train: Dataset
    test: Dataset
    num_classes: int
    data_config: DataConfig


def _fashion_mnist(root: str | os.PathLike | None, train: bool) -> Dataset:
    return load_fashion_mnist(root, train=train)


DATASETS: dict[str, DatasetSpec] = {
    "fashion_mnist": DatasetSpec(_fashion_mnist, FASHION_MNIST, 10, "fashion_mnist"),
}


def list_datasets() -> list[str]:
    return sorted(DATASETS)


def _spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {list_datasets()}")
    return DATASETS[name]


def default_protocol(name: str) -> str:
    """Name of the fine-tuning protocol of dataset ``name``."""
    return _spec(name).protocol


def classification_splits(name: str, root: str | os.PathLike | None = None) -> ClassificationSplits:
    """Train and test splits of benchmark ``name``, its number of classes and its preprocessing."""
    spec = _spec(name)
    return ClassificationSplits(spec.loader(root, True), spec.loader(root, False), spec.num_classes, spec.data_config)


def limit_dataset(dataset: Dataset, limit: int | None, seed: int = 0) -> Dataset:
    """A seeded random subset of ``limit`` samples (in dataset order), for quick runs; all if None."""
    if limit is None or limit >= len(dataset):
        return dataset
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    idx = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:limit].sort().values
    if isinstance(dataset, ImageTensorDataset):
        return dataset.subset(idx)
    return Subset(dataset, idx.tolist())
