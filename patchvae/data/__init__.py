"""Datasets and preprocessing: in-memory uint8 datasets with batched augmentation, torchvision transforms."""

from .config import CIFAR, FASHION_MNIST, IMAGENET, IMAGENET_NORMALIZATION, MINUS_ONE_TO_ONE, SCENES_64, DataConfig
from .fashion_mnist import find_fashion_mnist, load_fashion_mnist
from .memory import BatchLoader, BatchPreprocess, ImageTensorDataset, fit_to_size, match_channels
from .transforms import create_transform, resolve_data_config

__all__ = [
    "CIFAR",
    "FASHION_MNIST",
    "IMAGENET",
    "IMAGENET_NORMALIZATION",
    "MINUS_ONE_TO_ONE",
    "SCENES_64",
    "BatchLoader",
    "BatchPreprocess",
    "DataConfig",
    "ImageTensorDataset",
    "create_transform",
    "find_fashion_mnist",
    "fit_to_size",
    "load_fashion_mnist",
    "match_channels",
    "resolve_data_config",
]
