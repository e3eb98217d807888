#!/usr/bin/env bash
# The CIFAR-10 (JPEG copy) ablation sweeps (paper Tables 3-6 analogues): each recipe at its 15-epoch budget,
# one thread, seed 0, then the probes and part health on the test split.
#   bash docs/reproduce/cifar10_sweeps.sh table6_beta_vis_cifar10 [more sweeps ...]
# RUNS (default runs/) holds the runs; the evaluation JSON goes to docs/results/<recipe>.probes.json.
set -euo pipefail
RUNS=${RUNS:-runs}
DATA=${DATA:-../shared/data/cifar10-jpeg.zip}
for SWEEP in "$@"; do
  for RUN in $(python -c "from patchvae.recipes import get_sweep; print(' '.join(r.name for r in get_sweep('$SWEEP')))"); do
    [ -d "$RUNS/$RUN/model" ] || patchvae train "$RUN" --data-dir "$DATA" --threads 1 --out "$RUNS/$RUN" --no-images
    [ -f "docs/results/$RUN.probes.json" ] || patchvae eval "$RUNS/$RUN/model" --data-dir "$DATA" --threads 1 --seed 0 \
      --no-progress --probe linear knn parts rate --out "docs/results/$RUN.probes.json"
  done
done
