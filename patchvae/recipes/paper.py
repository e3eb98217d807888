"""The paper's runs: every row of Table 1 and Table 2 and the ablation sweeps of Tables 3-6.

Each Table 1 row and each sweep also exists on CIFAR-10 (``cifar10_<row>``, ``table3_num_parts_cifar10``
...): the paper's CIFAR-100 hyper-parameters on the CIFAR-10 images we can train on here; sweeps at
a short fixed budget of 15 epochs. ``beta_vis_combined_cifar10`` is ours, not the paper's: the shipped default's
β_vis = 0.96 (the best Table 6 row on CIFAR-10) with N = 32 or d_p = 9; so is ``temperature_schedule_cifar10``, the
relaxed-Bernoulli temperature fixed at 1.0 or annealed 8× faster than the paper's schedule.

These need the datasets (CIFAR-100, MIT Indoor67, Places205, ImageNet), which users download
themselves; see ``patchvae.data``. Hyper-parameters are the paper's (§4 "Training details").

Choices where the paper is ambiguous:

* Adam betas (0.5, 0.999): not in the paper; the authors' ``run.py`` uses them.
* β_app = 1, β_vis = 10: the authors' code defaults (the paper gives no base values).
* Table 6 (β_vis ∈ {0.06, 0.3, 0.6}): we read those values as β_vis normalised by the number of
  parts N = 16, so the recipes use β_vis = 16 × value = 0.96, 4.8, 9.6 on our (summed over parts
  and locations) visibility KL. Reason: the authors' default β_v = 10 is 10/16 ≈ 0.6, and the
  table's 0.6 row (28.90 on CIFAR-100) matches the default PatchVAE Conv5 result of Table 1 (28.72)
  and the default rows of Tables 3-5 (28.94, 28.97, 28.67), which all use the defaults.
* Table 5's prior 0.05 is closest to the default 1/N = 0.0625; the sweep uses the paper's values.
* ImageNet: the paper trains 30 epochs (§4); the authors' README shows 140 epochs at lr 2e-4 and
  batch 256 for their released run. We follow the paper.
* '-GAN' variants (the image discriminator of Larsen et al. 2016, non-saturating generator loss): the
  authors' update by default (``gan_update="authors"``: an Adam step on reconstruction + KL, then a second
  forward pass and Adam step on ``gan_weight`` × the generator loss plus the first step's gradients, as
  their run.py). The CIFAR-10 recipes keep ``gan_update="joint"`` (one Adam step on the sum), with which
  their published rows were trained.
* Epochs of Indoor67, Places205 and ImageNet are the authors' fixed 390 steps (``steps_per_epoch``), not
  passes over the data: 90 Indoor67 epochs are 35,100 steps (~3.5 passes each), so the relaxed-Bernoulli
  temperature reaches its 0.1 floor (step 12,001) as in the authors' runs. On CIFAR-100/CIFAR-10 (50,000
  images, batch 128, last incomplete batch dropped) a pass is exactly 390 steps, so those recipes count
  passes (``steps_per_epoch=0``) and ``--train-subset`` runs stay short.
* Indoor67 pretraining uses every image except the official test images (§4 "Learning paradigm").
"""

from __future__ import annotations

from typing import Any

from ._recipe import Recipe
from ._registry import get_recipe, register_recipe, register_sweep

#: the authors' run.py: an "epoch" is a fixed 390 steps on every dataset (one pass of CIFAR at batch 128)
AUTHORS_STEPS_PER_EPOCH = 390

#: dataset -> size, epochs (paper §4), pretraining split, matching evaluation protocol, fixed-size models
PAPER_DATASETS: dict[str, dict[str, Any]] = {
    "cifar100": {"image_size": 32, "epochs": 90, "split": "train", "protocol": "paper_cifar100",
                 "beta_vae": "beta_vae_resnet9_32", "bigan": "bigan_resnet9_32"},
    # not in the paper: its CIFAR-100 recipe (hyper-parameters, 90 epochs) on CIFAR-10, the natural images we have
    # its '-GAN' rows keep the joint update their published results (docs/results.md) were trained with
    "cifar10": {"image_size": 32, "epochs": 90, "split": "train", "protocol": "cifar10",
                "beta_vae": "beta_vae_resnet9_32", "bigan": "bigan_resnet9_32", "gan_update": "joint"},
    "indoor67": {"image_size": 64, "epochs": 90, "split": "unsupervised", "protocol": "paper_indoor67",
                 "beta_vae": "beta_vae_resnet9_64", "bigan": "bigan_resnet9_64", "steps_per_epoch": AUTHORS_STEPS_PER_EPOCH},
    "places205": {"image_size": 64, "epochs": 2, "split": "train", "protocol": "paper_places205",
                  "beta_vae": "beta_vae_resnet9_64", "bigan": "bigan_resnet9_64", "steps_per_epoch": AUTHORS_STEPS_PER_EPOCH},
}

#: Table 1 rows: suffix -> (label, family, objective, L_w)
TABLE1_ROWS: dict[str, tuple[str, str, str, bool]] = {
    "beta_vae": ("β-VAE", "vae", "beta_vae", False),
    "beta_vae_lw": ("β-VAE + L_w", "vae", "beta_vae", True),
    "beta_vae_gan": ("β-VAE-GAN", "vae_gan", "beta_vae", False),
    "beta_vae_gan_lw": ("β-VAE-GAN + L_w", "vae_gan", "beta_vae", True),
    "patchvae": ("PatchVAE", "vae", "patchvae", False),
    "patchvae_lw": ("PatchVAE + L_w", "vae", "patchvae", True),
    "patchvae_gan": ("PatchVAE-GAN", "vae_gan", "patchvae", False),
    "patchvae_gan_lw": ("PatchVAE-GAN + L_w", "vae_gan", "patchvae", True),
    "bigan": ("BiGAN", "bigan", "bigan", False),
}


def table1_recipe(dataset: str, row: str, *, name: str | None = None, **changes: Any) -> Recipe:
    """The Table 1 run of ``row`` (a key of :data:`TABLE1_ROWS`) on ``dataset``, with optional changes."""
    spec = PAPER_DATASETS[dataset]
    label, family, objective, weighted = TABLE1_ROWS[row]
    model = {"patchvae": "patchvae_resnet9", "beta_vae": spec["beta_vae"], "bigan": spec["bigan"]}[objective]
    recipe = Recipe(
        name=name or f"{dataset}_{row}",
        description=f"{label} on {dataset} ({spec['image_size']}×{spec['image_size']}), paper Table 1",
        family=family,
        model=model,
        dataset=dataset,
        split=spec["split"],
        image_size=spec["image_size"],
        epochs=spec["epochs"],
        steps_per_epoch=spec.get("steps_per_epoch", 0),
        gan_update=spec.get("gan_update", "authors"),
        objective=objective,
        objective_args={"weighted": True} if weighted else {},
        paper_ref=f"Table 1, {label}, {dataset}",
        finetune_protocol=spec["protocol"],
    )
    return recipe.replace(**changes) if changes else recipe


def _register_table1() -> None:
    for dataset in PAPER_DATASETS:
        for row in TABLE1_ROWS:
            register_recipe(table1_recipe(dataset, row))


def _register_table2() -> None:
    rows = {
        "patchvae": ("PatchVAE", "patchvae_resnet18", "patchvae", False),
        "patchvae_lw": ("PatchVAE + L_w", "patchvae_resnet18", "patchvae", True),
        "beta_vae": ("β-VAE", "beta_vae_resnet18_224", "beta_vae", False),
        "beta_vae_lw": ("β-VAE + L_w", "beta_vae_resnet18_224", "beta_vae", True),
    }
    for suffix, (label, model, objective, weighted) in rows.items():
        register_recipe(
            Recipe(
                name=f"imagenet_{suffix}",
                description=f"{label} on ImageNet (224×224, ResNet-18 φ), paper Table 2",
                family="vae",
                model=model,
                dataset="imagenet",
                image_size=224,
                epochs=30,
                steps_per_epoch=AUTHORS_STEPS_PER_EPOCH,
                objective=objective,
                # the authors' L_w at 224×224 uses the latent cell (32×32 pixels: ResNet-18's stride) for both
                # models; objective_args.weight_cell=8 gives the paper's 8×8 patches for β-VAE
                objective_args=({"weighted": True, "weight_cell": 32} if objective == "beta_vae" else {"weighted": True})
                if weighted else {},
                paper_ref=f"Table 2, {label}",
                finetune_protocol="paper_imagenet",
            )
        )


def _described(base: Recipe, what: str) -> str:
    """``base``'s "<model> on <dataset> (<size>)" followed by ``what`` (a sweep row's table and setting)."""
    return f"{base.description.rsplit(', paper', 1)[0]}, {what}"


#: epochs of the CIFAR-10 ablation sweeps (the paper's sweeps run the full 90 on CIFAR-100/Indoor67)
CIFAR10_SWEEP_EPOCHS = 15


def _register_ablations() -> None:
    for dataset in ("cifar100", "indoor67", "cifar10"):
        base = table1_recipe(dataset, "patchvae")
        if dataset == "cifar10":
            base = base.replace(epochs=CIFAR10_SWEEP_EPOCHS)

        def variant(suffix: str, ref: str, **changes: Any) -> Recipe:
            return base.replace(name=f"{dataset}_patchvae_{suffix}", paper_ref=f"{ref}, {dataset}",
                                description=_described(base, f"paper {ref}"), **changes)

        table3 = [variant(f"n{n}", f"Table 3, N={n}", model_args={"num_parts": n}) for n in (4, 8, 16, 32, 64)]
        table4 = [variant(f"dp{d}", f"Table 4, d_p={d}", model_args={"part_dim": d}) for d in (3, 6, 9)]
        if dataset == "cifar10":
            # one seed, one budget: the rows at the defaults (N = 16, d_p = 6) of Tables 3 and 4 are one run, not two
            # identical ones (the paper reports 28.94 and 28.97 for them, so it trained twice)
            table3[2] = table4[1] = variant("n16", "Table 3, N=16 and Table 4, d_p=6", model_args={"num_parts": 16, "part_dim": 6})
        register_sweep(f"table3_num_parts_{dataset}", table3)
        register_sweep(f"table4_part_dim_{dataset}", table4)
        register_sweep(
            f"table5_visibility_prior_{dataset}",
            [
                variant(f"prior{p}", f"Table 5, z_vis_prior={p}", objective_args={"visibility_prior": p})
                for p in (0.01, 0.05, 0.1)
            ],
        )
        register_sweep(
            f"table6_beta_vis_{dataset}",
            [
                variant(f"bvis{b}", f"Table 6, β_vis={b} (= {16 * b:g} / N=16)", objective_args={"beta_vis": 16 * b})
                for b in (0.06, 0.3, 0.6)
            ],
        )


#: the Table 6 sweep row whose β_vis ``cifar10_patchvae_tuned`` takes (β_vis = 0.06 × N = 0.96)
CIFAR10_TUNED_FROM = "cifar10_patchvae_bvis0.06"


def _register_cifar10_tuned() -> None:
    # The best PatchVAE setting of our CIFAR-10 sweeps so far (docs/results.md, "Table 6 analogue"): at 15 epochs
    # β_vis = 0.96 beat the paper's default 10 under the linear probe (44.78 vs 43.45 at 9.6) and kNN, with all
    # 16 parts active and 2.7x as many parts visible per location. One seed, no Conv5 yet: a candidate, not a claim.
    # The sweep's setting at the paper's Table 1 budget (90 epochs).
    base, row = table1_recipe("cifar10", "patchvae"), get_recipe(CIFAR10_TUNED_FROM)
    register_recipe(base.replace(
        name="cifar10_patchvae_tuned",
        description=f"PatchVAE on cifar10 (32×32) with β_vis = {row.objective_args['beta_vis']:g}, the best setting "
                    "of the CIFAR-10 β_vis sweep",
        objective_args={**base.objective_args, **row.objective_args},
        paper_ref=f"{row.paper_ref}; paper Table 1 budget",
    ))


#: Table 3 / 4 settings that the CIFAR-10 probes rank above the defaults, tried with the shipped β_vis (one change each)
CIFAR10_TUNED_COMBINED = {"n32": {"num_parts": 32}, "dp9": {"part_dim": 9}}


def _register_cifar10_tuned_combined() -> None:
    # Our follow-up of the CIFAR-10 sweeps, not a table of the paper: β_vis = 0.96 (the Table 6 row behind
    # cifar10_patchvae_tuned) with N = 32 or d_p = 9, at the sweeps' 15 epochs. β_vis stays 0.96 in absolute terms
    # (not 0.06 × N): the only change from the Table 6 row is the model's shape, as in Tables 3 and 4, whose rows all
    # keep the default β_vis = 10 whatever N is. The Table 6 row is the sweep's baseline row (one run, trained once).
    row = get_recipe(CIFAR10_TUNED_FROM)
    beta_vis = f"{row.objective_args['beta_vis']:g}"
    combined = []
    for suffix, model_args in CIFAR10_TUNED_COMBINED.items():
        setting = ", ".join(f"{k} = {v}" for k, v in model_args.items())
        combined.append(row.replace(
            name=f"{row.name}_{suffix}", model_args=model_args,
            description=_described(row, f"β_vis = {beta_vis} with {setting} (ours: a follow-up of Tables 3, 4 and 6)"),
            paper_ref=f"our follow-up of Tables 3, 4 and 6: β_vis = {beta_vis} with {setting}, cifar10"))
    register_sweep("beta_vis_combined_cifar10", [row, *combined])


#: the relaxed-Bernoulli temperature schedules of our CIFAR-10 temperature sweep (issue 9: "the temperature schedule"):
#: suffix -> (recipe changes, setting). The paper's schedule (rate 3e-5 every 1000 steps, floor 0.1) is at τ = 0.64 after
#: the sweeps' 15 epochs (5,850 steps); 8× the rate reaches the floor at step 4,001, as the paper's 90 epochs reach it
#: at step 12,001; rate 0 keeps τ = 1.0.
CIFAR10_TEMPERATURE_SCHEDULES: dict[str, tuple[dict[str, Any], str]] = {
    "tau_fixed": ({"temperature_anneal_rate": 0.0}, "τ fixed at 1.0"),
    "tau_fast": ({"temperature_anneal_rate": 2.4e-4}, "τ annealed at 8× the rate, at its 0.1 floor from step 4,001"),
}


def _register_cifar10_temperature() -> None:
    # Ours, not a table of the paper: the issue's "temperature schedule" search at the sweeps' 15 epochs, every other
    # setting the paper's default (β_vis = 10). Its baseline row is the defaults' run of Tables 3 and 4 (trained once);
    # the other rows differ from it in the annealing rate only.
    row = get_recipe("cifar10_patchvae_n16")
    schedules = [row.replace(name=f"cifar10_patchvae_{suffix}", description=_described(row, f"ours, temperature schedule: {setting}"),
                             paper_ref=f"our temperature sweep: {setting}, cifar10", **changes)
                 for suffix, (changes, setting) in CIFAR10_TEMPERATURE_SCHEDULES.items()]
    register_sweep("temperature_schedule_cifar10", [row, *schedules])


_register_table1()
_register_table2()
_register_ablations()
_register_cifar10_tuned()
_register_cifar10_tuned_combined()
_register_cifar10_temperature()
