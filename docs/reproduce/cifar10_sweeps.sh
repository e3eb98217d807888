#!/usr/bin/env bash
# The CIFAR-10 (JPEG copy) ablation sweeps (paper Tables 3-6 analogues): each recipe at its 15-epoch budget,
# one thread, seed 0, then the probes and part health on the test split and Conv5 (the paper's column; CONV5=0 skips it).
#   bash docs/reproduce/cifar10_sweeps.sh table3_num_parts_cifar10 table4_part_dim_cifar10 [more sweeps ...]
# RUNS (default runs/) holds the runs; the evaluation JSON goes to docs/results/<recipe>.probes.json and
# docs/results/<recipe>.finetune.json. Finished steps are skipped, so it resumes; a run shared by two sweeps (the
# defaults' row of Tables 3 and 4) is trained once. Per run with one thread on 2 cores with AVX-512 bf16: ~15 min of
# training (N = 64: ~25 min), ~1.5 min of probes, 5-9 min of Conv5.
set -euo pipefail
RUNS=${RUNS:-runs}
DATA=${DATA:-../shared/data/cifar10-jpeg.zip}
CONV5=${CONV5:-1}
for SWEEP in "$@"; do
  for RUN in $(python -c "from patchvae.recipes import get_sweep; print(' '.join(r.name for r in get_sweep('$SWEEP')))"); do
    [ -d "$RUNS/$RUN/model" ] || patchvae train "$RUN" --data-dir "$DATA" --threads 1 --out "$RUNS/$RUN" --no-images
    [ -f "docs/results/$RUN.probes.json" ] || patchvae eval "$RUNS/$RUN/model" --data-dir "$DATA" --threads 1 --seed 0 \
      --no-progress --probe linear knn parts rate --out "docs/results/$RUN.probes.json"
    [ "$CONV5" = 0 ] || [ -f "docs/results/$RUN.finetune.json" ] || patchvae finetune "$RUNS/$RUN/model" --data-dir "$DATA" \
      --preset conv5 --seed 0 --threads 1 --no-progress --out "docs/results/$RUN.finetune.json"
  done
done
