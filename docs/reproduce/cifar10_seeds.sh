#!/usr/bin/env bash
# Seeds of the CIFAR-10 (JPEG copy) comparison that picks the default weights: pretraining seed 1 of
# cifar10_patchvae_tuned and cifar10_beta_vae (20 epochs, then the seed-0 probes and Conv5, as their seed-0
# rows), and random-init φ seeds 1 and 2 (the seed draws the init and the classifier). Writes
# docs/results/<stem>.seed<S>.{probes,finetune}.json; cifar10_tables.py prints the seeds table. Resumable.
#   RUNS=runs bash docs/reproduce/cifar10_seeds.sh
# Measured 2026-12-04 on 2 cores with AVX-512 bf16, one thread per process: ~17 min of pretraining per model
# (bf16 autocast, ~1,050 img/s), Conv5 ~5 min, probes ~3 min.
set -euo pipefail
RUNS=${RUNS:-runs}
DATA=${DATA:-../shared/data/cifar10-jpeg.zip}
OUT=docs/results
SEED=1 LOW_LABEL=0 EPOCHS=20 RUNS="$RUNS" DATA="$DATA" bash docs/reproduce/cifar10_table1_rows.sh cifar10_patchvae_tuned cifar10_beta_vae
for SEED in 1 2; do
  [ -f "$OUT/cifar10_random.seed$SEED.probes.json" ] || patchvae eval random --dataset cifar10 --data-dir "$DATA" \
    --probe linear knn --seed $SEED --threads 1 --no-progress --out "$OUT/cifar10_random.seed$SEED.probes.json"
  [ -f "$OUT/cifar10_random.seed$SEED.finetune.json" ] || patchvae finetune random --dataset cifar10 --data-dir "$DATA" \
    --preset conv5 --seed $SEED --threads 1 --no-progress --out "$OUT/cifar10_random.seed$SEED.finetune.json"
done
