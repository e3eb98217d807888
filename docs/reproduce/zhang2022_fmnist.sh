#!/bin/bash
# Zhang et al. 2022 Table 2 analogue on Fashion-MNIST (stands in for MNIST): train the four CPU-size PixelVAEs
# (4 epochs each, seed 0, one thread) and evaluate BPD, MI (rate), intrinsic dimension and the probes.
set -euo pipefail
RUNS=${RUNS:-runs}
for v in vae lpvae_h1 lpvae_h2 fpvae; do
  [ -d "$RUNS/zfm_$v/model" ] || patchvae train zhang2022_fmnist_$v --threads 1 --seed 0 --out "$RUNS/zfm_$v" --no-images
  patchvae eval "$RUNS/zfm_$v/model" --dataset fashion_mnist --threads 1 --seed 0 --no-progress \
    --probe bpd rate conditional_entropy intrinsic_dim linear_svm_fast nonlinear --out "docs/results/zhang2022_fmnist_$v.json"
done
