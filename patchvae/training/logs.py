"""Run logs: JSON lines (always) and TensorBoard (when the ``tensorboard`` package is installed)."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

__all__ = ["RunLogger", "read_events"]

log = logging.getLogger(__name__)


class RunLogger:
    """Appends one JSON object per event to ``log.jsonl`` and mirrors scalars to TensorBoard (``tb/``).

    Only the main process should create one. Scalars are logged under ``<split>/<name>``.
    """

    def __init__(self, out_dir: Path, tensorboard: bool = True) -> None:
        self.path = Path(out_dir) / "log.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", buffering=1)  # noqa: SIM115 (closed in close())
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.warning("tensorboard is not installed: only log.jsonl is written (pip install tensorboard)")
            else:
                self._tb = SummaryWriter(str(Path(out_dir) / "tb"))

    def scalars(self, split: str, step: int, values: dict[str, float], **extra: Any) -> None:
        record = {"time": round(time.time(), 3), "split": split, "step": step, **extra}
        record.update({k: (v if math.isfinite(v) else str(v)) for k, v in values.items()})
        self._file.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for key, value in values.items():
                self._tb.add_scalar(f"{split}/{key}", value, step)

    def event(self, kind: str, **fields: Any) -> None:
        self._file.write(json.dumps({"time": round(time.time(), 3), "event": kind, **fields}) + "\n")

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        self._file.close()


def read_events(run_dir: str | Path, kind: str) -> list[dict[str, Any]]:
    """The ``kind`` events (e.g. "epoch") that :class:`RunLogger` wrote to ``run_dir/log.jsonl``, in order;
    ``[]`` when the run has no log yet. A line cut short by a killed process is skipped."""
    path = Path(run_dir) / "log.jsonl"
    if not path.is_file():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("event") == kind:
            events.append(record)
    return events
