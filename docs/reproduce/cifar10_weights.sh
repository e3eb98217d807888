#!/usr/bin/env bash
# The CIFAR-10 (JPEG copy) weights and their card numbers: pretraining, then Conv5 fine-tuning and probes.
#   bash docs/reproduce/cifar10_weights.sh [EPOCHS]
# Budget of the shipped weights: 20 epochs each (the paper: 90), run concurrently with one thread each on
# 2 CPU cores shared with other work (~2-5 min per epoch); the evaluation below takes ~10 min per model.
set -euo pipefail
EPOCHS=${1:-20}
DATA=../shared/data/cifar10-jpeg.zip
OUT=docs/results
for RUN in cifar10_patchvae cifar10_beta_vae; do
  patchvae train "$RUN" --data-dir "$DATA" --epochs "$EPOCHS" --out "runs/$RUN"
done
for RUN in cifar10_patchvae cifar10_beta_vae; do
  PROBES="linear knn rate intrinsic_dim"; [ "$RUN" = cifar10_patchvae ] && PROBES="linear knn parts rate intrinsic_dim"
  patchvae eval "runs/$RUN/model" --data-dir "$DATA" --probe $PROBES --seed 0 --out "$OUT/$RUN.probes.json"
  patchvae finetune "runs/$RUN/model" --data-dir "$DATA" --preset conv5 --seed 0 --out "$OUT/$RUN.finetune.json"
done
patchvae eval random --dataset cifar10 --data-dir "$DATA" --probe linear knn --seed 0 --out "$OUT/cifar10_random.probes.json"
patchvae finetune random --dataset cifar10 --data-dir "$DATA" --preset conv5 --seed 0 --out "$OUT/cifar10_random.finetune.json"
python docs/reproduce/package_cifar10_weights.py runs "$OUT" weights
