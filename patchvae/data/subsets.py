"""Seeded, class-balanced subsets for quick runs (``--train-subset``, ``--eval-subset``, ``--limit-train``).

Class-per-folder datasets list their images class by class, so the first N images of a sorted
folder are all of one class; subsets here are drawn at random instead, and stratified by label when
the labels are known: each class keeps its share of the subset (largest remainder rounding).
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, Subset

from .memory import ImageTensorDataset

__all__ = ["balanced_label_indices", "dataset_labels", "holdout_indices", "random_subset", "subset_indices", "take"]


def dataset_labels(dataset: Dataset) -> torch.Tensor | None:
    """int64 labels (N,) of ``dataset`` when it knows them without decoding images, else None."""
    if isinstance(dataset, ImageTensorDataset):
        return dataset.labels
    targets = getattr(dataset, "targets", None)  # torchvision ImageFolder / DatasetFolder
    if isinstance(targets, (list, tuple, torch.Tensor)) and len(targets) == len(dataset):  # type: ignore[arg-type]
        return torch.as_tensor(targets, dtype=torch.long)
    if isinstance(dataset, Subset):
        inner = dataset_labels(dataset.dataset)
        return None if inner is None else inner[torch.as_tensor(dataset.indices, dtype=torch.long)]
    return None


def subset_indices(num_items: int, size: int, seed: int, labels: torch.Tensor | None = None) -> torch.Tensor:
    """``size`` distinct indices in [0, num_items), sorted; stratified by ``labels`` (N,) when given.

    Deterministic in ``seed``. With labels, class ``c`` gets ``round(size · n_c / N)`` indices
    (largest remainder, so the counts sum to ``size``), each drawn at random within the class.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"subset size must be an int >= 1, got {size!r}")
    gen = torch.Generator().manual_seed(seed)
    if size >= num_items:
        return torch.arange(num_items)
    if labels is None:
        return torch.randperm(num_items, generator=gen)[:size].sort().values
    classes, counts = labels.unique(return_counts=True)
    quota = counts.double() * size / num_items
    take = quota.floor().long()
    remainder = size - int(take.sum())
    if remainder:
        order = sorted(range(len(classes)), key=lambda i: (-(quota[i] - take[i]).item(), i))
        for i in order[:remainder]:
            take[i] += 1
    chosen = []
    for cls, k in zip(classes.tolist(), take.tolist()):
        members = (labels == cls).nonzero().flatten()
        chosen.append(members[torch.randperm(len(members), generator=gen)[:k]])
    return torch.cat(chosen).sort().values


def random_subset(dataset: Dataset, size: int | None, seed: int = 0, *, stratify: bool = True) -> Dataset:
    """A seeded random (class-stratified when labels are known) subset of ``size`` items, in dataset order.

    None or a size >= len(dataset) returns ``dataset`` itself.
    """
    if size is None:
        return dataset
    n = len(dataset)  # type: ignore[arg-type]
    labels = dataset_labels(dataset) if stratify else None
    idx = subset_indices(n, size, seed, labels)
    if len(idx) == n:
        return dataset
    if isinstance(dataset, ImageTensorDataset):
        return dataset.subset(idx)
    return Subset(dataset, idx.tolist())



def holdout_indices(dataset: Dataset, fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``dataset`` into (kept, held out) sorted index tensors, holding out ``fraction`` of it.

    Seeded and class-stratified when labels are known (:func:`subset_indices`), so a folder sorted
    by class gives a held-out set with every class in its share. At least one item is held out and
    one kept.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ValueError(f"the held-out fraction (--val-fraction) must be between 0 and 1 (exclusive), got {fraction!r}")
    n = len(dataset)  # type: ignore[arg-type]
    if n < 2:
        raise ValueError(f"cannot hold out a fraction of {n} image(s): add images or pass an eval split")
    size = min(max(1, round(n * fraction)), n - 1)
    held = subset_indices(n, size, seed, dataset_labels(dataset))
    mask = torch.ones(n, dtype=torch.bool)
    mask[held] = False
    return mask.nonzero().flatten(), held


def take(dataset: Dataset, indices: torch.Tensor) -> Dataset:
    """``dataset`` restricted to ``indices`` (an :class:`ImageTensorDataset` stays one)."""
    if isinstance(dataset, ImageTensorDataset):
        return dataset.subset(indices)
    return Subset(dataset, indices.tolist())


def balanced_label_indices(labels: torch.Tensor, per_class: int, seed: int = 0) -> torch.Tensor:
    """A class-balanced labelled subset: ``per_class`` random indices of every class in ``labels`` (N,), sorted.

    Deterministic in ``seed`` (a different seed draws a different subset); semi-supervised runs label these
    items and keep every item of the split as unlabelled data (Zhang et al. 2022 §6, Kingma et al. 2014).

    Raises:
        ValueError: ``per_class`` is not an int >= 1, or a class has fewer items than ``per_class``.
    """
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise ValueError(f"labels per class must be an int >= 1, got {per_class!r}")
    labels = torch.as_tensor(labels, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    chosen = []
    for cls in labels.unique().tolist():
        members = (labels == cls).nonzero().flatten()
        if len(members) < per_class:
            raise ValueError(f"class {cls} has {len(members)} item(s), fewer than the {per_class} labels per class asked "
                             f"for: lower labels_per_class or use more data")
        chosen.append(members[torch.randperm(len(members), generator=gen)[:per_class]])
    return torch.cat(chosen).sort().values
