"""Every raw input of ``extract_features`` -> uint8 (C, H, W) images, lazily and in order.

Tensors, PIL images, numpy arrays, image files, folders (recursive, sorted), datasets and data
loaders all become :class:`Item` (a uint8 (C, H, W) image, or a float one when ``preprocessed``,
and its file name). Files are read one at a time, so a folder of any size is streamed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

__all__ = ["IMAGE_SUFFIXES", "ON_ERROR", "Item", "count_images", "iter_items", "list_image_files", "read_image_file"]

log = logging.getLogger(__name__)

#: what to do with an image that cannot be read: raise (default), or skip it and report it
ON_ERROR = ("raise", "skip")

#: file types read from folders (case-insensitive)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")


def list_image_files(directory: str | os.PathLike) -> list[Path]:
    """Image files under ``directory`` (recursive, :data:`IMAGE_SUFFIXES`), in sorted path order: the
    order of the rows :func:`extract_features` returns for a folder."""
    root = Path(directory)
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a folder")
    files = [p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _check_chw(image: torch.Tensor, what: str) -> torch.Tensor:
    chans, height, width = image.shape
    if chans not in (1, 2, 3, 4):
        raise ValueError(
            f"{what} has {chans} channels (shape {tuple(image.shape)}); images have 1 (gray), 2 (gray+alpha), "
            "3 (RGB) or 4 (RGBA) channels, channels first for tensors (C, H, W) and last for numpy arrays (H, W, C)"
        )
    if height == 0 or width == 0:
        raise ValueError(f"{what} is empty (shape {tuple(image.shape)})")
    return image


def _from_numpy(array: np.ndarray, what: str = "numpy image") -> list[torch.Tensor]:
    if array.dtype != np.uint8:
        raise TypeError(
            f"{what} must be uint8 (H, W[, C]) pixels, got dtype {array.dtype}. Convert [0, 1] floats with "
            "(a * 255).round().astype(np.uint8); for normalised float inputs pass a torch tensor (N, C, H, W) "
            "with preprocessed=True."
        )
    if array.ndim == 2:
        return [_check_chw(torch.from_numpy(np.array(array, order="C"))[None], what)]
    if array.ndim == 3:
        if array.shape[-1] not in (1, 2, 3, 4):
            raise ValueError(
                f"{what} of shape {array.shape} is not (H, W, C) with C in 1-4. A channels-first array? Use "
                "np.transpose(a, (1, 2, 0)). A stack of gray images (N, H, W)? Use a[..., None]."
            )
        return [_check_chw(torch.from_numpy(np.array(array, order="C")).permute(2, 0, 1), what)]
    if array.ndim == 4:
        return [image for item in array for image in _from_numpy(item, what)]
    raise ValueError(f"{what} must be (H, W), (H, W, C) or (N, H, W, C), got shape {array.shape}")


def _from_pil(image: Any, what: str = "PIL image") -> torch.Tensor:
    mode = image.mode
    if mode.startswith("I;16"):
        array = (np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8)  # 16-bit -> 8-bit
    elif mode in ("I", "F"):
        raise ValueError(f"{what} has mode {mode!r} (32-bit, no fixed range); convert it to 8-bit 'L' or 'RGB' first")
    elif mode in ("L", "RGB", "LA", "RGBA"):
        array = np.asarray(image)
    elif mode == "1":
        array = np.asarray(image.convert("L"))
    else:  # P, PA, CMYK, YCbCr, LAB, HSV ...
        array = np.asarray(image.convert("RGBA" if "A" in mode or "transparency" in image.info else "RGB"))
    return _from_numpy(array, what)[0]


def read_image_file(path: Path) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            return _from_pil(image, str(path))
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"cannot read image file {path}: {err}") from err


def _from_tensor(tensor: torch.Tensor, preprocessed: bool, what: str) -> list[torch.Tensor]:
    if tensor.ndim not in (3, 4):
        hint = " For one grayscale image use x[None] (1, H, W)." if tensor.ndim == 2 else ""
        raise ValueError(f"{what} must be (C, H, W) or (N, C, H, W), got shape {tuple(tensor.shape)}.{hint}")
    images = [tensor] if tensor.ndim == 3 else list(tensor.unbind(0))
    if preprocessed:
        if not tensor.is_floating_point():
            raise TypeError(
                f"preprocessed=True expects normalised float tensors, got {tensor.dtype}; pass uint8 images "
                "without preprocessed=True to have the weights' preprocessing applied"
            )
        return images
    if tensor.dtype != torch.uint8:
        # Deliberately refused, not guessed: a float tensor in [0, 1] (torchvision's ToTensor / ToDtype(scale=True))
        # cannot be told apart from a normalised one (torch.rand is both), and guessing wrong is silent.
        raise TypeError(
            f"{what} has dtype {tensor.dtype}; raw images are uint8 tensors (C, H, W) / (N, C, H, W). If the "
            "tensor is already normalised for the model, pass preprocessed=True; if it holds [0, 1] pixels "
            "(torchvision ToTensor), convert it with (x * 255).round().to(torch.uint8)."
        )
    return [_check_chw(image.detach().cpu(), what) for image in images]


class Item(NamedTuple):
    image: torch.Tensor  # uint8 (C, H, W), or float (C, H, W) when preprocessed
    name: str | None


def _guarded(read: Callable[[], Any], name: str, skipped: list[tuple[str, str]] | None) -> Any:
    """``read()``; with ``skipped`` (on_error="skip") an unreadable image is logged, recorded and None returned."""
    if skipped is None:
        return read()
    try:
        return read()
    except (ValueError, OSError, SyntaxError) as err:  # read_image_file's ValueError; a dataset's own decode error
        reason = " ".join(str(err).split()) or type(err).__name__
        log.warning("skipping %s: %s", name, reason)
        skipped.append((name, reason))
        return None


def iter_items(inputs: Any, preprocessed: bool, *, nested: bool = False,
               skipped: list[tuple[str, str]] | None = None) -> Iterator[Item]:
    """Every image of ``inputs`` as an :class:`Item`, in order, lazily (files are read one at a time).

    With a ``skipped`` list (``on_error="skip"``), image files and dataset items that cannot be read
    are left out and appended to it as ``(file or "item I", reason)``; otherwise they raise.
    """
    from torch.utils.data import DataLoader, Dataset, IterableDataset

    if isinstance(inputs, torch.Tensor):
        for image in _from_tensor(inputs, preprocessed, "input tensor"):
            yield Item(image, None)
        return
    if isinstance(inputs, (str, os.PathLike)):
        path = Path(inputs)
        if path.is_dir():
            files = list_image_files(path)
            if not files and not nested:
                raise ValueError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) under {path}")
        elif path.is_file():
            files = [path]
        else:
            raise FileNotFoundError(f"{path} does not exist")
        _refuse_preprocessed(preprocessed, "image files")
        for file in files:
            image = _guarded(lambda file=file: read_image_file(file), str(file), skipped)
            if image is not None:
                yield Item(image, str(file))
        return
    if isinstance(inputs, np.ndarray):
        _refuse_preprocessed(preprocessed, "numpy arrays")
        for image in _from_numpy(inputs):
            yield Item(image, None)
        return
    if _is_pil(inputs):
        _refuse_preprocessed(preprocessed, "PIL images")
        yield Item(_from_pil(inputs), None)
        return
    if isinstance(inputs, DataLoader):
        for batch in inputs:
            if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor) and batch[0].ndim == 4:
                batch = batch[0]  # (images, labels)
            yield from iter_items(batch, preprocessed, nested=True)
        return
    if isinstance(inputs, (Dataset, IterableDataset)) and not isinstance(inputs, (list, tuple)):
        if isinstance(inputs, IterableDataset):
            iterator: Iterator[Any] = iter(inputs)
        else:
            samples = getattr(inputs, "samples", None)  # torchvision ImageFolder: name the file of a bad item
            iterator = (_guarded(lambda i=i: inputs[i], str(samples[i][0]) if samples else f"item {i}", skipped)
                        for i in range(len(inputs)))
        for sample in iterator:
            if sample is None:
                continue
            if isinstance(sample, (tuple, list)) and sample:
                sample = sample[0]  # (image, label)
            yield from _single(sample, preprocessed, skipped)
        return
    if isinstance(inputs, (list, tuple)):
        for item in inputs:
            if isinstance(item, (str, os.PathLike)) and Path(item).is_dir():
                yield from iter_items(item, preprocessed, nested=True, skipped=skipped)
            else:
                yield from _single(item, preprocessed, skipped)
        return
    raise TypeError(
        f"unsupported inputs of type {type(inputs).__name__}: pass a tensor (N, C, H, W) or (C, H, W), a PIL "
        "image, a uint8 numpy array (H, W[, C]) / (N, H, W, C), a file or folder path, a list of those, or a "
        "torch Dataset/DataLoader"
    )


def _single(item: Any, preprocessed: bool, skipped: list[tuple[str, str]] | None = None) -> Iterator[Item]:
    """One image: a (C, H, W) tensor, a PIL image, an (H, W[, C]) array or a file path."""
    if isinstance(item, torch.Tensor):
        if item.ndim != 3:
            raise ValueError(f"each image in a list/dataset must be (C, H, W), got a tensor of shape {tuple(item.shape)}")
        yield Item(_from_tensor(item, preprocessed, "image tensor")[0], None)
    elif isinstance(item, np.ndarray):
        if item.ndim not in (2, 3):
            raise ValueError(f"each image in a list/dataset must be (H, W) or (H, W, C), got an array of shape {item.shape}")
        _refuse_preprocessed(preprocessed, "numpy arrays")
        yield Item(_from_numpy(item)[0], None)
    elif isinstance(item, (str, os.PathLike)):
        path = Path(item)
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist or is not a file")
        _refuse_preprocessed(preprocessed, "image files")
        image = _guarded(lambda: read_image_file(path), str(path), skipped)
        if image is not None:
            yield Item(image, str(path))
    elif _is_pil(item):
        _refuse_preprocessed(preprocessed, "PIL images")
        yield Item(_from_pil(item), None)
    else:
        raise TypeError(
            f"unsupported image of type {type(item).__name__}: each image is a (C, H, W) tensor, a PIL image, a "
            "uint8 (H, W[, C]) array or a file path"
        )


def _is_pil(obj: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        return False
    return isinstance(obj, Image.Image)


def _refuse_preprocessed(preprocessed: bool, what: str) -> None:
    if preprocessed:
        raise TypeError(
            f"preprocessed=True is for normalised float tensors; {what} are raw images: drop preprocessed=True and "
            "the weights' preprocessing is applied"
        )


def count_images(inputs: Any) -> int | None:
    """Number of images, when known without reading them (for the progress bar)."""
    if isinstance(inputs, torch.Tensor):
        return 1 if inputs.ndim == 3 else int(inputs.shape[0]) if inputs.ndim == 4 else None
    if isinstance(inputs, np.ndarray):
        return int(inputs.shape[0]) if inputs.ndim == 4 else 1
    if isinstance(inputs, (str, os.PathLike)):
        path = Path(inputs)
        return len(list_image_files(path)) if path.is_dir() else 1
    try:
        from torch.utils.data import DataLoader

        if isinstance(inputs, (list, tuple)):
            return sum(
                len(list_image_files(i)) if isinstance(i, (str, os.PathLike)) and Path(i).is_dir() else 1 for i in inputs
            )
        return len(inputs.dataset if isinstance(inputs, DataLoader) else inputs)
    except TypeError:
        return None
