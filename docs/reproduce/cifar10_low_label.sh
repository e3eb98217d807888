#!/usr/bin/env bash
# Low-label linear probes on CIFAR-10 (JPEG copy): logistic regression on pooled φ features of N labelled
# training images per class (a seeded class-balanced subset; seeds 0, 1, 2 draw different subsets), scored on
# the 10,000 test images. One JSON per (model, N, seed) in $RESULTS/low_label/ (RESULTS defaults to docs/results).
#   bash docs/reproduce/cifar10_low_label.sh MODEL_OR_FOLDER [...]     (the name "random" = a random-init φ)
set -euo pipefail
DATA=${DATA:-../shared/data/cifar10-jpeg.zip}
RESULTS=${RESULTS:-docs/results}
mkdir -p "$RESULTS/low_label"
for SRC in "$@"; do
  TAG=$(basename "$SRC"); [ "$TAG" = model ] && TAG=$(basename "$(dirname "$SRC")")
  for N in 10 100; do
    for SEED in 0 1 2; do
      OUT=$RESULTS/low_label/${TAG}.n${N}.seed${SEED}.json
      [ -f "$OUT" ] || patchvae eval "$SRC" --dataset cifar10 --data-dir "$DATA" --threads 1 --no-progress \
        --probe linear --labels-per-class $N --seed $SEED --out "$OUT"
    done
  done
done
