"""Write the packaged Fashion-MNIST weights (weights/<arch>.<tag>/) from the runs and evaluations of fmnist_table1.sh.

    python docs/reproduce/package_fmnist_weights.py RUNS_DIR [RESULTS_DIR] [WEIGHTS_DIR]

Each folder gets the run's exact ``model.safetensors`` and a ``config.json`` + model card with the
training command, the evaluation protocol, the metrics and the commands that reproduce them. Prints
the registry entries (sha256) to put in the model files' ``default_cfgs``. To also put them on the
Hugging Face Hub: ``patchvae publish ARCH.TAG --repo-id ORG/REPO``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from patchvae.models._publish import build_publish_folder

MODELS = {  # run name -> registry name
    "fmnist_patchvae": "patchvae_resnet9.fmnist",
    "fmnist_patchvae_lw": "patchvae_resnet9.fmnist_lw",
    "fmnist_beta_vae": "beta_vae_resnet9_32.fmnist",
}
PROTOCOL = (
    "Fashion-MNIST test split (10,000 images), top-1/top-5 in %. Fine-tuning (paper §4 protocol, scaled "
    "down): supplement Table 5 classifier on φ, Table 1 columns Conv1/Conv3/Conv5 (first 1/3/5 units of φ "
    "frozen), fashion_mnist preset: SGD momentum 0.9, weight decay 1e-4, batch 128, lr 1e-2 divided by 10 "
    "after epochs 4 and 8, 12 epochs, float32, seed 0. Probes: globally average-pooled φ features; linear = "
    "L-BFGS logistic regression (L2 chosen on 10% of the training split), kNN = cosine, k=20, weighted votes."
)


def main() -> None:
    runs = Path(sys.argv[1])
    results = Path(sys.argv[2] if len(sys.argv) > 2 else "docs/results")
    weights = Path(sys.argv[3] if len(sys.argv) > 3 else "weights")
    for run, name in MODELS.items():
        ft = {r["freeze"]: r for r in json.loads((results / f"{run}.finetune.json").read_text())["results"]}
        probes = {r["probe"]: r for r in json.loads((results / f"{run}.probes.json").read_text())["results"]}
        metrics = {f"{preset}_top1": round(ft[preset]["top1"], 2) for preset in ("conv1", "conv3", "conv5")}
        metrics["conv5_top5"] = round(ft["conv5"]["top5"], 2)
        metrics["linear_probe_top1"] = round(probes["linear"]["top1"], 2)
        metrics["knn_top1"] = round(probes["knn"]["top1"], 2)
        config = json.loads((runs / run / "model" / "config.json").read_text())
        full, folder = build_publish_folder(
            runs / run / "model", weights / name, name=name, repo_id=None,
            dataset="fashion_mnist",
            recipe=run,
            command=f"patchvae train {run} --out runs/{run}",
            epochs=config["epochs"],
            metrics=metrics,
            protocol=PROTOCOL,
            eval_command=(f"patchvae finetune {name} --preset conv1 conv3 conv5 --seed 0\n"
                          f"patchvae eval {name} --probe all --seed 0"),
            description=config.get("description") or f"{name}: trained on Fashion-MNIST with the {run} recipe",
        )
        saved = json.loads((folder / "config.json").read_text())
        print(f"{full}: sha256 {saved['sha256']}  metrics {metrics}")


if __name__ == "__main__":
    main()
