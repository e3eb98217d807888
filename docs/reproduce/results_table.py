"""Print the Fashion-MNIST Table 1 analogue (markdown) from the JSON written by fmnist_table1.sh.

    python docs/reproduce/results_table.py [docs/results]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROWS = {  # result-file stem -> row label
    "fmnist_patchvae": "PatchVAE",
    "fmnist_patchvae_lw": "PatchVAE + L_w",
    "fmnist_beta_vae": "β-VAE",
    "random": "random-init φ",
    "supervised": "supervised from scratch",
}


def load(folder: Path, stem: str, kind: str) -> dict[str, dict]:
    path = folder / f"{stem}.{kind}.json"
    if not path.is_file():
        return {}
    results = json.loads(path.read_text())["results"]
    key = "freeze" if kind == "finetune" else "probe"
    return {str(r[key]): r for r in results}


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/results")
    cols = ("conv1", "conv3", "conv5")
    print("| model | Conv1 top-1 | Conv3 top-1 | Conv5 top-1 | Conv5 top-5 | linear probe top-1 | kNN top-1 |")
    print("|---|---|---|---|---|---|---|")
    for stem, label in ROWS.items():
        ft, probes = load(folder, stem, "finetune"), load(folder, stem, "probes")
        if stem == "supervised":
            full = ft.get("none")
            cells = [f"{full['top1']:.2f} (nothing frozen)" if full else "", "", "", ""]
        else:
            cells = [f"{ft[c]['top1']:.2f}" if c in ft else "" for c in cols]
            cells.append(f"{ft['conv5']['top5']:.2f}" if "conv5" in ft else "")
        cells += [f"{probes[p]['top1']:.2f}" if p in probes else "" for p in ("linear", "knn")]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
