#!/usr/bin/env bash
# Seeds of the CIFAR-10 (JPEG copy) comparison that picks the default weights: pretraining seed 1 of
# cifar10_patchvae_tuned and cifar10_beta_vae (20 epochs, then the seed-0 probes and Conv5, as their seed-0
# rows), and random-init φ seeds 1 and 2 (the seed draws the init and the classifier). Writes
# docs/results/<stem>.seed<S>.{probes,finetune}.json; cifar10_tables.py prints the seeds table. Resumable.
#   RUNS=runs bash docs/reproduce/cifar10_seeds.sh
# Measured 2026-12-04 on 2 cores with AVX-512 bf16, one thread per process: ~17 min of pretraining per model
# (bf16 autocast, ~1,050 img/s), Conv5 ~9 min, probes ~3 min.
set -euo pipefail
RUNS=${RUNS:-runs}
DATA=${DATA:-../shared/data/cifar10-jpeg.zip}
OUT=docs/results
for RECIPE in cifar10_patchvae_tuned cifar10_beta_vae; do
  RUN=$RECIPE.seed1
  [ -f "$RUNS/$RUN/model/model.safetensors" ] || patchvae train "$RECIPE" --data-dir "$DATA" --epochs 20 --seed 1 \
    --threads 1 --no-images --resume --out "$RUNS/$RUN"
  case "$RECIPE" in *patchvae*) PROBES="linear knn parts rate intrinsic_dim" ;; *) PROBES="linear knn rate intrinsic_dim" ;; esac
  # shellcheck disable=SC2086
  [ -f "$OUT/$RUN.probes.json" ] || patchvae eval "$RUNS/$RUN/model" --data-dir "$DATA" --probe $PROBES --seed 0 \
    --threads 1 --no-progress --out "$OUT/$RUN.probes.json"
  [ -f "$OUT/$RUN.finetune.json" ] || patchvae finetune "$RUNS/$RUN/model" --data-dir "$DATA" --preset conv5 --seed 0 \
    --threads 1 --no-progress --out "$OUT/$RUN.finetune.json"
done
for SEED in 1 2; do
  [ -f "$OUT/cifar10_random.seed$SEED.probes.json" ] || patchvae eval random --dataset cifar10 --data-dir "$DATA" \
    --probe linear knn --seed $SEED --threads 1 --no-progress --out "$OUT/cifar10_random.seed$SEED.probes.json"
  [ -f "$OUT/cifar10_random.seed$SEED.finetune.json" ] || patchvae finetune random --dataset cifar10 --data-dir "$DATA" \
    --preset conv5 --seed $SEED --threads 1 --no-progress --out "$OUT/cifar10_random.seed$SEED.finetune.json"
done
