#!/usr/bin/env bash
# The CIFAR-10 (JPEG copy) ablation sweeps (paper Tables 3-6 analogues): each recipe at its 15-epoch budget,
# one thread, seed 0, then the probes and part health on the test split and Conv5 (the paper's column; CONV5=0 skips it).
#   bash docs/reproduce/cifar10_sweeps.sh table3_num_parts_cifar10 table4_part_dim_cifar10 [more sweeps ...]
# RUNS (default runs/) holds the runs; the evaluation JSON goes to RESULTS/<recipe>.probes.json and
# RESULTS/<recipe>.finetune.json (default RESULTS=docs/results). Finished steps are skipped, so it resumes; a run shared by two sweeps (the
# defaults' row of Tables 3 and 4) is trained once.
# SEED=S (S > 0) pretrains with seed S instead (evaluation keeps seed 0, as the seed-0 rows) into RUNS/<recipe>.seedS
# and RESULTS/<recipe>.seedS.{probes,finetune}.json (the sweep seeds table); ONLY="<recipe> ..." limits the rows:
#   SEED=1 ONLY="cifar10_patchvae_bvis0.06 cifar10_patchvae_bvis0.06_n32" bash docs/reproduce/cifar10_sweeps.sh beta_vis_combined_cifar10
# Per run with one thread on 2 cores with AVX-512 bf16: ~15 min of training (N = 64: ~25 min), ~1.5 min of probes,
# 5-9 min of Conv5; on 2 cores without bf16 (float32), two runs side by side: 35-39 min of training, Conv5 8.5-9.5 min.
set -euo pipefail
RUNS=${RUNS:-runs}
DATA=${DATA:-../shared/data/cifar10-jpeg.zip}
RESULTS=${RESULTS:-docs/results}
CONV5=${CONV5:-1}
SEED=${SEED:-0}
ONLY=${ONLY:-}
TAG=""; [ "$SEED" = 0 ] || TAG=".seed$SEED"
for SWEEP in "$@"; do
  for RUN in $(python -c "from patchvae.recipes import get_sweep; print(' '.join(r.name for r in get_sweep('$SWEEP')))"); do
    [ -z "$ONLY" ] || [[ " $ONLY " == *" $RUN "* ]] || continue
    OUT="$RESULTS/$RUN$TAG"
    [ -d "$RUNS/$RUN$TAG/model" ] || patchvae train "$RUN" --data-dir "$DATA" --seed "$SEED" --threads 1 \
      --resume --out "$RUNS/$RUN$TAG" --no-images
    [ -f "$OUT.probes.json" ] || patchvae eval "$RUNS/$RUN$TAG/model" --data-dir "$DATA" --threads 1 --seed 0 \
      --no-progress --probe linear knn parts rate --out "$OUT.probes.json"
    [ "$CONV5" = 0 ] || [ -f "$OUT.finetune.json" ] || patchvae finetune "$RUNS/$RUN$TAG/model" --data-dir "$DATA" \
      --preset conv5 --seed 0 --threads 1 --no-progress --out "$OUT.finetune.json"
  done
done
