"""Bring the text of the packaged model folders (weights/<name>/config.json and the model card README.md) in line
with the registry's ``description`` and ``metrics``, without touching the weights.

    python docs/reproduce/refresh_cards.py [WEIGHTS_DIR]

For a card whose prose changed (e.g. the weights became a default, or gained a seed study): edit the entry in
the model file's ``default_cfgs``, then run this. The weights' sha256 must still match the registry; a folder
whose weights differ is refused (re-package it with its package_*_weights.py script instead). Prints each
folder it rewrote.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from patchvae._io import atomic_write, save_json
from patchvae.models import get_pretrained_cfg, list_pretrained
from patchvae.models._publish import MODEL_CARD_FILENAME, model_card


def refresh(folder: Path) -> bool:
    """Rewrite ``folder``'s config.json and card from the registry entry of the same name; True if anything changed."""
    config = json.loads((folder / "config.json").read_text())
    cfg = get_pretrained_cfg(folder.name)
    if config["sha256"] != cfg.sha256:
        raise SystemExit(f"{folder}: its weights (sha256 {config['sha256'][:12]}) are not the registered ones "
                         f"({cfg.sha256[:12]}); re-package the folder instead of refreshing its card")
    updated = {**config, "description": cfg.description, "metrics": dict(cfg.metrics)}
    card = model_card(updated)
    if updated == config and (folder / MODEL_CARD_FILENAME).read_text() == card:
        return False
    save_json(folder / "config.json", updated)
    atomic_write(folder / MODEL_CARD_FILENAME, lambda p: p.write_text(card, encoding="utf-8"))
    return True


def main() -> None:
    weights = Path(sys.argv[1] if len(sys.argv) > 1 else "weights")
    registered = set(list_pretrained())
    for folder in sorted(p for p in weights.iterdir() if p.is_dir() and p.name in registered):
        if refresh(folder):
            print(f"rewrote {folder}")


if __name__ == "__main__":
    main()
