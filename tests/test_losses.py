"""Objectives: each term against a direct float64 computation; schedule; relaxed Bernoulli; learning."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from patchvae import losses
from patchvae.losses import (
    BetaVAEObjective,
    PatchVAEObjective,
    TemperatureSchedule,
    bernoulli_kl,
    discriminator_loss,
    gaussian_kl,
    generator_loss,
    laplacian_weights,
    reconstruction_loss,
)
from patchvae.models import BetaVAE, PatchVAE
from patchvae.models.patchvae import pool_part_appearance, sample_relaxed_bernoulli


def test_appearance_pooling_matches_direct_computation():
    b, n, d, h, w = 2, 3, 4, 5, 6
    mu = torch.randn(b, n, d, h, w)
    var = torch.rand(b, n, d, h, w) + 0.1
    p = torch.rand(b, n, h, w)
    mean, pooled_var = pool_part_appearance(mu, var, p)
    mu64, var64, p64 = (t.double().numpy() for t in (mu, var, p))
    for i in range(b):
        for k in range(n):
            wsum = sum(p64[i, k, y, x] for y in range(h) for x in range(w))
            for j in range(d):
                num_mu = sum(p64[i, k, y, x] * mu64[i, k, j, y, x] for y in range(h) for x in range(w))
                num_var = sum(p64[i, k, y, x] * var64[i, k, j, y, x] for y in range(h) for x in range(w))
                assert math.isclose(mean[i, k, j].item(), num_mu / (wsum + 1e-7), rel_tol=1e-5, abs_tol=1e-6)
                assert math.isclose(pooled_var[i, k, j].item(), (num_var + 1e-7) / (wsum + 1e-7), rel_tol=1e-5)


def test_pooling_ignores_invisible_locations():
    mu = torch.zeros(1, 1, 1, 2, 2)
    mu[..., 0, 0] = 5.0
    p = torch.zeros(1, 1, 2, 2)
    p[..., 0, 0] = 1.0
    mean, _ = pool_part_appearance(mu, torch.ones_like(mu), p)
    assert mean.item() == pytest.approx(5.0, rel=1e-6)


def test_bernoulli_kl_matches_direct_computation():
    logits = torch.randn(4, 16, 4, 4) * 3
    prior = 1 / 16
    q = torch.sigmoid(logits.double())
    direct = (q * torch.log(q / prior) + (1 - q) * torch.log((1 - q) / (1 - prior))).sum((1, 2, 3)).mean()
    torch.testing.assert_close(bernoulli_kl(logits, prior).double(), direct, rtol=1e-5, atol=1e-5)
    # saturated logits stay finite; KL is 0 exactly at the prior
    assert torch.isfinite(bernoulli_kl(torch.tensor([[[[80.0, -80.0]]]]), 0.1))
    at_prior = torch.full((1, 1, 2, 2), math.log(prior / (1 - prior)))
    assert bernoulli_kl(at_prior, prior).abs().item() < 1e-6
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        bernoulli_kl(logits, 1.0)


def test_gaussian_kl_matches_direct_computation():
    mean, var = torch.randn(5, 16, 6), torch.rand(5, 16, 6) + 0.05
    m, v = mean.double().numpy(), var.double().numpy()
    direct = np.mean([np.sum(0.5 * (m[i] ** 2 + v[i] - np.log(v[i]) - 1)) for i in range(5)])
    assert gaussian_kl(mean, var).item() == pytest.approx(direct, rel=1e-5)
    assert gaussian_kl(torch.zeros(2, 3), torch.ones(2, 3)).item() == 0.0


def _laplacian_weights_direct(x: np.ndarray, cell: int) -> np.ndarray:
    b, c, h, w = x.shape
    out = np.zeros_like(x)
    for i in range(b):
        for k in range(c):
            img = x[i, k]
            lap = np.zeros((h, w))
            for y in range(h):
                for xx in range(w):
                    up, down = img[max(y - 1, 0), xx], img[min(y + 1, h - 1), xx]
                    left, right = img[y, max(xx - 1, 0)], img[y, min(xx + 1, w - 1)]
                    lap[y, xx] = abs(up + down + left + right - 4 * img[y, xx])
            cells = lap.reshape(h // cell, cell, w // cell, cell).mean(axis=(1, 3))
            cells = cells / cells.mean()
            out[i, k] = np.kron(cells, np.ones((cell, cell)))
    return out


def test_laplacian_weights_match_direct_computation():
    x = torch.rand(2, 3, 16, 24) * 2 - 1
    x[:, :, :8, :8] = 0.3  # a flat region gets low weight
    got = laplacian_weights(x, cell=8)
    expected = _laplacian_weights_direct(x.double().numpy(), 8)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got.mean((2, 3)), torch.ones(2, 3))  # normalised per image and channel
    assert got[0, 0, 0, 0] < got[0, 0, 15, 23]
    assert not got.requires_grad


def test_laplacian_weights_flat_image_and_bad_size():
    torch.testing.assert_close(laplacian_weights(torch.full((1, 1, 16, 16), 0.2)), torch.ones(1, 1, 16, 16))
    with pytest.raises(ValueError, match="not divisible by the L_w cell size 8"):
        laplacian_weights(torch.zeros(1, 1, 12, 16))


def test_reconstruction_losses():
    x, y = torch.randn(3, 2, 8, 8), torch.randn(3, 2, 8, 8)
    w = torch.rand(3, 2, 8, 8)
    assert reconstruction_loss(x, y).item() == pytest.approx(((x - y) ** 2).sum().item() / 3, rel=1e-5)
    assert reconstruction_loss(x, y, w).item() == pytest.approx((w * (x - y) ** 2).sum().item() / 3, rel=1e-5)
    with pytest.raises(ValueError, match="reconstruction shape"):
        reconstruction_loss(x, y[:, :1])


def test_patchvae_objective_parts_and_beta_roles():
    model = PatchVAE(num_parts=8, part_dim=3)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    out = model(x)
    parts = PatchVAEObjective(beta_app=0.5, beta_vis=2.0)(out, x)
    assert set(parts._fields) == {"total", "reconstruction", "kl_appearance", "kl_visibility"}
    torch.testing.assert_close(parts.total, parts.reconstruction + 0.5 * parts.kl_appearance + 2.0 * parts.kl_visibility)
    torch.testing.assert_close(parts.kl_visibility, bernoulli_kl(out.visibility_logits, 1 / 8))  # prior 1/N
    only_vis = PatchVAEObjective(beta_app=0.0, beta_vis=1.0)(out, x)  # β_vis weighs the visibility term
    torch.testing.assert_close(only_vis.total, only_vis.reconstruction + only_vis.kl_visibility)
    weighted = PatchVAEObjective(weighted=True)(out, x)
    expected = reconstruction_loss(out.reconstruction, x, laplacian_weights(x, 8))
    torch.testing.assert_close(weighted.reconstruction, expected)
    assert PatchVAEObjective(visibility_prior=0.05).prior_for(16) == 0.05


def test_beta_vae_objective():
    model = BetaVAE()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    out = model(x)
    parts = BetaVAEObjective(beta=4.0)(out, x)
    torch.testing.assert_close(parts.total, parts.reconstruction + 4.0 * parts.kl)
    torch.testing.assert_close(parts.kl, gaussian_kl(out.latent_mean, out.latent_var))


def test_adversarial_losses_match_formula():
    real, fake = torch.randn(6), torch.randn(6)
    sig = lambda t: 1 / (1 + np.exp(-t.double().numpy()))  # noqa: E731
    d = discriminator_loss(real, fake)
    assert d.real.item() == pytest.approx(-np.log(sig(real)).mean(), rel=1e-5)
    assert d.fake.item() == pytest.approx(-np.log(1 - sig(fake)).mean(), rel=1e-5)
    assert generator_loss(fake).item() == pytest.approx(-np.log(sig(fake)).mean(), rel=1e-5)
    e = losses.bigan_encoder_generator_loss(real, fake)
    assert e.real.item() == pytest.approx(-np.log(1 - sig(real)).mean(), rel=1e-5)


# ----------------------------------------------------------------------------- temperature schedule
def test_reference_schedule_equals_authors_loop():
    """The closed form equals the authors' run.py loop: steps += 1; every 1000 steps τ = max(τ·exp(-r·steps), floor)."""
    sched = TemperatureSchedule()
    temp, steps = 1.0, 0
    for _ in range(30_000):
        assert sched(steps) == pytest.approx(temp, rel=1e-9)
        steps += 1
        if steps % 1000 == 1:
            temp = max(temp * np.exp(-3e-5 * steps), 0.1)
    assert sched(0) == 1.0 and sched(30_000) == 0.1


def test_reference_schedule_reaches_its_floor_at_step_12001():
    sched = TemperatureSchedule()
    assert sched(12_000) == pytest.approx(0.138, abs=5e-4) and sched(12_001) == 0.1


def test_exponential_schedule():
    sched = TemperatureSchedule(mode="exponential")
    assert sched(10_000) == pytest.approx(math.exp(-0.3))
    assert sched(10**6) == 0.1
    with pytest.raises(ValueError):
        TemperatureSchedule(floor=0.0)
    with pytest.raises(ValueError, match="step must be >= 0"):
        sched(-1)


# ----------------------------------------------------------------------------- relaxed Bernoulli
def test_relaxed_bernoulli_distribution():
    torch.manual_seed(0)
    logits = torch.tensor([-2.0, -0.5, 0.0, 1.0, 3.0]).repeat(20_000, 1)
    for tau in (1.0, 0.3):
        y = sample_relaxed_bernoulli(logits, tau)
        # P(y > 0.5) = sigmoid(logits) at every temperature
        torch.testing.assert_close((y > 0.5).float().mean(0), torch.sigmoid(logits[0]), atol=0.015, rtol=0)
        ref = torch.distributions.RelaxedBernoulli(torch.tensor(tau), logits=logits).sample()
        torch.testing.assert_close(y.mean(0), ref.mean(0), atol=0.015, rtol=0)


def test_relaxed_bernoulli_hardens_as_temperature_anneals():
    logits = torch.randn(50_000)
    near_binary = [
        ((y < 0.01) | (y > 0.99)).float().mean().item()
        for y in (sample_relaxed_bernoulli(logits, t) for t in (1.0, 0.5, 0.1))
    ]
    assert near_binary[0] < near_binary[1] < near_binary[2]
    # at τ = 1 only ~3% of samples are within 0.01 of {0, 1}; at the floor τ = 0.1, ~81%
    assert near_binary[0] < 0.05 and near_binary[2] > 0.78


# ----------------------------------------------------------------------------- learning on real data
@pytest.mark.data
def test_optimisation_lowers_loss_on_fashion_mnist(fashion_mnist):
    from patchvae.data import FASHION_MNIST, BatchPreprocess

    torch.manual_seed(0)
    x = BatchPreprocess(FASHION_MNIST)(fashion_mnist.images[:32])
    model = PatchVAE(in_chans=1).train()
    objective, schedule = PatchVAEObjective(), TemperatureSchedule()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    history = []
    for step in range(200):
        loss = objective(model(x, temperature=schedule(step)), x)
        opt.zero_grad()
        loss.total.backward()
        opt.step()
        history.append(loss.total.item())
    assert all(math.isfinite(v) for v in history)
    assert np.mean(history[-20:]) < 0.5 * np.mean(history[:5])


def test_hard_visibility_thresholds_the_logits_as_the_authors():
    """hard=True: the forward value is 1[logit > 0] (deterministic, the authors' code) with the relaxed
    sample's gradient; threshold="sample" keeps the Bernoulli draw 1[y > 0.5]."""
    logits = torch.randn(4, 16, 4, 4, generator=torch.Generator().manual_seed(0), requires_grad=True)
    torch.manual_seed(1)
    hard = sample_relaxed_bernoulli(logits, 0.5, hard=True)
    assert torch.equal(hard.detach(), (logits > 0).float())
    hard.sum().backward()
    grad_hard = logits.grad.clone()
    logits.grad = None
    torch.manual_seed(1)
    sample_relaxed_bernoulli(logits, 0.5).sum().backward()
    assert torch.equal(grad_hard, logits.grad)  # straight-through: the relaxed sample's gradient
    torch.manual_seed(1)
    drawn = sample_relaxed_bernoulli(logits.detach(), 0.5, hard=True, threshold="sample")
    assert set(drawn.unique().tolist()) <= {0.0, 1.0} and not torch.equal(drawn, (logits > 0).float())
    with pytest.raises(ValueError, match="threshold must be 'logits'"):
        sample_relaxed_bernoulli(logits, 0.5, hard=True, threshold="mean")


def test_hard_patchvae_trains_with_the_authors_threshold():
    from patchvae.models import PatchVAE

    model = PatchVAE(hard=True).train()
    x = torch.randn(2, 3, 32, 32)
    out = model(x, temperature=0.5)
    assert torch.equal(out.visibility_sample, (out.visibility_logits > 0).to(out.visibility_sample.dtype))
    assert PatchVAE(hard=True, hard_threshold="sample").hard_threshold == "sample"
    with pytest.raises(ValueError, match="hard_threshold must be"):
        PatchVAE(hard_threshold="probs")
