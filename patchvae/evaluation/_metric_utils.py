"""Plumbing shared by the representation metrics: models, preprocessed batches, labels, running moments.

Everything here reaches a model through the protocols of :mod:`patchvae.models._protocol` only
(``representations()``, ``rate``, ``elbo_terms`` ...): no model family is named.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

__all__ = [
    "Moments",
    "default_latent_layer",
    "evaluating",
    "image_batches",
    "labels_of",
    "mean_std",
    "resolve_model",
]


def resolve_model(model_or_name: nn.Module | str | os.PathLike) -> nn.Module:
    """A model object as is; a weights folder (or its file) or a zoo name with weights, loaded."""
    from .part_health import _resolve

    return _resolve(model_or_name)


def _first_tensor(model: nn.Module) -> torch.Tensor | None:
    for tensor in model.parameters():
        return tensor
    for tensor in model.buffers():
        return tensor
    return None


@contextlib.contextmanager
def evaluating(model: nn.Module, device: str | torch.device | None) -> Iterator[torch.device]:
    """Eval mode (and ``device``) inside the block; the model's mode and device are restored after it."""
    first = _first_tensor(model)
    was_device = first.device if first is not None else torch.device("cpu")
    target = torch.device(device) if device is not None else was_device
    if target.type == "meta" or was_device.type == "meta":
        raise ValueError("metrics cannot run on the 'meta' device (meta tensors hold no values); use cpu or cuda")
    was_training = model.training
    model.eval()
    if target != was_device:
        model.to(target)
    try:
        yield target
    finally:
        model.train(was_training)
        if target != was_device:
            model.to(was_device)


def image_batches(
    model: nn.Module,
    inputs: Any,
    *,
    batch_size: int,
    device: torch.device,
    preprocessed: bool = False,
    progress: bool = False,
    desc: str = "images",
) -> Iterator[torch.Tensor]:
    """Preprocessed batches (B, C, H, W) of ``inputs`` on ``device``, in the model's dtype and input order.

    The same pipeline as :func:`patchvae.extract_features` (any input it takes; raw images get the
    weights' own test-time preprocessing from ``model.data_config``), for metrics that need the
    image itself (the rate, the ELBO) rather than a representation of it.
    """
    from tqdm.auto import tqdm

    from .._extract.inputs import count_images, iter_items
    from ..features import _preprocess

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    data_config = getattr(model, "data_config", None)
    if not preprocessed and data_config is None:
        raise ValueError(
            f"this {type(model).__name__} has no data_config, so its preprocessing is unknown: create it with "
            "patchvae.models.create(...) or pass normalised float tensors with preprocessed=True"
        )
    first = _first_tensor(model)
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    total = count_images(inputs)
    bar = tqdm(total=total, unit="img", desc=desc, disable=not progress or (total is not None and total <= batch_size))
    chunk: list[torch.Tensor] = []

    def flush() -> torch.Tensor:
        if preprocessed:
            shapes = {tuple(t.shape) for t in chunk}
            if len(shapes) > 1:
                raise ValueError(f"preprocessed tensors in one batch must have the same shape, got {sorted(shapes)}")
            return torch.stack([t.to(device) for t in chunk]).to(dtype)
        return _preprocess(chunk, data_config, device, dtype)

    seen = 0
    try:
        for item in iter_items(inputs, preprocessed):
            chunk.append(item.image)
            if len(chunk) == batch_size:
                yield flush()
                seen += len(chunk)
                bar.update(len(chunk))
                chunk = []
        if chunk:
            yield flush()
            seen += len(chunk)
        if seen == 0:
            raise ValueError("no images to evaluate (the inputs are empty)")
    finally:
        bar.close()


def labels_of(data: Any) -> torch.Tensor:
    """The int64 labels (N,) of a labelled dataset: its ``labels``/``targets``, else the second item of each sample."""
    for attr in ("labels", "targets"):
        value = getattr(data, attr, None)
        if value is not None and not callable(value):
            labels = torch.as_tensor(value)
            if labels.ndim == 1:
                return labels.long()
    try:
        samples = (data[i] for i in range(len(data)))
    except TypeError as err:
        raise TypeError(f"cannot read labels from a {type(data).__name__}: pass a Dataset of (image, label)") from err
    labels = []
    for sample in samples:
        if not isinstance(sample, (tuple, list)) or len(sample) < 2:
            raise ValueError("probes need labelled data: a Dataset whose items are (image, label)")
        labels.append(int(sample[1]))
    return torch.tensor(labels, dtype=torch.long)


def default_latent_layer(model: Any) -> str:
    """The representation the metrics use by default: ``"latent"`` when the model has it, else its first
    stochastic layer with a distribution embedding (the Gaussian posterior, e.g. PatchVAE's part appearance).

    Chosen from ``model.representations()`` alone. ValueError for a model with neither (a classifier,
    a bare φ): pass ``layer=`` explicitly.
    """
    infos = model.representations()
    if "latent" in infos:
        return "latent"
    for name, info in infos.items():
        if info.stochastic and info.embedding_shape is not None:
            return name
    raise ValueError(
        f"{type(model).__name__} has no latent layer (no 'latent' and no stochastic layer with a distribution "
        f"embedding); pick one of its layers with layer= (--layer): {list(infos)}"
    )


class Moments:
    """Running count, mean and sum of squared deviations of scalars (float64; Chan et al.'s pairwise merge).

    Merged batch by batch in input order, so the result does not depend on the batch size beyond
    float rounding.
    """

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0

    def update(self, values: torch.Tensor) -> None:
        """Add the values (any shape; flattened), converted to float64 on the CPU."""
        v = values.detach().to("cpu", torch.float64).flatten()
        m = v.numel()
        if m == 0:
            return
        mean_b = float(v.mean())
        m2_b = float((v - mean_b).square().sum())
        n = self.count + m
        delta = mean_b - self.mean
        self.mean += delta * m / n
        self.m2 += m2_b + delta * delta * self.count * m / n
        self.count = n

    def std(self) -> float:
        """Sample standard deviation (Bessel's correction); 0 with fewer than two values."""
        return math.sqrt(max(self.m2, 0.0) / (self.count - 1)) if self.count > 1 else 0.0


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (Bessel's correction, 0 for one value) of per-seed results."""
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def check_seeds(seeds: int) -> int:
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be an int >= 1, got {seeds!r}")
    return seeds
