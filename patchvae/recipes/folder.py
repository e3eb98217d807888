"""Recipes for your own images: any class-per-folder (or flat, unlabelled) directory at a chosen size.

    patchvae train folder_patchvae --data-dir photos/ --image-size 64 --val-fraction 0.1
    patchvae train folder_beta_vae --data-dir photos/ --train-split training --eval-split validation

Each family of Table 1 has one (``folder_patchvae``, ``folder_patchvae_lw``, ``folder_beta_vae``,
``folder_beta_vae_lw``, ``folder_bigan``): the paper's Indoor67 hyper-parameters (64×64 inputs, ImageNet
normalisation, random flips) on the ``"imagefolder"`` dataset. Images of any size are resized
(shorter side) and centre-cropped to ``image_size``; ``--image-size N`` (CLI) changes it, and the
fixed-size models (β-VAE, BiGAN) follow it through ``model_args.img_size``.
"""

from __future__ import annotations

from ._recipe import Recipe
from ._registry import register_recipe
from .paper import table1_recipe

__all__ = ["FOLDER_IMAGE_SIZE", "FOLDER_ROWS", "folder_recipe"]

#: default input side of the folder recipes (the paper's scene datasets)
FOLDER_IMAGE_SIZE = 64
#: Table 1 rows that get a folder recipe
FOLDER_ROWS = ("patchvae", "patchvae_lw", "beta_vae", "beta_vae_lw", "bigan")
_FOLDER_EPOCHS = 50


def folder_recipe(row: str, image_size: int = FOLDER_IMAGE_SIZE) -> Recipe:
    """The ``folder_<row>`` recipe (a row of :data:`FOLDER_ROWS`) at ``image_size`` × ``image_size``."""
    base = table1_recipe("indoor67", row)
    model_args = dict(base.model_args)
    if row.startswith(("beta_vae", "bigan")):
        model_args["img_size"] = image_size  # fixed-size bottleneck: built for the recipe's size
    return base.replace(
        name=f"folder_{row}",
        description=f"{base.description.split(' on ')[0]} on your own images (--data-dir DIR, class-per-folder or flat), "
                    f"{image_size}×{image_size}",
        dataset="imagefolder",
        split="train",
        image_size=image_size,
        epochs=_FOLDER_EPOCHS,
        steps_per_epoch=0,  # an epoch is a pass over your images (the Indoor67 recipe counts the authors' 390 steps)
        model_args=model_args,
        paper_ref=f"Table 1 hyper-parameters (Indoor67), {row}, on an image folder",
        finetune_protocol="paper_indoor67",
    )


def _register() -> None:
    for row in FOLDER_ROWS:
        register_recipe(folder_recipe(row))


_register()
