"""Does bf16 autocast (the CPU default for training and extraction) cost accuracy? Fashion-MNIST, same seed.

1. Pretrain ``fmnist_patchvae`` for ``--epochs`` in float32 and in bf16 autocast (everything else equal)
   and compare their training / test losses.
2. Fine-tune both φ with the Conv5 preset (fashion_mnist protocol, float32) and compare top-1.
3. Extract pooled φ features of one model in float32 and in bf16 and compare the linear / kNN probe
   accuracies (the extraction default is bf16 on CPUs with native bf16).

Prints a table and writes ``benchmarks/results/bf16_accuracy.json``.

    python benchmarks/bf16_accuracy.py [--epochs 5] [--finetune-epochs 12]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from patchvae import extract_features
from patchvae.evaluation import classification_splits, finetune, get_protocol, knn_probe, linear_probe
from patchvae.recipes import get_recipe
from patchvae.training import train

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5, help="pretraining epochs per precision")
    parser.add_argument("--finetune-epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0, help="pretraining seed (rerun with others to see seed noise)")
    args = parser.parse_args()
    splits = classification_splits("fashion_mnist")
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        models = {}
        for amp in ("none", "bf16"):
            recipe = get_recipe("fmnist_patchvae").with_overrides({"epochs": args.epochs, "amp": amp, "seed": args.seed})
            t0 = time.perf_counter()
            result = train(recipe, Path(tmp) / amp, save_images=False, progress=False, log_every=100)
            last = result.history[-1]
            protocol = get_protocol("fashion_mnist", epochs=args.finetune_epochs)
            ft = finetune(result.model.backbone, splits.train, splits.test, num_classes=10, freeze="conv5",
                          config=protocol, data_config=splits.data_config, progress=False)
            models[amp] = result.model
            rows[f"pretrain {'float32' if amp == 'none' else 'bf16'}"] = {
                "train_loss": last["train"]["loss"], "test_loss": last["eval"]["loss"],
                "pretrain_images_per_s": sum(h["images_per_s"] for h in result.history) / len(result.history),
                "conv5_top1": ft.top1, "seconds": time.perf_counter() - t0,
            }
        feats = {}
        for amp in (None, "bf16"):
            feats[amp] = [extract_features(models["bf16"], split, layer="pooled", amp=amp, progress=False,
                                           batch_size=256)["pooled"] for split in (splits.train, splits.test)]
        train_y, test_y = splits.train.labels, splits.test.labels
        for amp, (tr, te) in feats.items():
            lin = linear_probe(tr, train_y, te, test_y, num_classes=10)
            knn = knn_probe(tr, train_y, te, test_y, num_classes=10)
            rows[f"extraction {'float32' if amp is None else 'bf16'}"] = {"linear_top1": lin.top1, "knn_top1": knn.top1}
        cos = torch.nn.functional.cosine_similarity(feats[None][1], feats["bf16"][1]).min().item()
    print(f"\nFashion-MNIST, {args.epochs} pretraining epochs per precision, seed {args.seed}")
    for name, r in rows.items():
        print(f"{name:<22} " + "  ".join(f"{k}={v:.4g}" for k, v in r.items()))
    print(f"min cosine similarity of float32 vs bf16 pooled test features: {cos:.5f}")
    out = ROOT / "benchmarks" / "results" / ("bf16_accuracy.json" if args.seed == 0 else f"bf16_accuracy_seed{args.seed}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"epochs": args.epochs, "finetune_epochs": args.finetune_epochs, "seed": args.seed, "rows": rows,
                               "min_feature_cosine": cos}, indent=2))
    print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
