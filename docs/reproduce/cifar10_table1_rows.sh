#!/usr/bin/env bash
# Rows of the CIFAR-10 (JPEG copy) Table 1 analogue: pretrain each recipe at one budget (EPOCHS, default 20,
# the 20-epoch table; the shipped weights: 30), then evaluate it as every other row: probes and part health, Conv5
# fine-tuning (the `cifar10` protocol) and the low-label probes (seeds 0-2).
#   EPOCHS=20 RUNS=runs bash docs/reproduce/cifar10_table1_rows.sh cifar10_patchvae_gan cifar10_beta_vae_gan cifar10_bigan supervised
# "supervised" is the supervised-from-scratch row (random φ, nothing frozen, the same protocol).
# SEED=S (default 0) pretrains with seed S into runs/<recipe>.seed<S> and docs/results/<recipe>.seed<S>.* (evaluated
# with seed 0 like the seed-0 rows); LOW_LABEL=0 skips the low-label probes. RESULTS=DIR (default docs/results)
# takes the JSON reports (the 30-epoch table: RESULTS=docs/results/cifar10_e30 EPOCHS=30). PRESETS="conv5 conv3 conv1"
# (default conv5) picks the fine-tuning columns: <run>.finetune.json for Conv5, <run>.finetune_<preset>.json for the others.
# Finished steps are skipped, so the script resumes; one thread per process (run two rows side by side on 2 cores).
# Measured on 2 shared AMD EPYC cores, one thread each: -GAN and BiGAN pretraining ~215 s per epoch
# (~72 min for 20), Conv5 ~12 min, probes ~3 min.
# Measured 2026-12-06 on 2 cores of a Xeon with AMX, four -GAN rows side by side (EPOCHS=30): ~210 s per epoch
# (~1 h 45 min per run), then probes ~2 min, Conv5 12-15 min with three beside it.
set -euo pipefail
EPOCHS=${EPOCHS:-20}
RUNS=${RUNS:-runs}
DATA=${DATA:-../shared/data/cifar10-jpeg.zip}
SEED=${SEED:-0}
LOW_LABEL=${LOW_LABEL:-1}
PRESETS=${PRESETS:-conv5}
OUT=${RESULTS:-docs/results}
mkdir -p "$OUT"
for RECIPE in "$@"; do
  RUN=$RECIPE; [ "$SEED" = 0 ] || RUN=$RECIPE.seed$SEED
  if [ "$RECIPE" = supervised ]; then
    [ -f "$OUT/cifar10_supervised.finetune.json" ] || patchvae finetune supervised --dataset cifar10 --data-dir "$DATA" \
      --seed 0 --threads 1 --no-progress --out "$OUT/cifar10_supervised.finetune.json"
    continue
  fi
  [ -f "$RUNS/$RUN/model/model.safetensors" ] || patchvae train "$RECIPE" --data-dir "$DATA" --epochs "$EPOCHS" \
    --seed "$SEED" --threads 1 --no-images --resume --out "$RUNS/$RUN"
  case "$RUN" in
    *patchvae*) PROBES="linear knn parts rate intrinsic_dim" ;;
    *bigan*) PROBES="linear knn intrinsic_dim" ;;
    *) PROBES="linear knn rate intrinsic_dim" ;;
  esac
  # shellcheck disable=SC2086
  [ -f "$OUT/$RUN.probes.json" ] || patchvae eval "$RUNS/$RUN/model" --data-dir "$DATA" --probe $PROBES --seed 0 \
    --threads 1 --no-progress --out "$OUT/$RUN.probes.json"
  for PRESET in $PRESETS; do
    FT=$OUT/$RUN.finetune.json; [ "$PRESET" = conv5 ] || FT=$OUT/$RUN.finetune_$PRESET.json
    [ -f "$FT" ] || patchvae finetune "$RUNS/$RUN/model" --data-dir "$DATA" --preset "$PRESET" --seed 0 \
      --threads 1 --no-progress --out "$FT"
  done
  [ "$LOW_LABEL" = 0 ] || RESULTS=$OUT bash docs/reproduce/cifar10_low_label.sh "$RUNS/$RUN/model"
done
