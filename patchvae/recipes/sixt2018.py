"""Sixt (2018), Tables 2-4 (b): the six patch VAEs ``p|i`` and the global VAE baselines on CIFAR-10.

The thesis gives no optimisation settings for any VAE (spec ``sixt_zhang.md`` §1.5); ours (spec §1.2.5
[CHOICE], §6.1-6.2), written down here and in docs/models.md:

* Patch VAEs (``sixt2018_cifar10_p{p}_i{i}``): objective ``elbo`` (β = 1, no annealing, no free bits) on
  uniformly placed p×p patches (``objective_args.patch_size``): each step takes 64 shuffled training
  images and 4 random patches of each, a batch of 256 patches (spec: "batch 256 patches"); Adam lr 1e-3,
  default betas. An epoch is one pass over the 50,000 training images (200,000 patches).
* Global VAEs (``sixt2018_cifar10_vae_{32,256,4096}d``): the −ELBO of whole 32×32 images, batch 64,
  Adam lr 1e-4 (Higgins et al.'s). β-VAE (``sixt2018_cifar10_betavae_{32,256}d``): the same with β = 250
  (S eq. 27; the thesis trains its β-VAEs on CelebA only, spec §1.2.4).
* Data: CIFAR-10 (``--data-dir`` the JPEG copy), v/127.5 − 1, no augmentation (S §6 "No preprocessing").
* float32 (``amp="none"``): the DMOL's bins are 2/255 wide, finer than bf16 near ±1.
* CPU budgets (measured, one thread of a 2-core machine, per epoch): 3|1 ≈ 0.1 min, 9|i ≈ 0.8 min,
  15|i ≈ 3 min, global VAEs 0.3-0.6 min; :data:`CPU_EPOCHS`. The thesis states no epochs.
"""

from __future__ import annotations

from ._recipe import Recipe
from ._registry import register_recipe

#: the six (p, i) of S Tables 2-4 (the same list as ``patchvae.models.sixt2018.PATCH_CONFIGS``; a test checks it)
PATCH_CONFIGS: tuple[tuple[int, int], ...] = ((3, 1), (9, 1), (9, 3), (15, 1), (15, 3), (15, 5))
#: epochs of our CPU runs (the thesis gives none): the patch models see 200k patches per epoch
CPU_EPOCHS = {"patch": 5, "vae": 10}
PATCHES_PER_IMAGE = 4
_COMMON_NOTES = (
    "Sixt 2018 gives no architecture or training settings: architecture and optimisation are ours "
    "(spec sixt_zhang.md §1.2.5, §6.1-6.2), so every number is 'under our architecture'",
    "CIFAR-10, v/127.5 - 1, no augmentation (S §6: 'No preprocessing is done for the CIFAR-10 images')",
    "float32 (amp none)",
)


def patch_recipe(p: int, i: int) -> Recipe:
    """``sixt2018_cifar10_p{p}_i{i}``: the patch VAE p|i on random p×p CIFAR-10 patches."""
    return Recipe(
        name=f"sixt2018_cifar10_p{p}_i{i}",
        description=f"Sixt 2018 patch VAE {p}|{i} on random {p}x{p} CIFAR-10 patches, {CPU_EPOCHS['patch']} epochs "
                    f"(200k patches each)",
        family="vae",
        model=f"sixt2018_patch_p{p}_i{i}",
        dataset="cifar10",
        epochs=CPU_EPOCHS["patch"],
        objective="elbo",
        objective_args={"patch_size": p, "patches_per_image": PATCHES_PER_IMAGE},
        batch_size=256 // PATCHES_PER_IMAGE,
        lr=1e-3,
        betas=(0.9, 0.999),
        amp="none",
        paper_ref=f"Sixt 2018, Tables 2-4 (b), {p}|{i} (CIFAR-10)",
        notes=(*_COMMON_NOTES,
               f"{PATCHES_PER_IMAGE} uniformly placed {p}x{p} patches per image, 64 images per step: 256 patches per step",
               "objective: single-sample negative ELBO per patch (beta = 1), Adam lr 1e-3, default betas"),
    )


def global_recipe(dim: int, beta: float = 1.0) -> Recipe:
    """``sixt2018_cifar10_vae_{dim}d`` (β = 1) or ``sixt2018_cifar10_betavae_{dim}d`` (β = 250)."""
    kind = "vae" if beta == 1.0 else "betavae"
    label = "VAE" if beta == 1.0 else "β-VAE"
    suffix = "" if beta == 1.0 else f" (β = {beta:g})"
    return Recipe(
        name=f"sixt2018_cifar10_{kind}_{dim}d",
        description=f"Sixt 2018 global {label}_{dim}d{suffix} on CIFAR-10 32x32, {CPU_EPOCHS['vae']} epochs",
        family="vae",
        model=f"sixt2018_vae_{dim}d",
        dataset="cifar10",
        epochs=CPU_EPOCHS["vae"],
        objective="elbo",
        objective_args={} if beta == 1.0 else {"beta": beta},
        batch_size=64,
        lr=1e-4,
        betas=(0.9, 0.999),
        amp="none",
        paper_ref=f"Sixt 2018, Tables 2 and 4 (b), {label}_{dim}d{suffix} (CIFAR-10)",
        notes=(*_COMMON_NOTES, "Gaussian likelihood with learned per-sub-pixel variance; Adam lr 1e-4 (Higgins et al.)"),
    )


def _register() -> None:
    for p, i in PATCH_CONFIGS:
        register_recipe(patch_recipe(p, i))
    for dim in (32, 256, 4096):
        register_recipe(global_recipe(dim))
    for dim in (32, 256):
        register_recipe(global_recipe(dim, beta=250.0))


_register()
