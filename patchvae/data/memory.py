"""Small datasets held in memory as uint8 tensors, preprocessed a whole batch at a time.

No per-sample Python runs in the hot loop: a batch is gathered with one ``index_select``, moved to
the device, then fitted to size, flipped and normalised as tensors.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, DistributedSampler

from .config import DataConfig

__all__ = ["BatchLoader", "BatchPreprocess", "ImageTensorDataset", "fit_to_size", "match_channels"]

_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, as PIL's convert("L")


class ImageTensorDataset(Dataset):
    """uint8 images (N, C, H, W) and int64 labels (N,) in memory; items are (image, label)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str] | None = None) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be a uint8 tensor (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(f"labels must be (N,) with N = {len(images)}, got {tuple(labels.shape)}")
        self.images = images
        self.labels = labels.long()
        self.classes = tuple(classes) if classes is not None else None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]

    def subset(self, indices: Sequence[int] | torch.Tensor) -> ImageTensorDataset:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return ImageTensorDataset(self.images[idx], self.labels[idx], self.classes)


def match_channels(x: torch.Tensor, chans: int) -> torch.Tensor:
    """Grayscale <-> RGB on a float batch (B, C, H, W): 1 -> 3 repeats, 3 -> 1 uses ITU-R 601 luma."""
    have = x.shape[1]
    if have == chans:
        return x
    if have == 1:
        return x.expand(-1, chans, -1, -1)
    if have == 3 and chans == 1:
        w = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * w).sum(1, keepdim=True)
    raise ValueError(f"cannot convert {have}-channel images to {chans} channels (only 1 <-> 3 is supported)")


def resize(x: torch.Tensor, size: tuple[int, int], interpolation: str = "bilinear") -> torch.Tensor:
    """Resize a float batch (B, C, h, w) to ``size`` (antialiased for bilinear/bicubic)."""
    antialias = interpolation in ("bilinear", "bicubic")
    return F.interpolate(x, size=size, mode=interpolation, antialias=antialias, align_corners=False if antialias else None)


def fit_to_size(x: torch.Tensor, size: tuple[int, int], mode: str, interpolation: str = "bilinear") -> torch.Tensor:
    """Bring a float batch (B, C, h, w) to ``size``: ``"pad"`` centre-pads (value 0) / centre-crops,
    ``"resize_crop"`` resizes the shorter side to the target (antialiased) then centre-crops."""
    th, tw = size
    h, w = x.shape[-2:]
    if mode == "resize_crop" and (h, w) != (th, tw):
        scale = max(th / h, tw / w)
        nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
        antialias = interpolation in ("bilinear", "bicubic")
        x = F.interpolate(x, size=(nh, nw), mode=interpolation, antialias=antialias, align_corners=False if antialias else None)
        h, w = nh, nw
    pad_h, pad_w = max(th - h, 0), max(tw - w, 0)
    if pad_h or pad_w:
        x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        h, w = x.shape[-2:]
    top, left = int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))  # as torchvision's center_crop
    return x[..., top : top + th, left : left + tw]


@dataclass
class BatchPreprocess:
    """The batched, on-device equivalent of :func:`patchvae.data.create_transform` for uint8 batches."""

    config: DataConfig
    train: bool = False

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """uint8 (B, C, h, w) -> normalised float32 (B, *config.input_size)."""
        cfg = self.config
        x = images.float().div_(255.0)
        x = match_channels(x, cfg.channels)
        size = cfg.resized_size(*x.shape[-2:])  # covering size / crop_pct (None: no resize)
        if size is not None:
            x = resize(x, size, cfg.interpolation)
        # pad in pixel space before normalising, so padding is black as in torchvision's CenterCrop
        x = fit_to_size(x, cfg.input_size[1:], "pad")
        mean = torch.tensor(cfg.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(cfg.std, device=x.device).view(1, -1, 1, 1)
        x = (x - mean) / std
        if self.train and cfg.hflip:
            flip = torch.rand(x.shape[0], generator=generator, device=generator.device if generator else "cpu") < 0.5
            x = torch.where(flip.to(x.device).view(-1, 1, 1, 1), x.flip(-1), x)
        return x.contiguous()


class BatchLoader:
    """Shuffled mini-batches of an :class:`ImageTensorDataset`, preprocessed per batch.

    The order of epoch ``e`` depends only on ``(seed, e)`` (call :meth:`set_epoch`, as with
    ``DistributedSampler``, which provides the indices), so training is reproducible and resumable.
    With ``world_size > 1`` every rank iterates a disjoint shard of equal length.

    Yields ``(images, labels)``: float (B, C, H, W) and int64 (B,) on ``device``.
    """

    def __init__(
        self,
        dataset: ImageTensorDataset,
        batch_size: int,
        preprocess: BatchPreprocess,
        *,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        device: str | torch.device = "cpu",
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.preprocess = preprocess
        self.drop_last = drop_last
        self.device = torch.device(device)
        self.seed = seed
        self.epoch = 0
        self.sampler = DistributedSampler(
            range(len(dataset)), num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=False
        )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        n = self.sampler.num_samples
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.tensor(list(iter(self.sampler)), dtype=torch.long)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        pin = self.device.type == "cuda"
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            images = self.dataset.images.index_select(0, idx)
            labels = self.dataset.labels.index_select(0, idx)
            if pin:
                images, labels = images.pin_memory(), labels.pin_memory()
            images = images.to(self.device, non_blocking=True)
            yield self.preprocess(images, gen), labels.to(self.device, non_blocking=True)
