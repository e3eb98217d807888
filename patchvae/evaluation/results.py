"""Result records of fine-tuning and probes: plain, JSON-serialisable dataclasses."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from .._io import save_json

__all__ = ["FinetuneResult", "ProbeResult", "save_results"]


@dataclass
class FinetuneResult:
    """Outcome of :func:`patchvae.evaluation.finetune`. Accuracies are percentages on the test split.

    ``history`` has one dict per epoch: ``epoch`` (1-based), ``lr``, ``train_loss``, ``train_top1``,
    ``seconds`` (and ``test_top1``/``test_top5`` on evaluated epochs). ``model`` is the trained
    classifier; it is not part of :meth:`to_dict`.
    """

    protocol: str
    freeze: str | int
    top1: float
    top5: float
    history: list[dict[str, float]]
    config: dict[str, Any]
    elapsed_seconds: float
    num_train: int
    num_test: int
    num_classes: int
    trainable_params: int
    backbone: str = ""
    data_config: dict[str, Any] | None = None
    model: nn.Module | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "model"}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


@dataclass
class ProbeResult:
    """Outcome of a probe on frozen, pooled φ features. Accuracies are percentages on the test split.

    ``params`` holds the probe's settings and choices (e.g. the selected L2 strength, k).
    """

    probe: str
    top1: float
    top5: float
    params: dict[str, Any]
    num_train: int
    num_test: int
    num_classes: int
    elapsed_seconds: float
    backbone: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def save_results(path: str | os.PathLike, results: list[FinetuneResult | ProbeResult], **meta: Any) -> Path:
    """Write ``{**meta, "results": [r.to_dict() ...]}`` as JSON (atomically)."""
    return save_json(path, {**meta, "results": [r.to_dict() for r in results]})
