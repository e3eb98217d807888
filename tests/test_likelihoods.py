"""DMOL likelihood: normalisation, edge bins, a direct float64 computation, gradients, bf16, sampling."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from patchvae.models.likelihoods import DiscretizedLogisticMixture, bits_per_dim

GRID = torch.arange(256, dtype=torch.float64) / 127.5 - 1.0  # the 256 bin centres


def _params(lik: DiscretizedLogisticMixture, batch: int, height: int, width: int, *, means=(-1.2, 1.2),
            log_scales=(-4.0, 1.0), dtype=torch.float32) -> torch.Tensor:
    """Random parameters with means / raw log-scales drawn uniformly from the given ranges."""
    k, c = lik.num_mixtures, lik.channels
    g = torch.Generator().manual_seed(1)

    def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(*shape, generator=g, dtype=torch.float64)

    groups = [u(*means, batch, c, k, height, width), u(*log_scales, batch, c, k, height, width)]
    if lik.autoregressive:
        groups.append(u(-2.0, 2.0, batch, c, k, height, width))
    logits = 2 * torch.randn(batch, k, height, width, generator=g, dtype=torch.float64)
    return torch.cat([logits, torch.cat(groups, 2).flatten(1, 2)], 1).to(dtype)


def _grid_images(batch: int, chans: int, height: int, width: int, seed: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (batch, chans, height, width), generator=g).float() / 127.5 - 1.0
    x[0, :, 0, 0], x[-1, :, -1, -1] = -1.0, 1.0  # both edge values present
    return x


def _direct_log_prob(params: torch.Tensor, x: torch.Tensor, k: int, chans: int, ar: bool) -> torch.Tensor:
    """Textbook DMOL in float64, per pixel (B, H, W): log of the CDF difference on the side where it does not
    cancel, no mid-bin fallback; differentiable with autograd."""
    p, x = params.double(), x.double()
    batch, _, height, width = p.shape
    logits = p[:, :k]
    rest = p[:, k:].reshape(batch, chans, -1, height, width)
    means, log_s = rest[:, :, :k], rest[:, :, k:2 * k].clamp(min=-7.0)
    xs = x.unsqueeze(2)
    if ar and chans == 3:
        coef = torch.tanh(rest[:, :, 2 * k:])
        means = torch.stack([means[:, 0], means[:, 1] + coef[:, 0] * xs[:, 0],
                             means[:, 2] + coef[:, 1] * xs[:, 0] + coef[:, 2] * xs[:, 1]], 1)
    a = (xs + 1 / 255 - means) * torch.exp(-log_s)
    b = (xs - 1 / 255 - means) * torch.exp(-log_s)
    mass = torch.where(b > 0, torch.sigmoid(-b) - torch.sigmoid(-a), torch.sigmoid(a) - torch.sigmoid(b))
    lp = torch.where(xs < -0.999, F.logsigmoid(a), torch.where(xs > 0.999, F.logsigmoid(-b), torch.log(mass)))
    return torch.logsumexp(lp.sum(1) + F.log_softmax(logits, 1), 1)


def test_num_params_layout_and_errors():
    assert DiscretizedLogisticMixture.num_params(3, 10) == 100  # CIFAR, channel-AR (spec §2.3 n_out)
    assert DiscretizedLogisticMixture.num_params(3, 10, autoregressive=False) == 70  # 'ci'
    assert DiscretizedLogisticMixture.num_params(1, 10) == 30  # MNIST
    assert DiscretizedLogisticMixture(1, 5).param_channels == 15
    with pytest.raises(ValueError, match="autoregressive=False"):
        DiscretizedLogisticMixture(2, 10)
    lik = DiscretizedLogisticMixture(3, 4)
    x = _grid_images(2, 3, 4, 4)
    with pytest.raises(ValueError, match="param_channels"):
        lik.log_prob(torch.zeros(2, 28, 4, 4), x)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        lik.log_prob(torch.zeros(2, 40, 4, 4), x * 2)
    with pytest.raises(TypeError, match="127.5"):
        lik.log_prob(torch.zeros(2, 40, 4, 4), torch.zeros(2, 3, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="batch or spatial"):
        lik.log_prob(torch.zeros(2, 40, 4, 5), x)


@pytest.mark.parametrize("log_scales", [(-9.0, -6.0), (-4.0, 1.0), (3.0, 6.0)])
def test_grey_pixel_probabilities_sum_to_one(log_scales):
    lik = DiscretizedLogisticMixture(1, 4)
    params = _params(lik, 1, 1, 3, means=(-1.5, 1.5), log_scales=log_scales).expand(256, -1, -1, -1)
    x = GRID.float().view(256, 1, 1, 1).expand(-1, 1, 1, 3)
    total = lik.log_prob(params, x, per_pixel=True).double().exp().sum(0)  # (1, 3): each pixel's 256 values
    torch.testing.assert_close(total, torch.ones_like(total), atol=1e-5, rtol=0)


def test_rgb_conditionals_sum_to_one():
    lik = DiscretizedLogisticMixture(3, 3)
    params = _params(lik, 1, 1, 1).expand(256, -1, -1, -1)
    fixed = torch.tensor([-0.2, 0.6, 0.1])
    for c in range(3):  # R for fixed params; G given R; B given R, G (later channels are irrelevant)
        x = fixed.view(1, 3, 1, 1).repeat(256, 1, 1, 1)
        x[:, c] = GRID.float().view(256, 1, 1)
        total = lik.component_log_prob(params, x)[:, c].double().exp().sum(0)  # (K, 1, 1)
        torch.testing.assert_close(total, torch.ones_like(total), atol=1e-5, rtol=0)


def test_rgb_joint_sums_to_one_over_all_values():
    # all 32^3 colours of a 5-bit DMOL (same code path as 8 bits, 512x fewer cells to enumerate)
    lik = DiscretizedLogisticMixture(3, 2, num_bins=32)
    params = _params(lik, 1, 1, 1, log_scales=(-3.0, -1.0))
    grid = torch.arange(32.0) / 15.5 - 1.0
    x = torch.cartesian_prod(grid, grid, grid).T.reshape(1, 3, 1, 32**3)
    total = lik.log_prob(params.expand(-1, -1, 1, 32**3), x, per_pixel=True).double().exp().sum()
    assert total.item() == pytest.approx(1.0, abs=1e-5)


def test_uniform_distribution_scores_exactly_8_bits_per_dim():
    # The bpd of probability 1/256 per dimension is 8 by definition ...
    dims = 3 * 32 * 32
    assert bits_per_dim(dims * math.log(256), dims) == pytest.approx(8.0, rel=1e-15)
    # ... and a DMOL realises it: K = 256 equally weighted components, one per bin centre, with log s = -20
    # (bin half-width ≈ 2e6 scales) puts 1/256 on every value up to float rounding.
    lik = DiscretizedLogisticMixture(1, 256, log_scale_min=-20.0)
    params = torch.cat([torch.zeros(256), GRID.float(), torch.full((256,), -20.0)]).view(1, -1, 1, 1)
    x = GRID.float().view(1, 1, 16, 16)
    nll = -lik.log_prob(params.expand(1, -1, 16, 16), x)
    assert bits_per_dim(nll, 256).item() == pytest.approx(8.0, abs=1e-6)


def test_edge_values_use_the_open_ended_bins():
    lik = DiscretizedLogisticMixture(1, 1)
    mu, log_s = torch.tensor([0.3, -0.9, 0.95]), torch.tensor([-2.0, -4.0, 0.5])
    params = torch.stack([torch.zeros(3), mu, log_s], 0).view(1, 3, 1, 3).double()
    inv_s = torch.exp(-log_s.double())
    lower = lik.log_prob(params, torch.full((1, 1, 1, 3), -1.0, dtype=torch.float64), per_pixel=True)
    upper = lik.log_prob(params, torch.full((1, 1, 1, 3), 1.0, dtype=torch.float64), per_pixel=True)
    # value 0: log σ((-1 + 1/255 - μ)/s); value 255: log(1 - σ((1 - 1/255 - μ)/s)) = log σ(-(1 - 1/255 - μ)/s)
    torch.testing.assert_close(lower.flatten(), F.logsigmoid((-1 + 1 / 255 - mu.double()) * inv_s))
    torch.testing.assert_close(upper.flatten(), F.logsigmoid(-(1 - 1 / 255 - mu.double()) * inv_s))


@pytest.mark.parametrize("chans,ar", [(3, True), (3, False), (1, True)])
def test_matches_direct_float64_computation_values_and_gradients(chans, ar):
    lik = DiscretizedLogisticMixture(chans, 5, ar)
    # components reach bin masses of e^-200, deep in PixelCNN++'s mid-bin fallback zone (mass < 1e-5)
    params = _params(lik, 3, 4, 5, log_scales=(-4.0, 1.0), means=(-1.0, 1.0))
    x = _grid_images(3, chans, 4, 5)
    p32 = params.clone().requires_grad_()
    p64 = params.double().requires_grad_()
    ours = lik.log_prob(p32, x, per_pixel=True)
    direct = _direct_log_prob(p64, x, 5, chans, ar)
    assert ours.dtype == torch.float32 and ours.shape == (3, 4, 5)
    torch.testing.assert_close(ours.double(), direct, rtol=2e-6, atol=2e-4)
    weights = torch.randn(3, 4, 5, dtype=torch.float64)
    (ours.double() * weights).sum().backward()
    (direct * weights).sum().backward()
    scale = p64.grad.abs().max()
    torch.testing.assert_close(p32.grad.double() / scale, p64.grad / scale, rtol=0, atol=2e-5)


@pytest.mark.parametrize("log_s", [-4.0, -6.5])
def test_far_tail_bins_are_exact_in_float32(log_s):
    # every value under one narrow logistic at 0: masses down to e^-660, where PixelCNN++'s float32 CDF
    # difference is 0 and its fallback approximates; the factorised form stays within float32 rounding
    lik = DiscretizedLogisticMixture(1, 1)
    params = torch.tensor([0.0, 0.0, log_s]).view(1, 3, 1, 1).expand(256, 3, 1, 1)
    x = GRID.view(256, 1, 1, 1)
    ours = lik.log_prob(params.float(), x.float(), per_pixel=True).double()
    direct = _direct_log_prob(params.double(), x, 1, 1, False)
    assert direct.min() < -50 * (1 if log_s == -4.0 else 10)
    torch.testing.assert_close(ours, direct, rtol=2e-6, atol=1e-5)


@pytest.mark.parametrize("chans,ar", [(3, True), (3, False), (1, True)])
def test_hand_written_backward_passes_gradcheck(chans, ar):
    lik = DiscretizedLogisticMixture(chans, 3, ar, validate_args=False)
    params = _params(lik, 2, 3, 3, dtype=torch.float64).requires_grad_()
    x = _grid_images(2, chans, 3, 3).double().requires_grad_()  # edge values included
    assert torch.autograd.gradcheck(lambda p, v: lik.log_prob(p, v, per_pixel=True), (params, x), fast_mode=True)


def test_log_scale_clamp_blocks_the_gradient_like_torch_clamp():
    lik = DiscretizedLogisticMixture(1, 1)
    params = torch.tensor([[0.0, 0.0], [0.1, 0.1], [-8.0, -6.0]]).view(1, 3, 1, 2).requires_grad_()
    lik.log_prob(params, torch.full((1, 1, 1, 2), 0.1 + 2 / 255)).sum().backward()
    assert params.grad[0, 2, 0, 0] == 0 and params.grad[0, 2, 0, 1] != 0  # raw -8 is clamped to -7, -6 is not


def test_channel_independent_equals_autoregressive_with_zero_coefficients():
    ar, ci = DiscretizedLogisticMixture(3, 4), DiscretizedLogisticMixture(3, 4, autoregressive=False)
    p_ci = _params(ci, 2, 3, 4)
    k = 4
    rest = p_ci[:, k:].view(2, 3, 2 * k, 3, 4)
    p_ar = torch.cat([p_ci[:, :k], torch.cat([rest, torch.zeros(2, 3, k, 3, 4)], 2).flatten(1, 2)], 1)
    x = _grid_images(2, 3, 3, 4)
    p_ci.requires_grad_(), p_ar.requires_grad_()
    lp_ci, lp_ar = ci.log_prob(p_ci, x, per_pixel=True), ar.log_prob(p_ar, x, per_pixel=True)
    torch.testing.assert_close(lp_ar, lp_ci, rtol=1e-6, atol=1e-6)
    lp_ci.sum().backward()
    lp_ar.sum().backward()
    shared = torch.cat([p_ar.grad[:, :k], p_ar.grad[:, k:].view(2, 3, 3 * k, 3, 4)[:, :, :2 * k].flatten(1, 2)], 1)
    torch.testing.assert_close(shared, p_ci.grad, rtol=1e-5, atol=1e-6)


def test_channels_last_parameters_give_identical_results():
    lik = DiscretizedLogisticMixture(3, 4)
    params, x = _params(lik, 2, 5, 6), _grid_images(2, 3, 5, 6)
    p1 = params.clone().requires_grad_()
    p2 = params.contiguous(memory_format=torch.channels_last).requires_grad_()
    lp1 = lik.log_prob(p1, x)
    lp2 = lik.log_prob(p2, x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(lp1, lp2, rtol=1e-6, atol=1e-5)
    lp1.sum().backward()
    lp2.sum().backward()
    torch.testing.assert_close(p1.grad, p2.grad, rtol=1e-5, atol=1e-6)


def test_bf16_autocast_upcasts_and_gradients_are_finite():
    lik = DiscretizedLogisticMixture(3, 5)
    head = torch.nn.Conv2d(8, lik.param_channels, 1)
    feats, x = torch.randn(2, 8, 6, 6), _grid_images(2, 3, 6, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        params = head(feats)
        lp = lik.log_prob(params, x)
    assert params.dtype == torch.bfloat16 and lp.dtype == torch.float32
    lp.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters())
    torch.testing.assert_close(lp, lik.log_prob(params.detach().float(), x))  # same maths on the bf16 values


def _empirical(samples: torch.Tensor) -> torch.Tensor:
    return torch.bincount(((samples.flatten() + 1) * 127.5).round().long(), minlength=256).double() / samples.numel()


def test_sampling_returns_grid_values_and_the_peak_of_a_sharp_mixture():
    lik = DiscretizedLogisticMixture(3, 3, log_scale_min=-12.0)
    params = _params(lik, 2, 5, 5, means=(-3.0, 3.0), log_scales=(-7.0, 1.0))
    s = lik.sample(params, generator=torch.Generator().manual_seed(0))
    assert s.shape == (2, 3, 5, 5) and s.dtype == torch.float32
    assert s.min() >= -1 and s.max() <= 1
    levels = (s + 1) * 127.5
    assert (levels - levels.round()).abs().max() < 1e-4  # bin centres v/127.5 - 1 up to float32 rounding
    # one dominant component at (R, G, B) = values (40, 200, 128) after the AR shift, log s = -12
    r, g, b = (torch.tensor(v) / 127.5 - 1 for v in (40.0, 200.0, 128.0))
    alpha, beta, gamma = 0.5, -0.3, 0.2
    k = 3
    peak = torch.zeros(1, 10 * k, 4, 4)
    peak[:, 0] = 50.0  # component 0 has all the weight
    rest = peak[:, k:].view(1, 3, 3 * k, 4, 4)
    rest[:, :, k:2 * k] = -12.0
    rest[:, 0, 0], rest[:, 1, 0] = r, g - alpha * r
    rest[:, 2, 0] = b - beta * r - gamma * g
    rest[:, :, 2 * k] = torch.atanh(torch.tensor([alpha, beta, gamma])).view(1, 3, 1, 1)
    s = lik.sample(peak, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(s, torch.stack([r, g, b]).view(1, 3, 1, 1).expand(1, 3, 4, 4), rtol=0, atol=1e-6)


def test_samples_follow_the_likelihood():
    # grey: the histogram of 40k draws matches the 256 probabilities, edges included
    lik = DiscretizedLogisticMixture(1, 2)
    params = torch.tensor([0.0, 1.0, -0.97, 0.9, -3.5, -2.5]).view(1, 6, 1, 1)
    s = lik.sample(params.expand(1, 6, 1, 40000), generator=torch.Generator().manual_seed(0))
    pmf = lik.log_prob(params.expand(256, 6, 1, 1), GRID.float().view(256, 1, 1, 1), per_pixel=True).exp().flatten()
    assert 0.5 * (_empirical(s) - pmf.double()).abs().sum() < 0.03
    # RGB, channel-AR: G = R + a quarter bin exactly (α = 1, s_G ≈ 0), so G given the sampled R is one value;
    # conditioning on the unrounded R, as PixelCNN++ does, would put a quarter of the draws one bin higher
    rgb = DiscretizedLogisticMixture(3, 1, log_scale_min=-12.0)
    p = torch.tensor([0.0, 0.0, -2.5, 20.0, 0.5 / 255, -12.0, 0.0, 0.0, -3.0, 0.0]).view(1, 10, 1, 1)
    s = rgb.sample(p.expand(1, 10, 1, 20000), generator=torch.Generator().manual_seed(1))
    r_levels = ((s[0, 0, 0] + 1) * 127.5).round()
    common = torch.mode(r_levels).values / 127.5 - 1  # the most frequent R
    g_given_r = s[0, 1, 0][(s[0, 0, 0] - common).abs() < 1e-4]
    x = torch.stack([torch.full((256,), common.item()), GRID.float(), torch.zeros(256)], 1).view(256, 3, 1, 1)
    cond = rgb.component_log_prob(p.expand(256, 10, 1, 1), x)[:, 1, 0].exp().flatten()
    assert len(g_given_r) > 300 and cond.max() > 0.999
    assert 0.5 * (_empirical(g_given_r) - cond.double()).abs().sum() < 0.02
