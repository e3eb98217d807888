"""Write the packaged Sixt 2018 weights (weights/sixt2018_*.cifar10*/) from the runs and docs/results/sixt2018_cifar10.json.

    python docs/reproduce/package_sixt2018_weights.py RUNS_DIR [RESULTS_JSON] [WEIGHTS_DIR]

Each folder gets the run's exact ``model.safetensors`` and a ``config.json`` + model card with the training
command, the evaluation protocol and its metrics (M, M/#pixel, both cross entropies, the linear probe).
Prints the registry entries (sha256, metrics) for ``default_cfgs`` in patchvae/models/sixt2018.py. VAE_4096d
(13.7 MB in float32) is stored in float16 (weights/README.md): its rate and linear probe are unchanged by it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from patchvae.models._pretrained import sixt2018_provenance
from patchvae.models._publish import build_publish_folder

RUNS = ["p3_i1", "p9_i1", "p9_i3", "p15_i1", "p15_i3", "p15_i5", "vae_32d", "vae_256d", "vae_4096d", "betavae_32d"]
#: runs stored in a smaller dtype than float32, to keep the wheel under PyPI's limit
STORAGE_DTYPE = {"vae_4096d": "float16"}


def label(run: str) -> str:
    if run.startswith("p"):
        p, i = run[1:].split("_i")
        return f"{p}|{i}"
    kind, dim = run.split("_")
    return ("VAE_" if kind == "vae" else "β-VAE_") + dim


def name_of(run: str) -> str:
    if run.startswith("p"):
        return f"sixt2018_patch_{run}.cifar10"
    kind, dim = run.split("_")
    return f"sixt2018_vae_{dim}.cifar10" + ("" if kind == "vae" else "_beta250")


def metrics_of(results: dict, run: str) -> dict[str, float]:
    key = label(run)
    out: dict[str, float] = {}
    t23 = results["table2_3"].get(key, {})
    if run.startswith("p"):
        out.update(rate_bits=round(t23["rate_bits"], 2), rate_bits_per_pixel=round(t23["rate_bits_per_pixel"], 4),
                   cross_entropy_reconstruction_bpd=round(t23["reconstruction_bpd"], 4),
                   cross_entropy_elbo_bpd=round(t23["elbo_bpd"], 4))
    else:
        out.update(rate_bits=round(t23["bits"], 2), rate_bits_per_4096=round(t23["rate_bits_per_4096"], 4))
    if key in results.get("table4", {}):
        out["linear_probe_top1"] = round(results["table4"][key]["top1"], 2)
    return out


def main() -> None:
    runs = Path(sys.argv[1])
    results = json.loads(Path(sys.argv[2] if len(sys.argv) > 2 else "docs/results/sixt2018_cifar10.json").read_text())
    weights = Path(sys.argv[3] if len(sys.argv) > 3 else "weights")
    for run in RUNS:
        source = runs / f"sx_{run}" / "model"
        if not source.is_dir():
            print(f"skipped {run}: no {source}")
            continue
        name = name_of(run)
        config = json.loads((source / "config.json").read_text())
        metrics = metrics_of(results, run)
        full, folder = build_publish_folder(
            source, weights / name, name=name, repo_id=None, metrics=metrics, storage_dtype=STORAGE_DTYPE.get(run),
            description=f"Sixt 2018 {label(run)} trained on CIFAR-10 (JPEG copy), {config['epochs']} epochs, under our "
                        "architecture (docs/models.md)",
            **sixt2018_provenance(name, f"sixt2018_cifar10_{run}", f"sx_{run}", epochs=config["epochs"]),
        )
        saved = json.loads((folder / "config.json").read_text())
        print(json.dumps({"name": full, "sha256": saved["sha256"], "num_params": saved.get("num_params"),
                          "epochs": config["epochs"], "metrics": metrics}))


if __name__ == "__main__":
    main()
