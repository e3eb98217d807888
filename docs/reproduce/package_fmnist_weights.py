"""Write the packaged Fashion-MNIST weights (weights/<arch>.<tag>/) from the runs and evaluations of fmnist_table1.sh.

    python docs/reproduce/package_fmnist_weights.py RUNS_DIR [RESULTS_DIR] [WEIGHTS_DIR]

Each folder gets the run's exact ``model.safetensors`` and a ``config.json`` + model card with the
training command, the evaluation protocol, the metrics and the commands that reproduce them. PatchVAE
cards also get part health on the 10,000 test images (``active_parts``, ``part_usage_entropy``,
``part_usage_entropy_fraction``, ``mean_visibility``, ``num_parts``: what ``patchvae eval NAME --probe
all`` prints). Prints
the registry entries (sha256) to put in the model files' ``default_cfgs``. To also put them on the
Hugging Face Hub: ``patchvae publish ARCH.TAG --repo-id ORG/REPO``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from patchvae.data import load_fashion_mnist
from patchvae.evaluation import part_health_card_metrics
from patchvae.models import get_pretrained_cfg, list_pretrained
from patchvae.models._pretrained import fmnist_provenance
from patchvae.models._publish import build_publish_folder

MODELS = {  # run name -> registry name
    "fmnist_patchvae": "patchvae_resnet9.fmnist",
    "fmnist_patchvae_lw": "patchvae_resnet9.fmnist_lw",
    "fmnist_beta_vae": "beta_vae_resnet9_32.fmnist",
}


def main() -> None:
    runs = Path(sys.argv[1])
    results = Path(sys.argv[2] if len(sys.argv) > 2 else "docs/results")
    weights = Path(sys.argv[3] if len(sys.argv) > 3 else "weights")
    test_images = load_fashion_mnist(train=False).images
    for run, name in MODELS.items():
        ft = {r["freeze"]: r for r in json.loads((results / f"{run}.finetune.json").read_text())["results"]}
        probes = {r["probe"]: r for r in json.loads((results / f"{run}.probes.json").read_text())["results"]}
        metrics = {f"{preset}_top1": round(ft[preset]["top1"], 2) for preset in ("conv1", "conv3", "conv5")}
        metrics["conv5_top5"] = round(ft["conv5"]["top5"], 2)
        metrics["linear_probe_top1"] = round(probes["linear"]["top1"], 2)
        metrics["knn_top1"] = round(probes["knn"]["top1"], 2)
        config = json.loads((runs / run / "model" / "config.json").read_text())
        provenance = fmnist_provenance(name, run, epochs=config["epochs"])
        parts, note = part_health_card_metrics(  # {} for models without parts (β-VAE)
            runs / run / "model", test_images, images="the 10,000 Fashion-MNIST test images"
        )
        metrics.update(parts)
        if note:
            provenance["protocol"] = f"{provenance['protocol']} {note}"
        full, folder = build_publish_folder(
            runs / run / "model", weights / name, name=name, repo_id=None,
            metrics=metrics,
            description=get_pretrained_cfg(name).description if name in list_pretrained() else None,
            **provenance,
        )
        saved = json.loads((folder / "config.json").read_text())
        print(f"{full}: sha256 {saved['sha256']}  metrics {metrics}")


if __name__ == "__main__":
    main()
