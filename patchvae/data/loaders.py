"""Mini-batches of one split, for training and evaluation alike.

* :class:`~patchvae.data.ImageTensorDataset` (uint8 in memory): a :class:`~patchvae.data.BatchLoader`
  gathers and preprocesses whole batches on the device (``BatchPreprocess(data_config, train=...)``).
* Any other ``Dataset`` must yield transformed ``(float image (C, H, W), label)`` pairs; it goes
  through a ``DataLoader``.

Both shard the data across ``torch.distributed`` processes (``DistributedSampler`` semantics, also
for one process), and the order and augmentation of epoch ``e`` depend only on ``(seed, e)``: call
:meth:`EpochBatches.set_epoch` before each epoch. Training batches are shuffled and drop the last
incomplete batch (a handful of images gives noisy BatchNorm statistics); evaluation batches keep
every sample in order.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from .config import DataConfig
from .memory import BatchLoader, BatchPreprocess, ImageTensorDataset

__all__ = ["EpochBatches"]


class EpochBatches:
    """Re-iterable batches of ``dataset``; yields ``(images, labels)``: float (B, C, H, W) and int64 (B,) on ``device``."""

    def __init__(
        self,
        dataset: Dataset,
        *,
        batch_size: int,
        train: bool,
        data_config: DataConfig | None = None,
        seed: int = 0,
        device: torch.device | str = "cpu",
        num_workers: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.train = train
        self.seed = seed
        self.device = torch.device(device)
        self.epoch = 0
        self._fast: BatchLoader | None = None
        self._loader: DataLoader | None = None
        if isinstance(dataset, ImageTensorDataset):
            if data_config is None:
                raise ValueError("an ImageTensorDataset holds raw uint8 images: pass the data_config that preprocesses them")
            self._fast = BatchLoader(
                dataset, batch_size, BatchPreprocess(data_config, train=train), shuffle=train, drop_last=train,
                seed=seed, device=self.device, rank=rank, world_size=world_size,
            )
        else:
            self._sampler = DistributedSampler(dataset, world_size, rank, shuffle=train, seed=seed, drop_last=False)
            self._generator = torch.Generator()  # worker seeds, re-seeded every epoch
            self._loader = DataLoader(
                dataset, batch_size=batch_size, sampler=self._sampler, drop_last=train, num_workers=num_workers,
                generator=self._generator, pin_memory=self.device.type == "cuda",
            )
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self._fast is not None:
            self._fast.set_epoch(epoch)
        else:
            self._sampler.set_epoch(epoch)
            self._generator.manual_seed(self.seed * 1_000_003 + epoch)

    def __len__(self) -> int:
        return len(self._fast) if self._fast is not None else len(self._loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self._fast is not None:
            yield from self._fast
            return
        for images, labels in self._loader:
            if not isinstance(images, torch.Tensor) or not images.is_floating_point():
                raise TypeError(
                    "a generic Dataset must yield already-transformed float image tensors; wrap raw uint8 "
                    "images in patchvae.data.ImageTensorDataset (or add a transform such as "
                    "patchvae.data.create_transform(data_config))"
                )
            labels = torch.as_tensor(labels).long()
            yield images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)
