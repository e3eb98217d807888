"""Finding weight files: explicit path -> weights shipped with the package -> Hugging Face Hub."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ._pretrained import PretrainedCfg
from ._weights import WeightsError

__all__ = [
    "CONFIG_FILENAME",
    "MODEL_CARD_FILENAME",
    "WEIGHTS_FILENAME",
    "hub_offline",
    "packaged_weights_dir",
    "resolve_weights_file",
]

log = logging.getLogger(__name__)

WEIGHTS_FILENAME = "model.safetensors"
CONFIG_FILENAME = "config.json"
MODEL_CARD_FILENAME = "README.md"
_PACKAGE_ROOT = Path(__file__).resolve().parents[1]
_TRUE = {"1", "on", "yes", "true"}


def packaged_weights_dir() -> Path | None:
    """``patchvae/_weights`` in an installed wheel, or ``weights/`` next to the package in a source checkout."""
    for candidate in (_PACKAGE_ROOT / "_weights", _PACKAGE_ROOT.parent / "weights"):
        if candidate.is_dir():
            return candidate
    return None


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` is set, read when called (huggingface_hub itself reads it once, at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def _download(cfg: PretrainedCfg, cache_dir: str | os.PathLike | None, local_files_only: bool) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from ..version import __version__

    offline = local_files_only or hub_offline()
    where = f"{cfg.hf_hub_id}@{cfg.hf_revision or 'main'}/{WEIGHTS_FILENAME}"
    cache = f" (cache_dir={os.fspath(cache_dir)})" if cache_dir is not None else " (the default Hugging Face cache)"
    try:
        path = hf_hub_download(
            cfg.hf_hub_id,
            WEIGHTS_FILENAME,
            revision=cfg.hf_revision,
            cache_dir=os.fspath(cache_dir) if cache_dir is not None else None,
            local_files_only=offline,
            library_name="patchvae",
            library_version=__version__,
        )
    except LocalEntryNotFoundError as err:
        if offline:
            why = "offline mode is on (HF_HUB_OFFLINE=1 or local_files_only=True)"
        else:
            why = "the Hugging Face Hub could not be reached"
        raise WeightsError(
            f"cannot get the weights of {cfg.name!r}: {why} and {where} is not in the local cache{cache}. "
            "Download them once while online (e.g. `hf download "
            f"{cfg.hf_hub_id} {WEIGHTS_FILENAME} --revision {cfg.hf_revision or 'main'}`"
            + (f" --cache-dir {os.fspath(cache_dir)}" if cache_dir is not None else "")
            + "), or pass checkpoint_path=<a local model.safetensors or weights folder>."
        ) from err
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as err:
        raise WeightsError(
            f"the Hugging Face Hub has no {where} ({type(err).__name__}). The registry entry of {cfg.name!r} "
            "points to a repository or revision that does not exist (or is private): upgrade patchvae, or "
            "pass checkpoint_path=... to load a local copy."
        ) from err
    except (HfHubHTTPError, OSError) as err:
        raise WeightsError(
            f"could not download {where} for {cfg.name!r}: {err}. Check the connection and retry, or pass "
            "checkpoint_path=... to load a local copy."
        ) from err
    return Path(path)


def resolve_weights_file(
    cfg: PretrainedCfg,
    *,
    checkpoint_path: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
) -> tuple[Path, str | None]:
    """Path of the weights to load and the sha256 they must have (None: not known, not checked).

    Order: ``checkpoint_path`` (a file, or a folder holding ``model.safetensors``); the packaged
    file; ``huggingface_hub.hf_hub_download`` at the pinned ``hf_revision`` (honours ``cache_dir``,
    ``local_files_only``, ``HF_HUB_OFFLINE`` and the HF cache); otherwise a :class:`WeightsError`
    saying what to do.
    """
    if checkpoint_path is not None:
        path = Path(checkpoint_path).expanduser()
        if path.is_dir():
            if not (path / WEIGHTS_FILENAME).is_file():
                raise FileNotFoundError(
                    f"checkpoint_path {path} is a folder without {WEIGHTS_FILENAME}; pass the weights file itself "
                    "or a folder written by patchvae.models.save_pretrained(...)"
                )
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
        return _download(cfg, cache_dir, local_files_only), cfg.sha256
    raise WeightsError(
        f"the weights of {cfg.name!r} ({cfg.file}) are not in this installation and have no Hub mirror; "
        "reinstall patchvae from a wheel/sdist that ships weights/, or pass checkpoint_path=..."
    )
