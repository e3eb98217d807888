"""Mini-batches for evaluation: in-memory uint8 datasets on the fast path, any torch Dataset otherwise.

* :class:`~patchvae.data.ImageTensorDataset`: a :class:`~patchvae.data.BatchLoader` gathers and
  preprocesses whole batches (``BatchPreprocess(data_config, train=...)``) on the device; the order
  of epoch ``e`` depends only on ``(seed, e)``.
* Any other ``Dataset`` must yield already-transformed ``(image tensor, label)`` pairs; it goes
  through a ``DataLoader`` whose shuffling (and worker seeds) are drawn from a generator seeded
  with ``(seed, e)``, so its order is reproducible too.

Training batches drop the last incomplete batch (a batch of a handful of images gives noisy
BatchNorm statistics); evaluation batches keep every sample.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, SequentialSampler

from ..data import BatchLoader, BatchPreprocess, DataConfig, ImageTensorDataset

__all__ = ["EpochBatches", "make_batches"]


class EpochBatches:
    """Re-iterable batches of one split; call :meth:`set_epoch` before each training epoch.

    Yields ``(images, labels)``: float (B, C, H, W) and int64 (B,) on ``device``.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        batch_size: int,
        train: bool,
        data_config: DataConfig | None,
        seed: int = 0,
        device: torch.device | str = "cpu",
        num_workers: int = 0,
    ) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.train = train
        self.seed = seed
        self.device = torch.device(device)
        self.num_workers = num_workers
        self.epoch = 0
        self._fast: BatchLoader | None = None
        if isinstance(dataset, ImageTensorDataset):
            if data_config is None:
                raise ValueError("an ImageTensorDataset holds raw uint8 images: pass the data_config that preprocesses them")
            self._fast = BatchLoader(
                dataset, batch_size, BatchPreprocess(data_config, train=train),
                shuffle=train, drop_last=train, seed=seed, device=self.device,
            )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self._fast is not None:
            self._fast.set_epoch(epoch)

    def __len__(self) -> int:
        if self._fast is not None:
            return len(self._fast)
        n = len(self.dataset)
        return n // self.batch_size if self.train else -(-n // self.batch_size)

    def _generic(self) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        sampler = RandomSampler(self.dataset, generator=gen) if self.train else SequentialSampler(self.dataset)
        return DataLoader(
            self.dataset, batch_size=self.batch_size, sampler=sampler, drop_last=self.train,
            num_workers=self.num_workers, generator=gen, pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self._fast is not None:
            yield from self._fast
            return
        for images, labels in self._generic():
            if not isinstance(images, torch.Tensor) or not images.is_floating_point():
                raise TypeError(
                    "a generic Dataset must yield already-transformed float image tensors; wrap raw uint8 "
                    "images in patchvae.data.ImageTensorDataset (or add a transform such as "
                    "patchvae.data.create_transform(data_config))"
                )
            yield images.to(self.device, non_blocking=True), torch.as_tensor(labels).long().to(self.device, non_blocking=True)


def make_batches(
    dataset: Dataset,
    *,
    batch_size: int,
    train: bool,
    data_config: DataConfig | None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    num_workers: int = 0,
) -> EpochBatches:
    """Training (shuffled, augmented, last batch dropped) or evaluation (ordered, every sample) batches."""
    return EpochBatches(
        dataset, batch_size=batch_size, train=train, data_config=data_config,
        seed=seed, device=device, num_workers=num_workers,
    )
