#!/bin/bash
# Zhang et al. 2022 Table 3 analogue on CIFAR-10 (JPEG copy): train the four CPU-size PixelVAEs
# (3 epochs each, bf16 autocast, seed 0, one thread) and evaluate BPD, MI (rate), intrinsic dimension, the
# paper's probes on the 10,000 test images.
set -euo pipefail
RUNS=${RUNS:-runs}
DATA=${DATA:-../shared/data/cifar10-jpeg.zip}
for v in vae lpvae_h1 lpvae_h2 fpvae; do
  [ -d "$RUNS/zc10_$v/model" ] || patchvae train zhang2022_cifar10_$v --data-dir "$DATA" --threads 1 --seed 0 \
    --out "$RUNS/zc10_$v" --no-images
  patchvae eval "$RUNS/zc10_$v/model" --dataset cifar10 --data-dir "$DATA" --threads 1 --seed 0 --no-progress \
    --probe bpd rate conditional_entropy intrinsic_dim linear_svm_fast nonlinear \
    --out "docs/results/zhang2022_cifar10_$v.json"
done
