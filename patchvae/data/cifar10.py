"""CIFAR-10 (Krizhevsky 2009) as in-memory uint8 tensors, from any of its usual forms.

``root`` may be:

* torchvision's layout: ``root/cifar-10-batches-py/`` (the official ``cifar-10-python.tar.gz``
  extracted; ``download=True`` fetches it there). torchvision checks the files' md5 sums.
* a class-per-folder copy: ``root/{train,test}/<class>/<image>`` with the ten CIFAR-10 class folders
  (``airplane`` ... ``truck``; alphabetical order is the usual label order), as a directory or as a
  ``.zip`` file with that layout (optionally under one top folder), read member by member without
  extracting. This is how the JPEG copy in ``shared/data/cifar10-jpeg.zip`` is read.

Decoding 60,000 image files takes tens of seconds, so a class-per-folder copy is decoded once and the
uint8 tensors are cached in ``<cache>/decoded/`` (``$PATCHVAE_CACHE_DIR``, else
``$XDG_CACHE_HOME/patchvae``, else ``~/.cache/patchvae``), keyed by the source's path, size and
modification time: a changed source is decoded again. Every later run loads the cache in well under
a second, and an epoch then costs what it costs on Fashion-MNIST per image.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from .._io import save_safetensors
from .memory import ImageTensorDataset

__all__ = ["CIFAR10_CLASSES", "CIFAR10_URL", "decoded_cache_dir", "find_cifar10", "load_cifar10"]

log = logging.getLogger(__name__)

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_BATCHES = "cifar-10-batches-py"
_BATCH_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")
_SPLIT_DIRS = {True: "train", False: "test"}
_SIZES = {True: 50_000, False: 10_000}
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".ppm")
_CACHE_FORMAT = "patchvae-decoded/1"


def decoded_cache_dir() -> Path:
    """Where decoded image tensors are cached: ``$PATCHVAE_CACHE_DIR/decoded`` (default ``~/.cache/patchvae/decoded``)."""
    base = os.environ.get("PATCHVAE_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg) / "patchvae" if xdg else Path.home() / ".cache" / "patchvae"
    return Path(base).expanduser() / "decoded"


def _how_to_get(root: Path) -> str:
    return (
        f"Pass download=True (CLI: --download) to fetch {CIFAR10_URL} into {root}, or point root (--data-dir) at "
        "a folder or .zip with train/<class>/ and test/<class>/ image folders for the ten CIFAR-10 classes."
    )


def find_cifar10(root: str | os.PathLike) -> tuple[str, Path] | None:
    """``("torchvision", base)``, ``("folder", dir)`` or ``("zip", file)`` for the CIFAR-10 copy at ``root``, or None."""
    root = Path(root).expanduser()
    if root.is_file() and zipfile.is_zipfile(root):
        return "zip", root
    for base in (root, root.parent if root.name == _BATCHES else None):
        if base is not None and all((base / _BATCHES / name).is_file() for name in _BATCH_FILES):
            return "torchvision", base
    if (root / "train").is_dir() and (root / "test").is_dir():
        return "folder", root
    return None


# --------------------------------------------------------------------------- class-per-folder copies
def _check_classes(found: list[str], source: str) -> None:
    if sorted(found) != list(CIFAR10_CLASSES):
        extra = sorted(set(found) - set(CIFAR10_CLASSES))
        absent = sorted(set(CIFAR10_CLASSES) - set(found))
        raise ValueError(
            f"{source} does not have the ten CIFAR-10 class folders (unexpected: {extra[:5]}, missing: {absent[:5]}); "
            "for other class-per-folder data use the 'imagefolder' dataset"
        )


def _folder_members(directory: Path, split: str) -> list[tuple[str, int, Path]]:
    """(class, label, file) of every image under ``directory/split``, in class then file-name order."""
    split_dir = directory / split
    classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    _check_classes(classes, str(split_dir))
    return [
        (cls, label, path)
        for label, cls in enumerate(CIFAR10_CLASSES)
        for path in sorted((split_dir / cls).iterdir())
        if path.suffix.lower() in _IMAGE_SUFFIXES and path.is_file()
    ]


def _zip_members(archive: zipfile.ZipFile, source: Path, split: str) -> list[tuple[str, int, str]]:
    """(class, label, member name) of every image of ``split`` in the archive (layout ``[top/]split/class/file``)."""
    members: dict[str, list[str]] = {}
    for info in archive.infolist():
        if info.is_dir():
            continue
        parts = PurePosixPath(info.filename).parts
        if len(parts) >= 3 and parts[-3] == split and PurePosixPath(parts[-1]).suffix.lower() in _IMAGE_SUFFIXES:
            members.setdefault(parts[-2], []).append(info.filename)
    if not members:
        raise FileNotFoundError(f"{source} has no {split}/<class>/<image> members. {_how_to_get(source.parent)}")
    _check_classes(list(members), f"{source}:{split}/")
    return [(cls, label, name) for label, cls in enumerate(CIFAR10_CLASSES) for name in sorted(members[cls])]


def _decode(data: bytes, what: str) -> torch.Tensor:
    """Encoded image bytes -> uint8 (3, 32, 32) RGB."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            pixels = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"cannot decode {what}: {err}") from err
    if pixels.shape[:2] != (32, 32):
        raise ValueError(f"{what} is {pixels.shape[:2]} pixels; CIFAR-10 images are 32x32")
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1)


def _decode_all(items: Iterator[tuple[int, bytes, str]], count: int, source: str) -> ImageTensorDataset:
    from tqdm.auto import tqdm

    images = torch.empty(count, 3, 32, 32, dtype=torch.uint8)
    labels = torch.empty(count, dtype=torch.long)
    with tqdm(total=count, unit="img", desc=f"decode {Path(source).name}", disable=count < 2000) as bar:
        for i, (label, data, what) in enumerate(items):
            images[i] = _decode(data, what)
            labels[i] = label
            bar.update(1)
    return ImageTensorDataset(images, labels, CIFAR10_CLASSES)


def _source_signature(kind: str, path: Path, split: str) -> dict[str, object]:
    """What the cache key depends on: resolved path, size and mtime (a folder: every file's)."""
    if kind == "zip":
        stat = path.stat()
        size, mtime, files = stat.st_size, stat.st_mtime_ns, 1
    else:
        stats = [p.stat() for _, _, p in _folder_members(path, split)]
        size, mtime, files = sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0), len(stats)
    return {"format": _CACHE_FORMAT, "path": str(path.resolve()), "split": split, "size": size, "mtime_ns": mtime,
            "files": files}


def _load_cached(file: Path, signature: dict[str, object]) -> ImageTensorDataset | None:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("signature") != json.dumps(signature, sort_keys=True):
                return None
            images, labels = f.get_tensor("images"), f.get_tensor("labels")
    except (SafetensorError, OSError, KeyError, ValueError) as err:
        log.warning("ignoring the damaged decoded-image cache %s (%s); decoding again", file, err)
        return None
    if images.dtype != torch.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != (3, 32, 32):
        return None
    if labels.dtype != torch.long or labels.shape != (len(images),) or len(images) == 0:
        return None
    if int(labels.min()) < 0 or int(labels.max()) >= len(CIFAR10_CLASSES):
        return None
    return ImageTensorDataset(images, labels, CIFAR10_CLASSES)


def _load_class_folders(kind: str, path: Path, train: bool, cache: bool) -> ImageTensorDataset:
    split = _SPLIT_DIRS[train]
    signature = _source_signature(kind, path, split)
    key = hashlib.sha256(json.dumps(signature, sort_keys=True).encode()).hexdigest()[:24]
    cache_file = decoded_cache_dir() / f"cifar10-{split}-{key}.safetensors"
    if cache and cache_file.is_file():
        ds = _load_cached(cache_file, signature)
        if ds is not None:
            log.debug("CIFAR-10 %s split: decoded cache %s", split, cache_file)
            return ds
    if kind == "zip":
        with zipfile.ZipFile(path) as archive:
            members = _zip_members(archive, path, split)
            items = ((label, archive.read(name), f"{path}:{name}") for _, label, name in members)
            ds = _decode_all(items, len(members), str(path))
    else:
        files = _folder_members(path, split)
        ds = _decode_all(((label, file.read_bytes(), str(file)) for _, label, file in files), len(files), str(path))
    if len(ds) == 0:
        raise FileNotFoundError(f"no images in {path} ({split} split)")
    if len(ds) != _SIZES[train]:
        log.warning("CIFAR-10 %s split at %s has %d images (the official split has %d)", split, path, len(ds), _SIZES[train])
    if cache:
        try:
            save_safetensors(cache_file, {"images": ds.images, "labels": ds.labels},
                             {"signature": json.dumps(signature, sort_keys=True)})
            log.info("cached the decoded CIFAR-10 %s split in %s", split, cache_file)
        except OSError as err:  # a read-only home is no reason to fail: decode again next time
            log.warning("could not cache the decoded images in %s (%s)", cache_file, err)
    return ds


# --------------------------------------------------------------------------- public API
def load_cifar10(
    root: str | os.PathLike, train: bool = True, download: bool = False, *, cache: bool = True
) -> ImageTensorDataset:
    """The train (50,000) or test (10,000) split: uint8 images (N, 3, 32, 32), labels (N,) in [0, 10).

    Args:
        root: torchvision's ``cifar-10-batches-py`` parent, a class-per-folder directory, or a ``.zip``
            of one (see the module docstring).
        train: the training split (else the test split).
        download: fetch the official release with torchvision when nothing is found at ``root``.
        cache: keep the decoded tensors of a class-per-folder copy in :func:`decoded_cache_dir`.

    Raises:
        FileNotFoundError: nothing usable at ``root`` and ``download`` is False.
        ValueError: class folders that are not CIFAR-10's, images that are not 32x32 or not decodable.
        RuntimeError: torchvision files that fail their md5 check.
    """
    root = Path(root).expanduser()
    found = find_cifar10(root)
    if found is None and not download:
        raise FileNotFoundError(f"CIFAR-10 not found at {root}. {_how_to_get(root)}")
    kind, path = found if found is not None else ("torchvision", root)
    if kind in ("zip", "folder"):
        return _load_class_folders(kind, path, train, cache)
    from torchvision.datasets import CIFAR10

    try:
        ds = CIFAR10(str(path), train=train, download=download and found is None)
    except RuntimeError as err:
        raise RuntimeError(
            f"CIFAR-10 files in {path / _BATCHES} fail torchvision's md5 check (damaged, or not the official release): "
            f"delete them and download again (--download). ({err})"
        ) from err
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # (N, 32, 32, 3) HWC -> NCHW
    return ImageTensorDataset(images, torch.as_tensor(ds.targets, dtype=torch.long), CIFAR10_CLASSES)

