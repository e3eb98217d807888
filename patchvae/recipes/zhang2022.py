"""Zhang, Xiao, Paige & Barber (2022), Tables 2 and 3: VAE (h=0), LPVAE h=1, LPVAE h=2 and FPVAE.

Objective ``"elbo"``: the negative ELBO with one reparameterised posterior sample, mean nats per image
(β = 1, no KL annealing, no free bits; spec §2.7); the logs add bits/dim. Optimiser (spec §2.7): Adam,
lr 3e-4, PyTorch's default betas (0.9, 0.999), no weight decay, no schedule, batch 100.

Two recipes per model:

* ``zhang2022_<dataset>_<variant>``: the CPU-size model (``pixelvae_*_small``) at a short budget, what we
  train on a 2-core CPU: 4 epochs each. Measured on one loaded core at batch 100: ≈0.65 s (LPVAE) / ≈2 s
  (FPVAE) per step on Fashion-MNIST (600 steps per epoch: ≈25 min / ≈80 min in all), ≈1.2 s / ≈2.4 s on
  CIFAR-10 (500 steps per epoch: ≈40 min / ≈80 min). The paper trains 100 (MNIST) and 1000 (CIFAR-10)
  epochs: our budgets are 4 % and 0.4 % of them.
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
* ``amp="none"``: float32. Under bf16 autocast the head would hand the DMOL its means in bf16, whose
  spacing near ±1 (2^-7) is the width of a bin (2/255).
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
CPU_EPOCHS = {"fashion_mnist": 4, "cifar10": 4}
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
        "float32 (amp none): bf16 DMOL means would be as coarse as one 8-bit bin",
    ]
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
        amp="none",
        paper_ref=f"Zhang et al. 2022, {table}, {label}" + ("" if paper else f" (CPU size, {epochs} epochs)"),
        notes=tuple(notes),
    )


def _register() -> None:
    for dataset in _TABLES:
        for variant in VARIANTS:
            for paper in (False, True):
                register_recipe(zhang2022_recipe(dataset, variant, paper=paper))


_register()
