"""How many PatchVAE parts have image-dependent visibility? (docs/results.md, "Reading the table")

    python docs/reproduce/visibility_stats.py [NAME_OR_FOLDER ...] [--images 1000]

For each model, over the first ``--images`` Fashion-MNIST test images: per part, the mean and the standard
deviation (over images and locations) of Q^V(z_vis = 1 | x). A part whose visibility sits at the prior
1/N with ~0 spread has collapsed onto the prior and carries no information about the image.
"""

from __future__ import annotations

import argparse

import torch

import patchvae.models as zoo
from patchvae.data import BatchPreprocess, load_fashion_mnist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", default=["patchvae_resnet9.fmnist", "patchvae_resnet9.fmnist_lw"])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--active-std", type=float, default=0.02, help="a part is active when its spread exceeds this")
    args = parser.parse_args()
    images = load_fashion_mnist(train=False).images[: args.images]
    for name in args.models:
        model = (zoo.create(name, pretrained=True) if zoo.is_model(name) and "/" not in name
                 else zoo.create("patchvae_resnet9", checkpoint_path=name)).eval()
        with torch.no_grad():
            probs = model(BatchPreprocess(model.data_config)(images)).visibility_probs
        mean, std = probs.mean((0, 2, 3)), probs.std((0, 2, 3))
        active = [i for i, s in enumerate(std.tolist()) if s > args.active_std]
        print(f"{name}: prior 1/N = {1 / model.num_parts:.4f}; mean P(visible) per part "
              f"{mean.min():.3f}-{mean.max():.3f}; spread (std) per part {[round(s, 3) for s in std.tolist()]}")
        print(f"  active parts (std > {args.active_std}): {len(active)} of {model.num_parts} {active}")


if __name__ == "__main__":
    main()
