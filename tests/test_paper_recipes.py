"""Every paper recipe (Tables 1-6) trains one step on a tiny generated dataset in its official layout."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from fake_datasets import make_cifar100, make_imagenet, make_indoor67, make_places205, patch_cifar100_md5

from patchvae.recipes import get_recipe, list_recipes
from patchvae.training import train

PAPER_DATASETS = ("cifar100", "indoor67", "places205", "imagenet")
PAPER_RECIPES = [n for n in list_recipes() if get_recipe(n).dataset in PAPER_DATASETS]


@pytest.fixture(scope="module")
def data_roots(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("paper_data")
    return {
        "cifar100": make_cifar100(base / "cifar", sizes=(4, 2))[0],
        "indoor67": make_indoor67(base / "indoor67"),
        "places205": make_places205(base / "places205"),
        "imagenet": make_imagenet(base / "imagenet", per_class=1, size=(40, 30)),
    }


def test_all_paper_runs_are_covered():
    assert len(PAPER_RECIPES) == 27 + 4 + 28  # Table 1 (9 rows x 3 datasets), Table 2, Tables 3-6 sweeps


@pytest.mark.parametrize("name", PAPER_RECIPES)
def test_paper_recipe_trains_one_step(name, data_roots, tmp_path, monkeypatch):
    # one step: the 390-step epochs of the Indoor67/Places205/ImageNet recipes shortened (tests/test_step_epochs.py)
    recipe = get_recipe(name).with_overrides({"epochs": 1, "batch_size": 2})
    recipe = recipe.replace(steps_per_epoch=min(recipe.steps_per_epoch, 1))
    if recipe.dataset == "cifar100":
        patch_cifar100_md5(data_roots["cifar100"] / "cifar-100-python", monkeypatch)
    result = train(recipe, tmp_path, data_dir=data_roots[recipe.dataset], train_subset=2, eval_subset=2,
                   num_workers=0, save_images=False, export=False, log_every=1)
    assert result.steps == 1
    losses = result.history[-1]["train"]
    assert losses and all(math.isfinite(v) for v in losses.values())
    assert "eval" in result.history[-1]
    model = result.model
    assert model.data_config.input_size[1:] == (recipe.image_size, recipe.image_size)
