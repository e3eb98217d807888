"""The '-GAN' VAE update: the authors' two Adam steps (run.py) and our joint one (``Recipe.gan_update``)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from patchvae.losses import PatchVAEObjective, fake_loss, generator_loss, real_loss
from patchvae.models import create
from patchvae.recipes import Recipe, get_recipe
from patchvae.training.distributed import World
from patchvae.training.tasks import make_task
from patchvae.training.trainer import _check_resume

CPU = torch.device("cpu")


def _task(gan_update: str, seed: int = 0):
    torch.manual_seed(seed)
    recipe = get_recipe("fmnist_patchvae_gan").replace(gan_update=gan_update, amp="none", fused_optimizer=False,
                                                         channels_last=False)
    return make_task(create("patchvae_resnet9", in_chans=1), recipe, CPU, World(), None)


def _params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def test_recipes_default_to_the_authors_update_and_cifar10_keeps_its_published_one():
    assert get_recipe("cifar100_patchvae_gan").gan_update == "authors"
    assert get_recipe("fmnist_beta_vae_gan_lw").gan_update == "authors"
    assert get_recipe("cifar10_patchvae_gan").gan_update == "joint"
    assert get_recipe("cifar10_beta_vae_gan_lw").gan_update == "joint"
    assert get_recipe("cifar10_patchvae_gan").with_overrides(["gan_update=authors"]).gan_update == "authors"
    with pytest.raises(ValueError, match=r"gan_update must be one of \('authors', 'joint'\), got 'twice'"):
        get_recipe("cifar100_patchvae_gan").replace(gan_update="twice")


def _reference_step(task, x: torch.Tensor, gan_update: str) -> torch.Tensor:
    """A plain-torch '-GAN' step on copies of ``task``'s modules: run.py's loop ("authors") or one summed step."""
    model, disc = copy.deepcopy(task.model), copy.deepcopy(task.discriminator)
    opt_v = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=1e-4, betas=(0.5, 0.999))
    objective = PatchVAEObjective(**task.recipe.objective_args)
    torch.manual_seed(1)
    model.train(), disc.train()
    temperature = task.schedule(0)
    out = model(x, temperature)
    disc.zero_grad()
    real_loss(disc(x)).backward()
    fake_loss(disc(out.reconstruction.detach())).backward()
    opt_d.step()
    model.zero_grad()
    if gan_update == "joint":
        g_loss = generator_loss(disc(out.reconstruction))
        (objective(out, x).total + g_loss).backward()
        opt_v.step()
    else:
        objective(out, x).total.backward()
        opt_v.step()
        again = model(x, temperature)
        g_loss = generator_loss(disc(again.reconstruction))
        g_loss.backward()  # no zero_grad: run.py's second step sees both gradients
        opt_v.step()
    task.reference = (model, disc)
    return g_loss.detach()


@pytest.mark.parametrize("gan_update", ["authors", "joint"])
def test_gan_update_equals_a_plain_torch_loop(gan_update):
    """"authors": two Adam steps on the VAE per batch, the second adding the generator gradients of a fresh
    forward pass of the updated VAE to the (not zeroed) gradients of the first, as the authors' train_vaegan;
    "joint": one Adam step on reconstruction + KL + the generator loss."""
    task = _task(gan_update)
    x = torch.randn(6, 1, 32, 32)
    g_loss = _reference_step(task, x, gan_update)
    torch.manual_seed(1)
    task.train()
    logs = task.train_step(x, 0)
    model, disc = task.reference
    for got, want in zip(task.model.parameters(), model.parameters()):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    for got, want in zip(task.discriminator.parameters(), disc.parameters()):
        torch.testing.assert_close(got, want)
    torch.testing.assert_close(logs["g_loss"], g_loss)
    steps = {"authors": 2.0, "joint": 1.0}[gan_update]
    assert {opt["step"].item() for opt in task.optimizers["model"].state.values()} == {steps}
    assert {opt["step"].item() for opt in task.optimizers["discriminator"].state.values()} == {1.0}


def test_joint_update_is_one_step_on_the_sum_and_differs_from_the_authors():
    joint, authors = _task("joint"), _task("authors")
    start = _params(joint.model)
    x = torch.randn(6, 1, 32, 32)
    for task in (joint, authors):
        torch.manual_seed(1)
        task.train()
        logs = task.train_step(x, 0)
        assert {"d_loss", "g_loss"} <= set(logs) and all(torch.isfinite(v) for v in logs.values())
    assert {opt["step"].item() for opt in joint.optimizers["model"].state.values()} == {1.0}
    moved_joint = max((p - s).abs().max().item() for p, s in zip(joint.model.parameters(), start))
    moved_authors = max((p - s).abs().max().item() for p, s in zip(authors.model.parameters(), start))
    # Adam's first steps move every weight by ~lr: one step vs two
    assert moved_joint == pytest.approx(1e-4, rel=0.05) and moved_authors == pytest.approx(2e-4, rel=0.05)


def test_authors_update_under_loss_scaling_equals_the_unscaled_one():
    """The kept gradients of the first step are rescaled to the loss scale of the second (fp16 GradScaler)."""
    plain, scaled = _task("authors"), _task("authors")
    for name in ("model", "discriminator"):
        scaled._scalers[name] = torch.amp.GradScaler("cpu", init_scale=1024.0)
    x = torch.randn(6, 1, 32, 32)
    for task in (plain, scaled):
        torch.manual_seed(1)
        task.train()
        task.train_step(x, 0)
    for got, want in zip(scaled.model.parameters(), plain.model.parameters()):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_resuming_a_gan_run_from_before_gan_update_reads_it_as_joint(tmp_path: Path):
    saved = get_recipe("cifar10_patchvae_gan").to_dict()
    del saved["gan_update"]  # a checkpoint written before the field existed: the joint update
    meta = {"recipe": saved, "step": 0, "epoch": 0}
    run = {"steps_per_epoch": 390, "eval_subset": None}
    _check_resume(meta, get_recipe("cifar10_patchvae_gan"), tmp_path, run)
    with pytest.raises(ValueError, match=r"gan_update: 'joint' -> 'authors'"):
        _check_resume(meta, get_recipe("cifar10_patchvae_gan").replace(gan_update="authors"), tmp_path, run)
    assert Recipe.LEGACY_VALUES == {"gan_update": "joint"}
