"""Training data for a recipe: in-memory datasets through :class:`BatchLoader`, on-disk ones through ``DataLoader``."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset, Subset

from ..data import DataConfig, EpochBatches, ImageTensorDataset, data_config_for, dataset_spec, get_dataset
from ..recipes import Recipe
from .distributed import World

__all__ = ["RunData", "build_run_data", "load_split"]

log = logging.getLogger(__name__)


@dataclass
class RunData:
    train: EpochBatches  #: yields (images (B, C, H, W) normalised, labels), sharded across processes
    eval: EpochBatches | None
    data_config: DataConfig
    num_train: int

    def set_epoch(self, epoch: int) -> None:
        self.train.set_epoch(epoch)


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
    common = {"data_config": config, "seed": recipe.seed, "device": device, "num_workers": num_workers}
    train = EpochBatches(train_ds, batch_size=per_rank, train=True, rank=world.rank, world_size=world.size, **common)
    evaluate = EpochBatches(eval_ds, batch_size=256, train=False, **common) if eval_ds is not None else None
    if len(train) == 0:
        raise ValueError(
            f"{len(train_ds)} training images give no full batch of {per_rank} per process; lower batch_size or use more data"
        )
    return RunData(train, evaluate, config, len(train_ds))
