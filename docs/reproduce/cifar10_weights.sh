#!/usr/bin/env bash
# The shipped CIFAR-10 (JPEG copy) weights and their card numbers: pretraining at one budget (EPOCHS, default 30,
# the budget of the shipped weights; the paper: 90), then probes and part health, Conv5 fine-tuning, the
# low-label probes and the linear probes with seeds 1-2 (cifar10_table1_rows.sh into docs/results/cifar10_e<EPOCHS>/),
# plus Conv3 and Conv1 (PRESETS, default "conv5 conv3 conv1"), then the packaged folders weights/<name>/ (package_cifar10_weights.py; an existing folder is kept).
# EPOCHS=90 (the paper's budget) packages weights/<name>_e90/, stored in float16 (weights/README.md).
#   RUNS=runs bash docs/reproduce/cifar10_weights.sh [EPOCHS]
# Measured 2026-12-06 on 2 shared cores with AVX-512 bf16, two runs side by side with one thread each (bf16
# autocast): ~85 s per epoch (~43 min per 30-epoch run), probes ~1.5 min, Conv5 ~8 min, Conv3 ~13 min per model.
set -euo pipefail
EPOCHS=${1:-30}
RUNS=${RUNS:-runs}
RESULTS=${RESULTS:-docs/results/cifar10_e$EPOCHS}
ROWS=(cifar10_patchvae_tuned cifar10_beta_vae cifar10_patchvae cifar10_beta_vae_lw cifar10_patchvae_lw)
PRESETS=${PRESETS:-conv5 conv3 conv1}
RESULTS=$RESULTS EPOCHS=$EPOCHS RUNS=$RUNS PRESETS=$PRESETS bash docs/reproduce/cifar10_table1_rows.sh "${ROWS[@]}"
PAIRS=(); for ROW in "${ROWS[@]}"; do PAIRS+=("$ROW=$RUNS/$ROW/model"); done
RESULTS=$RESULTS bash docs/reproduce/cifar10_probe_seeds.sh "${PAIRS[@]}"
python docs/reproduce/package_cifar10_weights.py "$RUNS" "$RESULTS" weights
