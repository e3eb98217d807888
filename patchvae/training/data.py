"""Training data for a recipe: in-memory datasets through :class:`BatchLoader`, on-disk ones through ``DataLoader``."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ..data import DataConfig, EpochBatches, FixedStepBatches, create_transform, data_config_for, dataset_spec, get_dataset
from ..data.subsets import balanced_label_indices, dataset_labels, holdout_indices, random_subset, take
from ..recipes import Recipe
from .distributed import World

__all__ = ["LabelledData", "RunData", "build_run_data", "labelled_data", "likelihood_data_config", "load_split"]

log = logging.getLogger(__name__)


@dataclass
class LabelledData:
    """The labelled part of a semi-supervised run: a class-balanced subset of the training split."""

    batches: EpochBatches  #: shuffled, augmented batches of the labelled images, cycled by the task
    indices: torch.Tensor  #: their positions in the training split (sorted), recorded with the run
    num_labelled: int  #: N
    num_unlabelled: int  #: M: every training image (the labelled ones included, as the reference code)


@dataclass
class RunData:
    #: yields (images (B, C, H, W) normalised, labels), sharded across processes; FixedStepBatches when the recipe
    #: fixes the steps per epoch
    train: EpochBatches | FixedStepBatches
    eval: EpochBatches | None
    data_config: DataConfig
    num_train: int
    #: 16 eval images for the per-epoch PNGs: a fixed seeded, class-stratified random sample (not the first 16)
    preview: EpochBatches | None = None
    #: what was loaded: data_dir, train_split, eval_split, val_fraction (recorded with the run)
    info: dict[str, Any] = field(default_factory=dict)
    labelled: LabelledData | None = None  #: semi-supervised runs (objective "m2") only

    def set_epoch(self, epoch: int) -> None:
        self.train.set_epoch(epoch)


def load_split(
    dataset: str, root: str | os.PathLike | None, split: str, *, train_transform: bool,
    image_size: int | None = None, download: bool = False, config: DataConfig | None = None,
) -> tuple[Dataset, DataConfig]:
    """A split of a named dataset (:func:`patchvae.data.get_dataset`) and its preprocessing: the dataset's, or
    ``config`` instead (on-disk datasets then get its transform)."""
    size = image_size if dataset == "imagefolder" else None
    transform = None
    if config is None:
        config = data_config_for(dataset, image_size=size)
    elif not dataset_spec(dataset).in_memory:
        transform = create_transform(config, is_training=train_transform)
    ds = get_dataset(dataset, root, split, train_transform=train_transform, image_size=size, download=download,
                     transform=transform)
    return ds, config


def likelihood_data_config(recipe: Recipe) -> DataConfig:
    """The preprocessing of an ``objective="elbo"`` run: the model's own, at the dataset's channel count.

    A discrete likelihood scores the 8-bit values themselves, so the images must be v/127.5 - 1 (mean =
    std = 0.5) at the size the model's D = C·H·W refers to (28×28 for Zhang's MNIST networks: Fashion-MNIST
    unpadded), whatever the dataset's usual normalisation; flips as the model's config says.
    """
    from ..models._registry import get_architecture_cfg

    own = get_architecture_cfg(recipe.model).data_config
    if own is None or tuple(own.mean) != (0.5,) * own.channels or tuple(own.std) != (0.5,) * own.channels:
        raise ValueError(f"recipe {recipe.name}: objective 'elbo' needs a model whose preprocessing maps 8-bit images "
                         f"to v/127.5 - 1 (mean = std = 0.5); {recipe.model!r} has {own}")
    size = recipe.image_size
    chans = data_config_for(recipe.dataset, image_size=size).channels
    own = own.with_channels(chans)
    if own.input_size[1:] != (size, size):
        own = dataclasses.replace(own, input_size=(chans, size, size))
    return own


def _limit(ds: Dataset, n: int | None, seed: int, what: str) -> Dataset:
    """A seeded, class-stratified random subset of ``n`` items (never the first ``n``: sorted folders are by class)."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"--{what} must be an int >= 1, got {n!r}")
    return random_subset(ds, n, seed)


def _train_split(recipe: Recipe, data_dir: str | os.PathLike | None) -> str | None:
    """The training split: the recipe's; for an image folder without that sub-folder, the folder itself."""
    if recipe.dataset != "imagefolder" or data_dir is None or recipe.split not in ("train", "unsupervised"):
        return recipe.split
    root = Path(data_dir).expanduser()
    if not (root / "train").is_dir() and root.is_dir():
        log.info("%s has no train/ sub-folder: training on the folder itself (--train-split NAME picks a sub-folder)", root)
        return None
    return recipe.split


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
    eval_split: str | None = None,
    val_fraction: float | None = None,
) -> RunData:
    """Train (shuffled, augmented, sharded across processes) and eval loaders for ``recipe``.

    Evaluation data: ``val_fraction`` F in (0, 1) holds out a seeded, class-stratified fraction F of the
    training split (evaluated without augmentation); ``val_fraction=0`` trains without evaluation (no eval
    loss, no per-epoch PNGs); otherwise the split ``eval_split`` (default: the dataset's, e.g. ``val``). A
    missing eval split is an error that names these choices, never a silent run without evaluation.
    """
    if eval_split is not None and val_fraction is not None:
        raise ValueError("pass either --eval-split or --val-fraction, not both")
    if recipe.batch_size % world.size:
        raise ValueError(f"batch_size {recipe.batch_size} is not divisible by the {world.size} processes")
    per_rank = recipe.batch_size // world.size
    size = recipe.image_size
    own = likelihood_data_config(recipe) if recipe.objective in ("elbo", "m2") else None
    split = _train_split(recipe, data_dir)
    train_ds, config = load_split(recipe.dataset, data_dir, split, train_transform=True, image_size=size,
                                  download=download, config=own)
    eval_ds: Dataset | None = None
    info: dict[str, Any] = {"data_dir": None if data_dir is None else str(Path(data_dir).expanduser().resolve()), "train_split": split,
                            "eval_split": None, "val_fraction": val_fraction}
    if val_fraction:
        keep, held = holdout_indices(train_ds, val_fraction, recipe.seed)
        plain, _ = load_split(recipe.dataset, data_dir, split, train_transform=False, image_size=size,
                              download=download, config=own)
        train_ds, eval_ds = take(train_ds, keep), take(plain, held)
        log.info("evaluating on %d held-out training images (--val-fraction %s, seed %d)", len(held), val_fraction, recipe.seed)
    elif val_fraction is not None:
        log.warning("--val-fraction 0: training without evaluation (no eval loss, no per-epoch images)")
    else:
        name = eval_split or dataset_spec(recipe.dataset).eval_split
        try:
            eval_ds, _ = load_split(recipe.dataset, data_dir, name, train_transform=False, image_size=size,
                                    download=download, config=own)
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"no eval split {name!r} ({err}): pass --eval-split NAME (a sub-folder of --data-dir), --val-fraction F "
                "to evaluate on a held-out fraction of the training images, or --val-fraction 0 to train without evaluation"
            ) from err
        info["eval_split"] = name
    labelled = None
    if recipe.objective == "m2":  # drawn from the whole training split (after any held-out part), before --train-subset
        labelled = labelled_data(recipe, train_ds, config, device)
        info["labelled"] = {"labels_per_class": int(recipe.objective_args["labels_per_class"]),
                            "num_labelled": labelled.num_labelled, "seed": recipe.seed}
    train_ds = _limit(train_ds, train_subset, recipe.seed, "train-subset")
    if labelled is not None:
        labelled.num_unlabelled = len(train_ds)
    eval_ds = _limit(eval_ds, eval_subset, recipe.seed, "eval-subset") if eval_ds is not None else None
    common = {"data_config": config, "seed": recipe.seed, "device": device, "num_workers": num_workers}
    train = EpochBatches(train_ds, batch_size=per_rank, train=True, rank=world.rank, world_size=world.size, **common)
    evaluate = EpochBatches(eval_ds, batch_size=256, train=False, **common) if eval_ds is not None else None
    preview = None
    if eval_ds is not None:  # a fixed, seeded, class-stratified sample: a sorted folder's first 16 are one class
        sample = random_subset(eval_ds, 16, recipe.seed)
        preview = EpochBatches(sample, batch_size=16, train=False, **{**common, "num_workers": 0})
    if len(train) == 0:
        raise ValueError(
            f"{len(train_ds)} training images give no full batch of {per_rank} per process; lower batch_size or use more data"
        )
    if recipe.steps_per_epoch:
        log.info("an epoch is %d steps (%.2f passes of the %d training images)", recipe.steps_per_epoch,
                 recipe.steps_per_epoch / len(train), len(train_ds))
        train = FixedStepBatches(train, recipe.steps_per_epoch)
    return RunData(train, evaluate, config, len(train_ds), preview, info, labelled)


def labelled_data(recipe: Recipe, train_ds: Dataset, config: DataConfig, device: torch.device) -> LabelledData:
    """``objective_args.labels_per_class`` labelled images per class of ``train_ds``, seeded by the recipe's seed.

    Batches of ``objective_args.labelled_batch_size`` (default: the recipe's batch, at most N), shuffled and
    augmented as the training images; the same on every process (the labelled set is small).
    """
    args = recipe.objective_args
    if "labels_per_class" not in args:
        raise ValueError(f"recipe {recipe.name}: objective 'm2' needs objective_args.labels_per_class (e.g. --set "
                         "objective_args.labels_per_class=10 for 100 labels of 10 classes)")
    labels = dataset_labels(train_ds)
    if labels is None:
        raise ValueError(f"recipe {recipe.name}: semi-supervised training needs a labelled training split; "
                         f"{type(train_ds).__name__} does not expose its labels")
    indices = balanced_label_indices(labels, args["labels_per_class"], recipe.seed)
    batch = min(int(args.get("labelled_batch_size", recipe.batch_size)), len(indices))
    batches = EpochBatches(take(train_ds, indices), batch_size=batch, train=True, data_config=config,
                           seed=recipe.seed + 1, device=device)
    log.info("semi-supervised: %d labelled images (%d per class, seed %d), labelled batches of %d",
             len(indices), args["labels_per_class"], recipe.seed, batch)
    return LabelledData(batches, indices, len(indices), len(train_ds))
