"""Probing a frozen φ end to end: pooled features of both splits, then the linear and/or kNN probe."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any

from torch.utils.data import Dataset

from ..data import DataConfig, ImageTensorDataset
from ..models import ResNetTrunk
from .backbone_source import BackboneSource, resolve_backbone
from .features import pooled_features
from .finetune import resolve_data_config_for
from .knn_probe import knn_probe
from .linear_probe import linear_probe
from .results import ProbeResult

__all__ = ["PROBES", "run_probes"]

log = logging.getLogger(__name__)

PROBES = ("linear", "knn")


def run_probes(
    backbone: ResNetTrunk | BackboneSource | str | os.PathLike,
    train_data: Dataset,
    test_data: Dataset,
    *,
    probes: Sequence[str] = PROBES,
    num_classes: int | None = None,
    data_config: DataConfig | None = None,
    arch: str = "patchvae_resnet9",
    seed: int = 0,
    batch_size: int = 256,
    device: str = "cpu",
    amp: str | None = None,
    linear_kwargs: dict[str, Any] | None = None,
    knn_kwargs: dict[str, Any] | None = None,
    progress: bool = True,
) -> list[ProbeResult]:
    """Evaluate frozen φ with each of ``probes`` (``"linear"``, ``"knn"``) on its pooled features.

    ``backbone`` is anything :func:`patchvae.evaluation.finetune` takes except ``"supervised"``
    (an untrained network has nothing to probe; use ``"random"``). Features are extracted once
    (eval mode, test-time preprocessing) and shared by the probes.
    """
    unknown = [p for p in probes if p not in PROBES]
    if unknown or not probes:
        raise ValueError(f"unknown probe(s) {unknown}; choose from {PROBES}")
    if isinstance(backbone, str) and backbone == "supervised":
        raise ValueError("'supervised' is a fine-tuning baseline; probe a random φ with 'random'")
    if isinstance(backbone, ResNetTrunk):
        source = BackboneSource(backbone, "module", type(backbone).__name__, getattr(backbone, "data_config", None))
    elif isinstance(backbone, BackboneSource):
        source = backbone
    else:
        in_chans = data_config.channels if data_config is not None else None
        img_size = data_config.input_size[1] if data_config is not None else None
        source = resolve_backbone(backbone, arch=arch, in_chans=in_chans, img_size=img_size, seed=seed)
    cfg = resolve_data_config_for(source, data_config)
    if cfg is None and isinstance(train_data, ImageTensorDataset):
        raise ValueError("pass data_config: neither the dataset nor φ says how to preprocess the images")
    t0 = time.perf_counter()
    common = {"data_config": cfg, "batch_size": batch_size, "device": device, "amp": amp, "progress": progress}
    train_x, train_y = pooled_features(source.backbone, train_data, desc="train features", **common)
    test_x, test_y = pooled_features(source.backbone, test_data, desc="test features", **common)
    feature_seconds = time.perf_counter() - t0
    log.info("pooled φ features: train %s, test %s (%.1f s)", tuple(train_x.shape), tuple(test_x.shape), feature_seconds)
    num_classes = num_classes or int(max(train_y.max(), test_y.max())) + 1
    results = []
    for probe in probes:
        if probe == "linear":
            result = linear_probe(train_x, train_y, test_x, test_y, num_classes=num_classes, seed=seed, **(linear_kwargs or {}))
        else:
            result = knn_probe(train_x, train_y, test_x, test_y, num_classes=num_classes, **(knn_kwargs or {}))
        result.backbone = source.name
        result.params["feature_seconds"] = feature_seconds
        results.append(result)
    return results
