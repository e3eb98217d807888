"""Training data for a recipe: in-memory datasets through :class:`BatchLoader`, on-disk ones through ``DataLoader``."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from ..data import BatchLoader, BatchPreprocess, DataConfig, ImageTensorDataset, data_config_for, dataset_spec, get_dataset
from ..recipes import Recipe
from .distributed import World

__all__ = ["RunData", "build_run_data", "load_split"]

log = logging.getLogger(__name__)


@dataclass
class RunData:
    train: Iterable[tuple[torch.Tensor, torch.Tensor]]  #: yields (images (B, C, H, W) normalised, labels)
    eval: Iterable[tuple[torch.Tensor, torch.Tensor]] | None
    data_config: DataConfig
    num_train: int

    def set_epoch(self, epoch: int) -> None:
        for loader in (self.train, self.eval):
            if hasattr(loader, "set_epoch"):
                loader.set_epoch(epoch)
            elif isinstance(getattr(loader, "sampler", None), DistributedSampler):
                loader.sampler.set_epoch(epoch)


def load_split(
    dataset: str, root: str | os.PathLike | None, split: str, *, train_transform: bool,
    image_size: int | None = None, download: bool = False,
) -> tuple[Dataset, DataConfig]:
    """A split of a named dataset (:func:`patchvae.data.get_dataset`) and its preprocessing."""
    size = image_size if dataset == "imagefolder" else None
    config = data_config_for(dataset, image_size=size)
    ds = get_dataset(dataset, root, split, train_transform=train_transform, image_size=size, download=download)
    return ds, config


def _limit(ds: Dataset, n: int | None) -> Dataset:
    if n is None or n >= len(ds):
        return ds
    if isinstance(ds, ImageTensorDataset):
        return ds.subset(range(n))
    return Subset(ds, range(n))


class _EpochDataLoader:
    """A DataLoader over a ``DistributedSampler`` (also for one process) with ``set_epoch`` and a fixed seed."""

    def __init__(self, ds: Dataset, batch_size: int, world: World, seed: int, shuffle: bool, drop_last: bool,
                 num_workers: int, device: torch.device) -> None:
        self.sampler = DistributedSampler(ds, world.size, world.rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.loader = DataLoader(
            ds, batch_size=batch_size, sampler=self.sampler, drop_last=drop_last, num_workers=num_workers,
            pin_memory=device.type == "cuda", persistent_workers=num_workers > 0,
        )
        self.device = device

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


def build_run_data(
    recipe: Recipe,
    data_dir: str | os.PathLike | None,
    world: World,
    device: torch.device,
    *,
    train_subset: int | None = None,
    eval_subset: int | None = None,
    num_workers: int = 4,
    download: bool = False,
) -> RunData:
    """Train (shuffled, augmented, sharded across processes) and eval loaders for ``recipe``."""
    if recipe.batch_size % world.size:
        raise ValueError(f"batch_size {recipe.batch_size} is not divisible by the {world.size} processes")
    per_rank = recipe.batch_size // world.size
    size = recipe.image_size
    train_ds, config = load_split(recipe.dataset, data_dir, recipe.split, train_transform=True, image_size=size,
                                  download=download)
    train_ds = _limit(train_ds, train_subset)
    eval_split = dataset_spec(recipe.dataset).eval_split
    try:
        eval_ds, _ = load_split(recipe.dataset, data_dir, eval_split, train_transform=False, image_size=size,
                                download=download)
    except FileNotFoundError as err:  # e.g. an ImageFolder without a val/ split: train without eval loss
        log.warning("no %r split to evaluate on (%s); the run logs training losses only", eval_split, err)
        eval_ds = None
    eval_ds = _limit(eval_ds, eval_subset) if eval_ds is not None else None
    if isinstance(train_ds, ImageTensorDataset):
        train = BatchLoader(train_ds, per_rank, BatchPreprocess(config, train=True), shuffle=True, drop_last=True,
                            seed=recipe.seed, device=device, rank=world.rank, world_size=world.size)
        evaluate = None
        if isinstance(eval_ds, ImageTensorDataset):
            evaluate = BatchLoader(eval_ds, 256, BatchPreprocess(config, train=False), shuffle=False, drop_last=False,
                                   seed=recipe.seed, device=device)
    else:
        train = _EpochDataLoader(train_ds, per_rank, world, recipe.seed, True, True, num_workers, device)
        evaluate = _EpochDataLoader(eval_ds, 256, World(), recipe.seed, False, False, num_workers, device) if eval_ds else None
    if len(train) == 0:
        raise ValueError(
            f"{len(train_ds)} training images give no full batch of {per_rank} per process; lower batch_size or use more data"
        )
    return RunData(train, evaluate, config, len(train_ds))
