#!/bin/bash
# Low-label linear probes on the shipped PatchVAE / beta-VAE weights, trained on exactly the labelled images of the
# M2 runs (same --labels-per-class and --seed: patchvae.data.balanced_label_indices), for the Table 6 analogue.
set -euo pipefail
RUNS=${RUNS:-runs}
CIFAR=${CIFAR:-../shared/data/cifar10-jpeg.zip}
probe() {  # weights dataset per_class seed [data-dir]
  local out="$RUNS/m2probe_${1}_${3}pc_s${4}.json"
  [ -e "$out" ] && return 0
  patchvae eval "$1" --dataset "$2" ${5:+--data-dir "$5"} --probe linear --labels-per-class "$3" --seed "$4" \
    --threads 1 --no-progress -q --out "$out"
}
for w in patchvae_resnet9.fmnist beta_vae_resnet9_32.fmnist; do
  for seed in 0 1 2; do probe "$w" fashion_mnist 10 "$seed"; done
  for per in 60 100 300; do probe "$w" fashion_mnist "$per" 0; done
done
for w in patchvae_resnet9.cifar10 beta_vae_resnet9_32.cifar10; do
  for per in 100 300; do probe "$w" cifar10 "$per" 0 "$CIFAR"; done
done
