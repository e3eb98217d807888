"""Step-based epochs (issue 9): the authors' run.py counts an epoch as 390 steps on every dataset."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from patchvae.data import DataConfig, EpochBatches, FixedStepBatches, ImageTensorDataset
from patchvae.recipes import get_recipe, list_recipes
from patchvae.training import train


def _batches(num_images: int = 12, batch_size: int = 4, seed: int = 0) -> EpochBatches:
    # image i is filled with the value i, so a batch's first pixels name its images
    images = torch.arange(num_images, dtype=torch.uint8)[:, None, None, None].expand(num_images, 1, 28, 28).contiguous()
    ds = ImageTensorDataset(images, torch.zeros(num_images, dtype=torch.long))
    cfg = DataConfig((1, 28, 28), (0.0,), (1 / 255,), resize_mode="pad")  # x = the stored value
    return EpochBatches(ds, batch_size=batch_size, train=True, data_config=cfg, seed=seed)


def _ids(batches) -> list[tuple[int, ...]]:
    return [tuple(int(v) for v in x[:, 0, 0, 0].round()) for x, _ in batches]


def test_fixed_step_epochs_cycle_reshuffled_passes():
    passes = _batches()  # 3 batches per pass
    reference = []
    for p in range(4):
        passes.set_epoch(p)
        reference += _ids(passes)
    stream = FixedStepBatches(_batches(), 5)
    assert len(stream) == 5
    seen = []
    for epoch in range(2):
        stream.set_epoch(epoch)
        seen += _ids(stream)
    assert seen == reference[:10]  # epochs are consecutive windows of the stream of passes 0, 1, 2, 3
    assert reference[:3] != reference[3:6]  # each pass is reshuffled
    for p in range(3):  # every pass shows each image once (drop_last: 12 images, 3 full batches)
        assert sorted(i for b in reference[3 * p:3 * p + 3] for i in b) == list(range(12))


def test_fixed_step_epoch_after_a_resume_sees_the_same_batches():
    uninterrupted = FixedStepBatches(_batches(), 5)
    for epoch in range(3):
        uninterrupted.set_epoch(epoch)
        last = _ids(uninterrupted)
    resumed = FixedStepBatches(_batches(), 5)  # a new process starting at epoch 2 (mid-pass: global batch 10)
    resumed.set_epoch(2)
    assert _ids(resumed) == last


def test_fixed_step_errors():
    with pytest.raises(ValueError, match="steps_per_epoch must be an int >= 1"):
        FixedStepBatches(_batches(), 0)
    with pytest.raises(ValueError, match="steps_per_epoch must be 0"):
        get_recipe("fmnist_patchvae").replace(steps_per_epoch=-1)


def test_paper_recipes_count_the_authors_390_steps_where_a_pass_differs():
    for name in list_recipes():
        r = get_recipe(name)
        if r.dataset in ("indoor67", "places205", "imagenet"):
            assert r.steps_per_epoch == 390, name
        else:  # CIFAR-100/10 at batch 128: one pass is 390 steps already; folders, Fashion-MNIST: passes
            assert r.steps_per_epoch == 0, name
    # the temperature floor (0.1) comes at step 12,001: inside 90 Indoor67 epochs of 390 steps (35,100 steps)
    assert 12_001 < get_recipe("indoor67_patchvae").epochs * 390
    assert get_recipe("cifar10_patchvae").with_overrides(["steps_per_epoch=390"]).steps_per_epoch == 390


def test_training_with_fixed_step_epochs_and_resume(tmp_path, fashion_mnist):
    """7 steps per epoch over a 256-image subset (4 batches of 64 per pass); a resume continues the stream exactly."""
    recipe = get_recipe("fmnist_patchvae").with_overrides({"epochs": 2, "batch_size": 64, "steps_per_epoch": 7})
    kw = dict(train_subset=256, eval_subset=64, deterministic=True, log_every=1, save_images=False)
    full = train(recipe, tmp_path / "full", **kw)
    assert full.steps == 14 and [h["step"] for h in full.history] == [7, 14]
    train(recipe.replace(epochs=1), tmp_path / "split", **kw)
    resumed = train(recipe, tmp_path / "split", resume=True, **kw)
    assert resumed.steps == 14
    a = load_file(tmp_path / "full" / "model" / "model.safetensors")
    b = load_file(tmp_path / "split" / "model" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="recipe differs"):  # another epoch length cannot resume this run
        train(recipe.replace(steps_per_epoch=5, epochs=3), tmp_path / "split", resume=True, **kw)
