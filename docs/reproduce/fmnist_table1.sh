#!/usr/bin/env bash
# Reproduces docs/results.md: pretrain three models on Fashion-MNIST, then evaluate them, a random-init
# φ and a supervised-from-scratch network with the same harness (patchvae.evaluation).
#   bash docs/reproduce/fmnist_table1.sh [RUNS_DIR] [RESULTS_DIR]
# About 2.5 hours on 2 CPU cores (pretraining ~40 min, evaluation ~100 min).
set -euo pipefail
RUNS=${1:-runs}
OUT=${2:-docs/results}
mkdir -p "$RUNS" "$OUT"

# 1. Unsupervised pretraining (20 epochs each, recipe defaults: Adam 1e-4, batch 128, bf16 autocast on CPUs with bf16).
for recipe in fmnist_patchvae fmnist_patchvae_lw fmnist_beta_vae; do
  [ -f "$RUNS/$recipe/model/model.safetensors" ] || patchvae train "$recipe" --out "$RUNS/$recipe" --resume
done

# 2. Fine-tuning (paper Table 1 columns; fashion_mnist protocol: SGD 0.9, lr 1e-2 /10 every 4 epochs, 12 epochs, seed 0)
#    and linear / kNN probes on pooled φ features.
for name in fmnist_patchvae fmnist_patchvae_lw fmnist_beta_vae; do
  patchvae finetune "$RUNS/$name/model" --preset conv1 conv3 conv5 --seed 0 --no-progress --out "$OUT/$name.finetune.json"
  patchvae eval "$RUNS/$name/model" --probe all --seed 0 --no-progress --out "$OUT/$name.probes.json"
done
patchvae finetune random --preset conv1 conv3 conv5 --seed 0 --no-progress --out "$OUT/random.finetune.json"
patchvae eval random --probe all --seed 0 --no-progress --out "$OUT/random.probes.json"
patchvae finetune supervised --preset none --seed 0 --no-progress --out "$OUT/supervised.finetune.json"
