"""Image files on disk given as a list of (relative path, label), decoded with PIL on access."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torchvision.datasets import VisionDataset
from torchvision.datasets.folder import default_loader

__all__ = ["ImageListDataset"]


class ImageListDataset(VisionDataset):
    """Images ``root / relpath`` with integer labels; items are ``(transform(image), label)``.

    Paths are held in one numpy byte array (not millions of Python strings), so DataLoader workers
    forked from the main process share them instead of copying them on first touch.

    Attributes:
        classes: class names indexed by label (may be None when the source gives none).
        targets: labels as a list of ints (as torchvision's ImageFolder).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        relpaths: Sequence[str],
        labels: Sequence[int],
        classes: Sequence[str] | None = None,
        transform: Callable[[Any], Any] | None = None,
        loader: Callable[[str], Any] = default_loader,
    ) -> None:
        super().__init__(str(root), transform=transform)
        if len(relpaths) != len(labels):
            raise ValueError(f"{len(relpaths)} paths but {len(labels)} labels")
        encoded = [p.encode("utf-8") for p in relpaths]
        self._relpaths = np.array(encoded, dtype=np.bytes_) if encoded else np.empty(0, dtype="S1")
        self._labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        self.classes = tuple(classes) if classes is not None else None
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)} if self.classes is not None else None
        self.loader = loader

    def __len__(self) -> int:
        return len(self._labels)

    def relpath(self, index: int) -> str:
        """Path of item ``index`` relative to ``root`` (with ``/`` separators)."""
        return self._relpaths[index].decode("utf-8")

    def path(self, index: int) -> Path:
        return Path(self.root) / self.relpath(index)

    @property
    def targets(self) -> list[int]:
        return self._labels.tolist()

    @property
    def samples(self) -> list[tuple[str, int]]:
        """``(absolute path, label)`` pairs as ImageFolder's ``samples`` (built on each access: O(N))."""
        return [(str(self.path(i)), int(label)) for i, label in enumerate(self._labels)]

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = self.loader(str(self.path(index)))
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self._labels[index])

    def extra_repr(self) -> str:
        n_cls = len(self.classes) if self.classes is not None else "?"
        return f"Classes: {n_cls}"
