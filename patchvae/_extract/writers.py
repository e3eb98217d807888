"""Streaming feature rows to ``.npy`` / ``.safetensors`` files without holding them in memory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["RowWriter", "write_npy", "write_safetensors"]


class RowWriter:
    """Appends each layer's rows to a raw float32 file in a temporary folder next to the output."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: dict[str, Any] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.rows = 0

    def write(self, features: dict[str, torch.Tensor]) -> None:
        for name, value in features.items():
            if name not in self.files:
                self.files[name] = open(self.folder / f"{len(self.files)}.f32", "wb")  # noqa: SIM115
                self.shapes[name] = tuple(value.shape[1:])
            self.files[name].write(value.numpy().astype("<f4", copy=False).tobytes())
        self.rows += next(iter(features.values())).shape[0]

    def close(self) -> None:
        for f in self.files.values():
            f.close()

    def path(self, name: str) -> Path:
        return Path(self.files[name].name)


def write_npy(writer: RowWriter, out: Path) -> None:
    (name,) = writer.files
    header = {"descr": "<f4", "fortran_order": False, "shape": (writer.rows, *writer.shapes[name])}
    with open(out, "wb") as f, open(writer.path(name), "rb") as src:
        np.lib.format.write_array_header_1_0(f, header)
        shutil.copyfileobj(src, f, 1 << 20)


def write_safetensors(writer: RowWriter, out: Path, metadata: dict[str, str]) -> None:
    header: dict[str, Any] = {}
    offset = 0
    for name in writer.files:
        size = writer.path(name).stat().st_size
        header[name] = {"dtype": "F32", "shape": [writer.rows, *writer.shapes[name]], "data_offsets": [offset, offset + size]}
        offset += size
    header["__metadata__"] = metadata
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(out, "wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        for name in writer.files:
            with open(writer.path(name), "rb") as src:
                shutil.copyfileobj(src, f, 1 << 20)
