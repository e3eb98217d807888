"""What a model expects as input: the preprocessing that travels with every set of weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["CIFAR", "FASHION_MNIST", "IMAGENET", "IMAGENET_NORMALIZATION", "MINUS_ONE_TO_ONE", "SCENES_64", "DataConfig"]

#: mean/std mapping [0, 1] pixels to [-1, 1], the range of the decoders' tanh output.
MINUS_ONE_TO_ONE = (0.5, 0.5)
#: ImageNet statistics (the authors' ``--inet`` flag, used in their CIFAR/Places/ImageNet commands).
IMAGENET_NORMALIZATION = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclass(frozen=True)
class DataConfig:
    """Preprocessing of one set of weights.

    Attributes:
        input_size: (C, H, W) of the model input.
        mean, std: per-channel normalisation of [0, 1] pixels (length C).
        resize_mode: how a raw image reaches H×W: ``"pad"`` (centre-pad smaller images, centre-crop
            larger ones: Fashion-MNIST 28 -> 32) or ``"resize_crop"`` (resize the shorter side to H,
            centre-crop: CIFAR/Indoor67/Places205/ImageNet as in the paper).
        interpolation: resize interpolation (torchvision name).
        hflip: random horizontal flips during training.
    """

    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize_mode: Literal["pad", "resize_crop"] = "resize_crop"
    interpolation: str = "bilinear"
    hflip: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        chans = self.input_size[0]
        if len(self.input_size) != 3 or min(self.input_size) < 1:
            raise ValueError(f"input_size must be (C, H, W) with positive entries, got {self.input_size}")
        if len(self.mean) != chans or len(self.std) != chans:
            raise ValueError(f"mean/std need {chans} values for {chans} channels, got {self.mean} / {self.std}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {self.std}")
        if self.resize_mode not in ("pad", "resize_crop"):
            raise ValueError(f"resize_mode must be 'pad' or 'resize_crop', got {self.resize_mode!r}")

    @property
    def channels(self) -> int:
        return self.input_size[0]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataConfig:
        known = {k: d[k] for k in ("input_size", "mean", "std", "resize_mode", "interpolation", "hflip", "extra") if k in d}
        for key in ("input_size", "mean", "std"):
            if key not in known:
                raise ValueError(f"data config is missing {key!r}: {d}")
        known["input_size"] = tuple(int(v) for v in known["input_size"])
        known["mean"] = tuple(float(v) for v in known["mean"])
        known["std"] = tuple(float(v) for v in known["std"])
        return cls(**known)

    def with_channels(self, chans: int) -> DataConfig:
        """The same preprocessing for ``chans`` input channels (grayscale <-> RGB)."""
        if chans == self.channels:
            return self
        mean = sum(self.mean) / len(self.mean)
        std = sum(self.std) / len(self.std)
        return DataConfig(
            (chans, *self.input_size[1:]), (mean,) * chans, (std,) * chans,
            self.resize_mode, self.interpolation, self.hflip, dict(self.extra),
        )


FASHION_MNIST = DataConfig((1, 32, 32), (0.5,), (0.5,), resize_mode="pad")
CIFAR = DataConfig((3, 32, 32), *IMAGENET_NORMALIZATION)
#: Indoor67 / Places205 at 64×64: resize + centre crop, flips in training (the authors' train transform).
SCENES_64 = DataConfig((3, 64, 64), *IMAGENET_NORMALIZATION, hflip=True)
#: ImageNet at 224×224 (paper Table 2).
IMAGENET = DataConfig((3, 224, 224), *IMAGENET_NORMALIZATION, hflip=True)
