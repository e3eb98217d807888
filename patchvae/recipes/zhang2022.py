"""Zhang, Xiao, Paige & Barber (2022), Tables 2 and 3: VAE (h=0), LPVAE h=1, LPVAE h=2 and FPVAE; Table 6: M2.

Objective ``"elbo"``: the negative ELBO with one reparameterised posterior sample, mean nats per image
(β = 1, no KL annealing, no free bits; spec §2.7); the logs add bits/dim. Optimiser (spec §2.7): Adam,
lr 3e-4, PyTorch's default betas (0.9, 0.999), no weight decay, no schedule, batch 100.

Two recipes per model:

* ``zhang2022_<dataset>_<variant>``: the CPU-size model (``pixelvae_*_small``) at a short budget, what we
  train on a 2-core CPU: 4 epochs on Fashion-MNIST, 3 on CIFAR-10. Measured on one loaded core at batch 100: ≈0.65 s (LPVAE) / ≈2 s
  (FPVAE) per step on Fashion-MNIST (600 steps per epoch: ≈25 min / ≈80 min in all), ≈1.2 s / ≈2.4 s on
  CIFAR-10 (500 steps per epoch) in float32, ≈0.6 s / ≈1.3 s under bf16 autocast with AMX: 3 epochs
  (≈15 min / ≈35 min per model). The paper trains 100 (MNIST) and 1000 (CIFAR-10)
  epochs: our budgets are 4 % and 0.3 % of them.
* ``zhang2022_<dataset>_<variant>_paper``: the paper's setting at the reference size (``pixelvae_mlp_*``,
  ``pixelvae_resnet_*``): for a GPU (about 25 h per CIFAR-10 epoch on this CPU, spec §4.2).

Table 2 is MNIST in the paper. patchvae has no ``mnist`` dataset (MNIST is not available here), so
Fashion-MNIST, of the same size and format (28×28 grey, 60k/10k), stands in; no MNIST recipe is registered.

Choices (spec §6 where it decides; ours otherwise, also in docs/models.md):

* Inputs are the model's own preprocessing: v/127.5 - 1 on the 8-bit grid, 28×28 for the MNIST networks
  (Fashion-MNIST is not padded to 32 as in the PatchVAE recipes), 32×32 for CIFAR-10.
* CIFAR-10 augmentation (spec §2.8): random horizontal flips (the models' data config) and random 32×32
  crops of the image zero-padded ("black") by 4 pixels (``objective_args.random_crop_padding``); none for
  (Fashion-)MNIST. Evaluation images are not augmented.
* Precision: the CPU-size CIFAR-10 recipes train under ``amp="auto"`` (bf16 autocast on CPUs with native
  bf16 and on GPUs, float32 elsewhere); every other recipe here is float32 (``amp="none"``). The PixelCNN
  head computes the DMOL parameters (its last 1×1 conv) in float32 even under autocast, because bf16
  means near ±1 are spaced 2^-7 apart, one 8-bit bin; the DMOL itself runs in float32. Only the
  convolutions before it run in bf16: 1.5× faster per LPVAE step than float32 on a CPU with AMX
  (``benchmarks/lpvae_step.py``). Fashion-MNIST's MLP networks stay float32, as do the ``_paper``
  recipes (the paper's precision).
* The per-epoch eval loss is the test split's single-sample −ELBO with the BN running statistics, i.e. the
  paper's test BPD (spec §2.9), logged as ``bpd``.
"""

from __future__ import annotations

from ._recipe import Recipe
from ._registry import register_recipe

#: variant -> (model suffix, label)
VARIANTS: dict[str, tuple[str, str]] = {
    "vae": ("h0", "VAE (h=0)"),
    "lpvae_h1": ("h1", "LPVAE (h=1)"),
    "lpvae_h2": ("h2", "LPVAE (h=2)"),
    "fpvae": ("full", "FPVAE"),
}
CPU_EPOCHS = {"fashion_mnist": 4, "cifar10": 3}
PAPER_EPOCHS = {"fashion_mnist": 100, "cifar10": 1000}
_TABLES = {
    "fashion_mnist": ("fmnist", "mlp", 28, "Table 2 (MNIST; Fashion-MNIST stands in)", {}),
    "cifar10": ("cifar10", "resnet", 32, "Table 3 (CIFAR-10)", {"random_crop_padding": 4}),
}


def zhang2022_recipe(dataset: str, variant: str, *, paper: bool = False) -> Recipe:
    """The recipe of ``variant`` (a key of :data:`VARIANTS`) on ``dataset`` ("fashion_mnist" or "cifar10")."""
    short, arch, size, table, objective_args = _TABLES[dataset]
    suffix, label = VARIANTS[variant]
    model = f"pixelvae_{arch}_{suffix}" + ("" if paper else "_small")
    epochs = PAPER_EPOCHS[dataset] if paper else CPU_EPOCHS[dataset]
    scale = "paper/reference size" if paper else "CPU size"
    budget = (f"the paper's {epochs} epochs" if paper else
              f"{epochs} epochs (the paper: {PAPER_EPOCHS[dataset]}; about 1 h per model on a 2-core CPU)")
    notes = [
        "objective: single-sample negative ELBO, mean nats per image (beta = 1, no annealing, no free bits)",
        "Adam lr 3e-4, default betas (0.9, 0.999), batch 100 (Zhang et al. 2022 §5 and the reference code)",
    ]
    amp = "auto" if dataset == "cifar10" and not paper else "none"
    notes.append("amp auto (bf16 autocast where the CPU/GPU has native bf16); the DMOL parameters and "
                 "likelihood in float32" if amp == "auto" else
                 "float32 (amp none)")
    if dataset == "fashion_mnist":
        notes.append("Fashion-MNIST stands in for MNIST (not available here), at 28x28 (D = 784), no augmentation")
    else:
        notes.append("augmentation: random flips + random 32x32 crops of the image padded by 4 black pixels (paper §5.3)")
    if not paper:
        notes.append(f"CPU budget: {epochs} epochs vs the paper's {PAPER_EPOCHS[dataset]}; see patchvae.recipes.zhang2022")
    return Recipe(
        name=f"zhang2022_{short}_{variant}" + ("_paper" if paper else ""),
        description=f"{label} of Zhang et al. 2022 on {dataset}, {scale}, {budget}",
        family="vae",
        model=model,
        dataset=dataset,
        split="train",
        image_size=size,
        epochs=epochs,
        objective="elbo",
        objective_args=dict(objective_args),
        batch_size=100,
        lr=3e-4,
        betas=(0.9, 0.999),
        weight_decay=0.0,
        amp=amp,
        paper_ref=f"Zhang et al. 2022, {table}, {label}" + ("" if paper else f" (CPU size, {epochs} epochs)"),
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------- Table 6: semi-supervised M2 (§6)
#: dataset -> (short name, networks, LPVAE horizon, epochs, batch, default labels per class, paper size?, table note)
M2_SETTINGS: dict[str, tuple[str, str, int, int, int, int, bool, str]] = {
    "mnist": ("mnist", "mlp", 1, 50, 16, 10, True, "MNIST 100 labels"),
    "svhn": ("svhn", "conv", 2, 20, 32, 100, True, "SVHN 1000 labels"),
    "fashion_mnist": ("fmnist", "mlp", 1, 3, 100, 10, False, "MNIST protocol on Fashion-MNIST"),
    "cifar10": ("cifar10", "conv", 2, 2, 32, 100, False, "SVHN protocol on CIFAR-10"),
}
#: decoder -> label
M2_DECODERS = {"m2": "M2 (plain h=0 DMOL decoder)", "lpvae": "LPVAE-M2", "supervised": "q(y|x) on the labels only"}


def zhang2022_m2_recipe(dataset: str, decoder: str) -> Recipe:
    """The Table 6 recipe of ``decoder`` ("m2", "lpvae" or "supervised") on ``dataset`` (a key of :data:`M2_SETTINGS`).

    MNIST / SVHN: the paper's setting at the reference size (spec §2.11: 50 epochs batch 16 / 20 epochs batch 32,
    lr 1e-3 from [REF]), for users who have the data. Fashion-MNIST / CIFAR-10: the CPU-size networks at a short
    budget, what we run here (pass ``--train-subset`` to shrink the unlabelled set, as docs/results.md states).
    The label count is ``objective_args.labels_per_class`` (default 10 / 100 per class: Table 6's 100 and 1000).
    """
    short, arch, horizon, epochs, batch, per_class, paper, table = M2_SETTINGS[dataset]
    suffix = "m2" if decoder in ("m2", "supervised") else f"lpvae_h{horizon}"
    model = f"m2_{arch}_{suffix}" + ("" if paper else "_small")
    objective_args: dict[str, object] = {"labels_per_class": per_class}
    if decoder == "supervised":
        objective_args["supervised_only"] = True
    notes = [
        "objective: Zhang et al. 2022 eq. 11, labelled + unlabelled (all 10 labels enumerated) bounds + alpha * CE",
        "alpha = r(N+M)/N with r = 0.1 (the reference code; objective_args.alpha_formula=paper for r(N+M)/M)",
        "unlabelled set = every training image (labelled ones included); labelled batches cycled; 1 epoch = 1 "
        "pass over the unlabelled set",
        "Adam lr 1e-3 (reference code), default betas; float32 (DMOL)",
    ]
    if decoder == "supervised":
        notes = ["the supervised baseline: the same q(y|x) network trained by cross entropy on the labelled images only, "
                 "as many steps as the M2 runs"]
    if not paper:
        notes.append(f"CPU budget: {epochs} epochs of the CPU-size networks (the paper: "
                     f"{M2_SETTINGS['mnist' if arch == 'mlp' else 'svhn'][3]} epochs at the reference size)")
    if dataset == "fashion_mnist":
        notes.append("Fashion-MNIST stands in for MNIST (not available here)")
    if dataset == "cifar10":
        notes.append("CIFAR-10 (JPEG copy) stands in for SVHN (not available here)")
    return Recipe(
        name=f"zhang2022_m2_{short}_{decoder}",
        description=f"{M2_DECODERS[decoder]} of Zhang et al. 2022 §6 on {dataset}, "
                    + ("paper/reference size" if paper else "CPU size") + f", {epochs} epochs",
        family="vae",
        model=model,
        dataset=dataset,
        split="train",
        image_size=28 if arch == "mlp" else 32,
        epochs=epochs,
        objective="m2",
        objective_args=objective_args,
        batch_size=batch,
        lr=1e-3,
        betas=(0.9, 0.999),
        weight_decay=0.0,
        amp="none",
        paper_ref=f"Zhang et al. 2022, Table 6, {M2_DECODERS[decoder]} ({table})",
        notes=tuple(notes),
    )


def _register() -> None:
    for dataset in _TABLES:
        for variant in VARIANTS:
            for paper in (False, True):
                register_recipe(zhang2022_recipe(dataset, variant, paper=paper))
    for dataset in M2_SETTINGS:
        for decoder in M2_DECODERS:
            register_recipe(zhang2022_m2_recipe(dataset, decoder))


_register()
