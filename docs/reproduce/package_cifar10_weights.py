"""Write the packaged CIFAR-10 weights (weights/<arch>.cifar10*/) from the runs and evaluations of cifar10_weights.sh.

    python docs/reproduce/package_cifar10_weights.py RUNS_DIR [RESULTS_DIR] [WEIGHTS_DIR]

RESULTS_DIR defaults to docs/results/cifar10_e30, the reports of the shipped budget (30 epochs), whose folders are
named after the rows (``patchvae_resnet9.cifar10`` ...); with docs/results/cifar10_e90 (the paper's 90 epochs) they
are ``<name>_e90`` and the weights are stored in float16 (weights/README.md says why).

Each folder gets the run's exact ``model.safetensors`` and a ``config.json`` + model card with the training
command, the evaluation protocol, the metrics (Conv5, Conv3 / Conv1 where run, linear and kNN probes, rate, intrinsic dimension, and
part health for PatchVAE) and the commands that reproduce them. Prints the registry entries (sha256) to put
in the model files' ``default_cfgs``.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from patchvae.models import get_pretrained_cfg, list_pretrained
from patchvae.models._pretrained import cifar10_provenance
from patchvae.models._publish import build_publish_folder

MODELS = {  # run name -> registry name
    "cifar10_patchvae": "patchvae_resnet9.cifar10",
    "cifar10_beta_vae": "beta_vae_resnet9_32.cifar10",
    "cifar10_patchvae_lw": "patchvae_resnet9.cifar10_lw",
    "cifar10_beta_vae_lw": "beta_vae_resnet9_32.cifar10_lw",
    "cifar10_patchvae_tuned": "patchvae_resnet9.cifar10_tuned",
}
#: results folder of a budget -> (run name -> registry name, storage dtype of the weights: None keeps float32)
BUDGETS = {
    "cifar10_e30": (MODELS, None),
    "cifar10_e90": ({run: f"{name}_e90" for run, name in MODELS.items()}, "float16"),
}


def run_threads(command: str) -> int | None:
    """The ``--threads`` of the run's recorded training command (its model folder's config.json), None if not given."""
    args = shlex.split(command)
    return int(args[args.index("--threads") + 1]) if "--threads" in args else None


def card_metrics(results: Path, run: str) -> dict[str, float]:
    """The card's metrics from the JSON reports of ``patchvae finetune`` and ``patchvae eval``."""
    # Conv5 from <run>.finetune.json; Conv3 / Conv1 from <run>.finetune_conv{3,1}.json where run (cifar10_table1_rows.sh PRESETS)
    reports = [results / f"{run}.finetune{suffix}.json" for suffix in ("", "_conv3", "_conv1")]
    ft = {r["freeze"]: r for path in reports if path.is_file() for r in json.loads(path.read_text())["results"]}
    report = json.loads((results / f"{run}.probes.json").read_text())
    probes = {r["probe"]: r for r in report["results"]}
    metrics = {"conv5_top1": round(ft["conv5"]["top1"], 2), "conv5_top5": round(ft["conv5"]["top5"], 2),
               "linear_probe_top1": round(probes["linear"]["top1"], 2), "knn_top1": round(probes["knn"]["top1"], 2)}
    metrics.update({f"{k}_top1": round(ft[k]["top1"], 2) for k in ("conv1", "conv3") if k in ft})
    for record in report.get("metrics", []):
        if record.get("metric") == "rate":
            metrics["rate_nats"] = round(record["nats"], 2)
        elif record.get("metric") == "intrinsic_dim":
            metrics["intrinsic_dim"] = record["intrinsic_dimension"]
    health = report.get("part_health")
    if health:
        metrics.update(active_parts=health["active_parts"], num_parts=health["num_parts"],
                       part_usage_entropy=round(health["part_usage_entropy"], 4),
                       mean_visibility=round(health["mean_visibility"], 4))
    return metrics


def main() -> None:
    runs = Path(sys.argv[1])
    results = Path(sys.argv[2] if len(sys.argv) > 2 else "docs/results/cifar10_e30")
    weights = Path(sys.argv[3] if len(sys.argv) > 3 else "weights")
    if results.name not in BUDGETS:
        raise SystemExit(f"{results}: no packaged budget is named {results.name!r}; use one of {', '.join(BUDGETS)}")
    models, storage_dtype = BUDGETS[results.name]
    for run, name in models.items():
        if not (runs / run / "model").is_dir() or (weights / name).exists():
            print(f"skipped {name}: no run {runs / run / 'model'}, or {weights / name} exists already")
            continue
        config = json.loads((runs / run / "model" / "config.json").read_text())
        metrics = card_metrics(results, run)
        provenance = cifar10_provenance(name, run, epochs=config["epochs"], threads=run_threads(config["command"]))
        full, folder = build_publish_folder(
            runs / run / "model", weights / name, name=name, repo_id=None, metrics=metrics,
            description=get_pretrained_cfg(name).description if name in list_pretrained() else None,
            storage_dtype=storage_dtype, **provenance,
        )
        saved = json.loads((folder / "config.json").read_text())
        print(f"{full}: sha256 {saved['sha256']}  metrics {metrics}")


if __name__ == "__main__":
    main()
