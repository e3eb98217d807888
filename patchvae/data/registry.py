"""The paper's datasets by name: where they live, their splits and the preprocessing the paper uses.

Example::

    cfg = data_config_for("indoor67")  # (3, 64, 64), ImageNet mean/std, random flips in training
    ds = get_dataset("indoor67", "/data/indoor67", "unsupervised", train_transform=True)

Small datasets ("fashion_mnist", "cifar10", "cifar100") come back in memory as a uint8
:class:`~patchvae.data.ImageTensorDataset`, preprocessed a batch at a time by
``BatchPreprocess(data_config_for(name), train=...)`` (see :class:`~patchvae.data.BatchLoader`);
``train_transform`` does not apply to them. The others stay on disk and each item is
``create_transform(data_config_for(name), is_training=train_transform)`` of the decoded image.

Every dataset has an ``"unsupervised"`` split, the images the paper pretrains on: the training set,
except for Indoor67, where it is every image but the official test images.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from torch.utils.data import Dataset

from .cifar10 import load_cifar10
from .cifar100 import load_cifar100
from .config import CIFAR, FASHION_MNIST, IMAGENET, MNIST, SCENES_64, SVHN, DataConfig
from .fashion_mnist import load_fashion_mnist
from .image_folder import IMAGENET_NUM_CLASSES, load_image_folder, load_imagenet
from .indoor67 import INDOOR67_NUM_CLASSES, load_indoor67
from .mnist import load_mnist
from .places205 import PLACES205_NUM_CLASSES, load_places205
from .svhn import load_svhn
from .transforms import create_transform

__all__ = ["DATASETS", "DatasetSpec", "data_config_for", "dataset_spec", "default_data_root", "get_dataset"]

log = logging.getLogger(__name__)

#: environment variable naming the directory that holds one sub-directory per dataset
DATA_DIR_ENV = "PATCHVAE_DATA_DIR"


@dataclass(frozen=True)
class DatasetSpec:
    """What the zoo knows about one dataset.

    Attributes:
        name: registry key.
        description: one line for listings.
        num_classes: number of classes (None: given by the folders, "imagefolder").
        splits: valid ``split`` values (None: any sub-directory of the root, "imagefolder").
        train_split / eval_split: the splits for training / evaluating a classifier.
        in_memory: loaded as a uint8 ImageTensorDataset (else read from disk item by item).
        downloadable: ``download=True`` can fetch it.
        data_config: the paper's preprocessing (None: the caller gives the image size).
        layout: the expected files under ``root``.
    """

    name: str
    description: str
    num_classes: int | None
    splits: tuple[str, ...] | None
    train_split: str
    eval_split: str
    in_memory: bool
    downloadable: bool
    data_config: DataConfig | None
    layout: str


def _spec(name: str, description: str, num_classes: int | None, eval_split: str, data_config: DataConfig | None,
          layout: str, *, in_memory: bool = False, downloadable: bool = False, any_split: bool = False) -> DatasetSpec:
    splits = None if any_split else ("unsupervised", "train", eval_split)
    return DatasetSpec(name, description, num_classes, splits, "train", eval_split, in_memory, downloadable,
                       data_config, layout)

DATASETS: Mapping[str, DatasetSpec] = MappingProxyType({
    s.name: s
    for s in (
        _spec("fashion_mnist", "Fashion-MNIST, 28x28 grayscale padded to 32x32", 10, "test", FASHION_MNIST,
              "the four IDX files (train-images-idx3-ubyte[.gz], ...) or FashionMNIST/raw/",
              in_memory=True, downloadable=True),
        _spec("cifar10", "CIFAR-10, 32x32 as is, no flips (torchvision files, or a class-per-folder dir/zip)", 10,
              "test", CIFAR, "cifar-10-batches-py/, or {train,test}/<class>/<image> as a folder or a .zip",
              in_memory=True, downloadable=True),
        _spec("cifar100", "CIFAR-100, 32x32 as is, no flips", 100, "test", CIFAR,
              "cifar-100-python/{train,test,meta}", in_memory=True, downloadable=True),
        _spec("mnist", "MNIST, 28x28 grayscale padded to 32x32", 10, "test", MNIST,
              "the four IDX files (train-images-idx3-ubyte[.gz], ...) or MNIST/raw/", in_memory=True, downloadable=True),
        _spec("svhn", "SVHN cropped digits, 32x32 RGB as is (train and test; not extra)", 10, "test", SVHN,
              "train_32x32.mat, test_32x32.mat (needs SciPy)", in_memory=True, downloadable=True),
        _spec("indoor67", "MIT Indoor67, resized and centre-cropped to 64x64, flips", INDOOR67_NUM_CLASSES, "test",
              SCENES_64, "Images/<class>/*.jpg, TrainImages.txt, TestImages.txt"),
        _spec("places205", "Places205, resized and centre-cropped to 64x64, flips", PLACES205_NUM_CLASSES, "val",
              SCENES_64, "data/vision/torralba/deeplearning/images256/, trainvalsplit_places205/{train,val}_places205.csv"),
        _spec("imagenet", "ILSVRC-2012, resized and centre-cropped to 224x224, flips", IMAGENET_NUM_CLASSES, "val",
              IMAGENET, "train/<wnid>/*.JPEG, val/<wnid>/*.JPEG"),
        _spec("imagefolder", "any class-per-folder directory, size given by the caller, flips", None, "val", None,
              "<split>/<class>/<image> (or <class>/<image> with split=None)", any_split=True),
    )
})


_DISK_LOADERS: dict[str, Callable[..., Dataset]] = {
    "indoor67": load_indoor67, "places205": load_places205, "imagenet": load_imagenet, "imagefolder": load_image_folder,
}


def dataset_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of ``name``; ValueError listing the known names if there is none."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}") from None


def data_config_for(name: str, *, image_size: int | None = None) -> DataConfig:
    """The paper's preprocessing of ``name``; ``image_size`` replaces its H = W (required for "imagefolder")."""
    spec = dataset_spec(name)
    base = spec.data_config
    if base is None:
        if image_size is None:
            raise ValueError(f"dataset {name!r} has no fixed input size: pass image_size=...")
        base = dataclasses.replace(SCENES_64, input_size=(3, image_size, image_size))
    if image_size is not None and base.input_size[1:] != (image_size, image_size):
        base = dataclasses.replace(base, input_size=(base.channels, image_size, image_size))
    return base


def default_data_root(name: str) -> Path:
    """``$PATCHVAE_DATA_DIR/<name>``, else ``~/.cache/patchvae/data/<name>``."""
    base = os.environ.get(DATA_DIR_ENV) or Path.home() / ".cache" / "patchvae" / "data"
    return Path(base).expanduser() / name


def get_dataset(
    name: str,
    root: str | os.PathLike | None,
    split: str | None,
    *,
    train_transform: bool,
    download: bool = False,
    image_size: int | None = None,
    transform: Callable[[Any], Any] | None = None,
) -> Dataset:
    """Split ``split`` of dataset ``name`` found under ``root``.

    Args:
        name: a key of :data:`DATASETS`.
        root: the dataset's directory (layout: ``DATASETS[name].layout``); None: :func:`default_data_root`
            (Fashion-MNIST: its own search, see :mod:`patchvae.data.fashion_mnist`).
        split: one of ``DATASETS[name].splits``; for "imagefolder" any sub-directory of ``root``, or None
            for ``root`` itself.
        train_transform: on-disk datasets: use the training transform (random flips where the paper
            uses them). In-memory datasets are not transformed (use ``BatchPreprocess``).
        download: fetch Fashion-MNIST / MNIST / SVHN / CIFAR-10 / CIFAR-100 if missing; the others cannot be downloaded.
        image_size: on-disk datasets: replaces the paper's input size of the default transform (required
            for "imagefolder" without ``transform``). For in-memory datasets pass it to :func:`data_config_for`.
        transform: replaces the default transform of an on-disk dataset (e.g. ``create_transform(model)``).

    Returns:
        In-memory: ImageTensorDataset of uint8 (N, C, h, w) images and int64 labels. On disk: a dataset
        of ``(float (C, H, W), int label)``.

    Raises:
        ValueError: unknown name or split, or a transform for an in-memory dataset.
        FileNotFoundError: the data is missing; the message names the expected files and how to get them.
    """
    spec = dataset_spec(name)
    if spec.splits is not None and split not in spec.splits:
        raise ValueError(f"unknown split {split!r} for {name}; choose one of {spec.splits}")
    if spec.in_memory and transform is not None:
        raise ValueError(
            f"{name} is held in memory and preprocessed by batch: use BatchPreprocess(data_config_for({name!r}), "
            "train=...) instead of a per-item transform"
        )
    if download and not spec.downloadable:
        log.warning("%s cannot be downloaded automatically; ignoring --download (download=True)", name)
    if root is None and name == "imagefolder":
        raise ValueError("dataset 'imagefolder' needs a root directory")
    if root is None and name != "fashion_mnist":
        root = default_data_root(name)
    if name == "fashion_mnist":
        return load_fashion_mnist(root, train=split != "test", download=download)
    if name == "cifar10":
        return load_cifar10(root, train=split != "test", download=download)
    if name == "cifar100":
        return load_cifar100(root, train=split != "test", download=download)
    if name == "mnist":
        return load_mnist(root, train=split != "test", download=download)
    if name == "svhn":
        return load_svhn(root, train=split != "test", download=download)
    if transform is None:
        transform = create_transform(data_config_for(name, image_size=image_size), is_training=train_transform)
    return _DISK_LOADERS[name](root, split, transform)
