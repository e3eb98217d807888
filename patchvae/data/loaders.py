"""Mini-batches of one split, for training and evaluation alike.

* :class:`~patchvae.data.ImageTensorDataset` (uint8 in memory): a :class:`~patchvae.data.BatchLoader`
  gathers and preprocesses whole batches on the device (``BatchPreprocess(data_config, train=...)``).
* Any other ``Dataset`` must yield transformed ``(float image (C, H, W), label)`` pairs; it goes
  through a ``DataLoader``.

:class:`FixedStepBatches` turns them into epochs of a fixed number of steps (the authors' ``run.py``:
390 steps on every dataset), cycling through reshuffled passes.

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

__all__ = ["EpochBatches", "FixedStepBatches"]


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


class FixedStepBatches:
    """Epochs of exactly ``steps_per_epoch`` training batches, drawn from a stream of reshuffled passes of ``batches``.

    The authors' ``run.py`` counts an epoch as a fixed 390 steps on every dataset: one pass of CIFAR at batch
    128, but ~3.5 passes of Indoor67 and a fraction of a pass of Places205 or ImageNet. Epoch ``e`` is the
    global batches ``e * steps_per_epoch ... (e + 1) * steps_per_epoch - 1`` of the stream, where pass ``p``
    is ``batches`` after ``set_epoch(p)``: the batches of an epoch depend only on ``(seed, e)``, so a resumed
    run sees the same batches as an uninterrupted one. An uninterrupted run keeps its place in the stream;
    a resume into the middle of a pass skips that pass's first batches once.
    """

    def __init__(self, batches: EpochBatches, steps_per_epoch: int) -> None:
        if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be an int >= 1, got {steps_per_epoch!r}")
        self.passes = len(batches)
        if self.passes == 0:
            raise ValueError("the training batches are empty: no full batch to draw fixed-step epochs from")
        self.batches = batches
        self.steps_per_epoch = steps_per_epoch
        self.epoch = 0
        self._stream: Iterator[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._position = -1  #: the global batch index the live stream yields next (-1: none)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps_per_epoch

    def _open(self, position: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """A stream positioned at global batch ``position``: its pass, with that pass's earlier batches skipped."""
        pass_index, skip = divmod(position, self.passes)
        self.batches.set_epoch(pass_index)
        stream = iter(self.batches)
        for _ in range(skip):
            next(stream)
        return stream

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        start = self.epoch * self.steps_per_epoch
        if self._stream is None or self._position != start:
            self._stream, self._position = self._open(start), start
        for _ in range(self.steps_per_epoch):
            try:
                batch = next(self._stream)
            except StopIteration:  # the pass is over: the next one, reshuffled
                self._stream = self._open(self._position)
                batch = next(self._stream)
            self._position += 1
            yield batch
