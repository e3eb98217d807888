#!/bin/bash
# Zhang et al. 2022 Table 6 analogue: M2 vs LPVAE-M2 vs the supervised-only classifier on the same labels.
# Fashion-MNIST (stands in for MNIST): 100 labels (seeds 0-2), 600, 1000, 3000 labels (seed 0);
# CIFAR-10 JPEG copy (stands in for SVHN): 1000 and 3000 labels (seed 0). CPU budget: the recipes' epochs
# (Fashion-MNIST 3, CIFAR-10 2) over a seeded 4,000 / 2,000-image unlabelled subset, one thread per run.
# Usage: RUNS=/work/runs bash docs/reproduce/zhang2022_m2.sh [fmnist|cifar10|all] [part]
# (part = 0 or 1 runs every other job, so two shells share the work on 2 cores).
set -euo pipefail
RUNS=${RUNS:-runs}
WHICH=${1:-all}
PART=${2:-}
CIFAR=${CIFAR:-../shared/data/cifar10-jpeg.zip}
jobs=()
if [ "$WHICH" != cifar10 ]; then
  for seed in 0 1 2; do for v in lpvae m2 supervised; do jobs+=("fmnist $v 10 $seed"); done; done
  for per in 60 100 300; do for v in lpvae m2 supervised; do jobs+=("fmnist $v $per 0"); done; done
fi
if [ "$WHICH" != fmnist ]; then
  for per in 100 300; do for v in lpvae m2 supervised; do jobs+=("cifar10 $v $per 0"); done; done
fi
i=0
for job in "${jobs[@]}"; do
  i=$((i + 1))
  if [ -n "$PART" ] && [ $((i % 2)) != "$PART" ]; then continue; fi
  read -r data v per seed <<<"$job"
  out="$RUNS/m2_${data}_${v}_${per}pc_s${seed}"
  [ -d "$out/model" ] && continue
  if [ "$data" = fmnist ]; then
    extra=(--train-subset 4000 --epochs 3)
  else
    extra=(--data-dir "$CIFAR" --train-subset 2000 --epochs 2)
  fi
  resume=(); [ -e "$out/checkpoint.safetensors" ] && resume=(--resume)
  patchvae train "zhang2022_m2_${data}_${v}" --threads 1 --seed "$seed" --out "$out" "${resume[@]}" \
    --set "objective_args.labels_per_class=$per" "${extra[@]}" >"$out.log" 2>&1
done
