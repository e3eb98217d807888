"""patchvae.visualize and `patchvae figures`: the figure grids of a model, through its protocol."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

import patchvae.models as zoo
from patchvae.visualize import lw_mask_grid, part_crop_grid, reconstruction_grid, save_figures, visibility_grid


@pytest.fixture(scope="module")
def images():
    return torch.randint(0, 256, (6, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return zoo.create("patchvae_resnet9").eval()


def test_grids_have_the_documented_layout(model, images):
    assert reconstruction_grid(model, images, per_row=3).shape == (3, 4 * 33 + 1, 3 * 33 + 1)  # 2 pairs of rows
    assert visibility_grid(model, images[:2], scale=1).shape == (3, 2 * 33 + 1, 17 * 33 + 1)  # image + 16 maps
    grid, parts = part_crop_grid(model, images, parts=[3, 5], per_part=4, scale=1)
    assert parts == [3, 5] and grid.shape == (3, 2 * 25 + 1, 4 * 25 + 1)  # 24x24 crops: cell 8 + 1 cell context
    assert lw_mask_grid(model, images[:2], scale=1).shape == (3, 33 + 1, 4 * 33 + 1)
    for g in (grid,):
        assert 0 <= g.min() and g.max() <= 1


def test_part_crops_pick_the_images_where_the_part_is_most_visible(model, images):
    from patchvae.data import BatchPreprocess
    from patchvae.visualize import _unit

    x = BatchPreprocess(model.data_config)(images)
    with torch.no_grad():
        vis = model.represent(x, ["visibility"])["visibility"]
    best = vis[:, 0].flatten(1).amax(1).argmax().item()
    grid, _ = part_crop_grid(model, images, parts=[0], per_part=2, context=10, scale=1)  # context covers the image
    torch.testing.assert_close(grid[:, 1:33, 1:33], _unit(x[best : best + 1], model)[0])


def test_samples_are_seeded_prior_draws(model):
    from patchvae.visualize import sample_grid

    assert torch.equal(sample_grid(model, 4, seed=1, per_row=4), sample_grid(model, 4, seed=1, per_row=4))
    assert sample_grid(model, 4, seed=1, per_row=4).shape == (3, 33 + 1, 4 * 33 + 1)


def test_models_without_parts_get_reconstructions_and_samples_only(tmp_path, images):
    written = save_figures(zoo.create("beta_vae_resnet9_32"), images, tmp_path, prefix="b")
    assert list(written) == ["reconstructions", "samples"] and written["reconstructions"].name == "b-reconstructions.png"
    with pytest.raises(ValueError, match="no part visibility"):
        visibility_grid(zoo.create("beta_vae_resnet9_32").eval(), images)
    with pytest.raises(TypeError, match="uint8"):
        reconstruction_grid(zoo.create("beta_vae_resnet9_32").eval(), images.float())


def test_figures_cli_on_the_shipped_weights(tmp_path, fashion_mnist_test):
    from patchvae.cli import main

    assert main(["figures", "patchvae_resnet9.fmnist", "--images", "200", "--out", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"patchvae_resnet9.fmnist-{f}.png" for f in ("lw_masks", "parts", "reconstructions", "samples", "visibility")]
    with Image.open(tmp_path / "patchvae_resnet9.fmnist-parts.png") as parts:
        assert parts.height == 2 * 49 + 1  # the card's 2 active parts, one row each (24x24 crops, x2)
