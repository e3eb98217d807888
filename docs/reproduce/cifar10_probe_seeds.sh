#!/usr/bin/env bash
# Linear probes of the CIFAR-10 (JPEG copy) Table 1 rows with seeds 1 and 2 (seed 0 is the row's
# $RESULTS/<stem>.probes.json, RESULTS defaulting to docs/results): the seed draws the held-out 10 % that picks the L2 weight (and, for the
# random φ, its init). cifar10_tables.py reports mean ± std over seeds 0-2. kNN has no seed.
#   bash docs/reproduce/cifar10_probe_seeds.sh STEM=MODEL_OR_FOLDER [...]
#   e.g. cifar10_patchvae_tuned=patchvae_resnet9.cifar10_tuned cifar10_random=random
# ~1.3 min per run (one thread: pooled features of 60,000 images, then L-BFGS).
set -euo pipefail
DATA=${DATA:-../shared/data/cifar10-jpeg.zip}
RESULTS=${RESULTS:-docs/results}
mkdir -p "$RESULTS/probe_seeds"
for PAIR in "$@"; do
  STEM=${PAIR%%=*}; SRC=${PAIR#*=}
  EXTRA=(); [ "$SRC" = random ] && EXTRA=(--dataset cifar10)
  for SEED in 1 2; do
    OUT=$RESULTS/probe_seeds/${STEM}.seed${SEED}.json
    [ -f "$OUT" ] || patchvae eval "$SRC" "${EXTRA[@]}" --data-dir "$DATA" --probe linear --seed $SEED --threads 1 \
      --no-progress --out "$OUT"
  done
done
