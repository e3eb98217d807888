"""Finding weight files: explicit path -> weights shipped with the package -> Hugging Face Hub."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ._pretrained import PretrainedCfg
from ._weights import WeightsError

__all__ = ["WEIGHTS_FILENAME", "CONFIG_FILENAME", "packaged_weights_dir", "resolve_weights_file"]

log = logging.getLogger(__name__)

WEIGHTS_FILENAME = "model.safetensors"
CONFIG_FILENAME = "config.json"
_PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def packaged_weights_dir() -> Path | None:
    """``patchvae/_weights`` in an installed wheel, or ``weights/`` next to the package in a source checkout."""
    for candidate in (_PACKAGE_ROOT / "_weights", _PACKAGE_ROOT.parent / "weights"):
        if candidate.is_dir():
            return candidate
    return None


def resolve_weights_file(
    cfg: PretrainedCfg, *, checkpoint_path: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None
) -> tuple[Path, str | None]:
    """Path of the weights to load and the sha256 they must have (None: not known, not checked).

    Order: ``checkpoint_path`` (a file, or a folder holding ``model.safetensors``); the packaged
    file; ``huggingface_hub.hf_hub_download`` at the pinned revision (honours ``cache_dir``,
    ``HF_HUB_OFFLINE`` and the HF cache); otherwise a :class:`WeightsError` saying what to do.
    """
    if checkpoint_path is not None:
        path = Path(checkpoint_path).expanduser()
        if path.is_dir():
            path = path / WEIGHTS_FILENAME
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint_path {path} does not exist")
        return path, None
    if not cfg.has_weights:
        raise WeightsError(
            f"model {cfg.name!r} has no pretrained weights; see patchvae.models.list_pretrained() or pass "
            "checkpoint_path=... to load your own"
        )
    packaged = packaged_weights_dir()
    if cfg.file and packaged is not None and (packaged / cfg.file).is_file():
        log.debug("using packaged weights %s", packaged / cfg.file)
        return packaged / cfg.file, cfg.sha256
    if cfg.hf_hub_id:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        try:
            path = hf_hub_download(
                cfg.hf_hub_id,
                WEIGHTS_FILENAME,
                revision=cfg.hf_revision,
                cache_dir=os.fspath(cache_dir) if cache_dir is not None else None,
            )
        except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as err:
            raise WeightsError(
                f"could not get the weights of {cfg.name!r} from the Hugging Face Hub "
                f"({cfg.hf_hub_id}@{cfg.hf_revision or 'main'}): {err}. Connect to the internet once (the file "
                "is then cached), or download model.safetensors yourself and pass checkpoint_path=..."
            ) from err
        return Path(path), cfg.sha256
    raise WeightsError(
        f"the weights of {cfg.name!r} ({cfg.file}) are not in this installation and have no Hub mirror; "
        "reinstall patchvae from a wheel/sdist that ships weights/, or pass checkpoint_path=..."
    )
