"""Write the packaged Zhang et al. 2022 CIFAR-10 weights (weights/pixelvae_resnet_*_small.cifar10/) from the runs.

    python docs/reproduce/package_zhang2022_weights.py RUNS_DIR [RESULTS_DIR] [WEIGHTS_DIR]

RUNS_DIR holds the runs of docs/reproduce/zhang2022_cifar10.sh (``zc10_<variant>/model``); RESULTS_DIR its
evaluation JSON (``zhang2022_cifar10_<variant>.json``, default docs/results). Each folder gets the run's exact
``model.safetensors`` and a ``config.json`` + model card with the training command, the evaluation protocol
and its metrics. Prints the registry entries (sha256, metrics) for ``default_cfgs`` in patchvae/models/pixelvae.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from patchvae.models import get_pretrained_cfg, list_pretrained
from patchvae.models._pretrained import zhang2022_provenance
from patchvae.models._publish import build_publish_folder

#: variant -> head suffix of pixelvae_resnet_<suffix>_small
VARIANTS = {"vae": "h0", "lpvae_h1": "h1", "lpvae_h2": "h2", "fpvae": "full"}


def card_metrics(evaluation: dict) -> dict[str, float]:
    """The card's numbers from one ``patchvae eval --out`` JSON."""
    out: dict[str, float] = {}
    for m in evaluation["metrics"]:
        kind = m.get("metric")
        if kind == "bpd":
            out["bpd"] = round(m["bpd"], 4)
        elif kind == "rate":
            out["rate_nats"] = round(m["nats"], 2)
        elif kind == "conditional_entropy":
            out["conditional_entropy_nats"] = round(m["nats"], 2)
        elif kind == "intrinsic_dim":
            out["intrinsic_dim"] = m["intrinsic_dimension"]
        elif kind == "probe":
            key = {"linear_svm_fast": "linear_svm_top1", "nonlinear": "nonlinear_probe_top1"}[m["probe"]]
            out[key] = m["top1"]
    return out


def main() -> None:
    runs = Path(sys.argv[1])
    results = Path(sys.argv[2] if len(sys.argv) > 2 else "docs/results")
    weights = Path(sys.argv[3] if len(sys.argv) > 3 else "weights")
    for variant, head in VARIANTS.items():
        source, evaluation = runs / f"zc10_{variant}" / "model", results / f"zhang2022_cifar10_{variant}.json"
        if not source.is_dir() or not evaluation.is_file():
            print(f"skipped {variant}: no {source} or {evaluation}")
            continue
        name = f"pixelvae_resnet_{head}_small.cifar10"
        config = json.loads((source / "config.json").read_text())
        metrics = card_metrics(json.loads(evaluation.read_text()))
        full, folder = build_publish_folder(
            source, weights / name, name=name, repo_id=None, metrics=metrics,
            description=get_pretrained_cfg(name).description if name in list_pretrained() else None,
            **zhang2022_provenance(name, f"zhang2022_cifar10_{variant}", f"zc10_{variant}", epochs=config["epochs"]),
        )
        saved = json.loads((folder / "config.json").read_text())
        print(json.dumps({"name": full, "sha256": saved["sha256"], "num_params": saved.get("num_params"),
                          "epochs": config["epochs"], "metrics": metrics}))


if __name__ == "__main__":
    main()
