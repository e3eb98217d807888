"""Datasets and preprocessing: in-memory uint8 datasets with batched augmentation, torchvision transforms,
the paper's datasets by name (:func:`get_dataset`, :func:`data_config_for`)."""

from .cifar10 import CIFAR10_CLASSES, decoded_cache_dir, find_cifar10, load_cifar10
from .cifar100 import find_cifar100, load_cifar100
from .config import CIFAR, FASHION_MNIST, IMAGENET, IMAGENET_NORMALIZATION, MINUS_ONE_TO_ONE, SCENES_64, DataConfig
from .fashion_mnist import find_fashion_mnist, load_fashion_mnist
from .image_folder import load_image_folder, load_imagenet
from .image_list import ImageListDataset
from .indoor67 import load_indoor67
from .mnist import find_mnist, load_mnist
from .svhn import find_svhn, load_svhn
from .subsets import balanced_label_indices
from .loaders import EpochBatches, FixedStepBatches
from .memory import BatchLoader, BatchPreprocess, ImageTensorDataset, fit_to_size, match_channels
from .patches import crop_at, fixed_patches, patch_positions, random_patches
from .places205 import load_places205
from .registry import DATASETS, DatasetSpec, data_config_for, dataset_spec, default_data_root, get_dataset
from .transforms import create_transform, resolve_data_config

__all__ = [
    "crop_at",
    "fixed_patches",
    "patch_positions",
    "random_patches",
    "CIFAR",
    "CIFAR10_CLASSES",
    "DATASETS",
    "FASHION_MNIST",
    "IMAGENET",
    "IMAGENET_NORMALIZATION",
    "MINUS_ONE_TO_ONE",
    "SCENES_64",
    "BatchLoader",
    "BatchPreprocess",
    "DataConfig",
    "DatasetSpec",
    "EpochBatches",
    "FixedStepBatches",
    "ImageListDataset",
    "ImageTensorDataset",
    "create_transform",
    "data_config_for",
    "dataset_spec",
    "decoded_cache_dir",
    "default_data_root",
    "find_cifar10",
    "find_cifar100",
    "find_fashion_mnist",
    "fit_to_size",
    "get_dataset",
    "load_cifar10",
    "load_cifar100",
    "load_fashion_mnist",
    "load_image_folder",
    "load_imagenet",
    "load_indoor67",
    "load_mnist",
    "load_places205",
    "load_svhn",
    "find_mnist",
    "find_svhn",
    "balanced_label_indices",
    "match_channels",
    "resolve_data_config",
]
