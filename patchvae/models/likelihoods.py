"""Pixel likelihoods: the discretized logistic mixture (DMOL) of PixelCNN++ (Salimans et al. 2017).

One tuned implementation shared by every likelihood model (spec §3.3, §6.9): Zhang et al.'s VAE / LPVAE /
FPVAE heads (spec §2.6) and Sixt's block-local PixelCNN (spec §1.2.5).

Data: 8-bit values v ∈ {0..255} enter as x = v/127.5 - 1 ∈ [-1, 1] (bin centres 2/255 apart). The mass of
a bin is the logistic CDF difference over [x - 1/255, x + 1/255]; the edge bins are open-ended: value 0
owns (-∞, -1 + 1/255] and value 255 owns [1 - 1/255, +∞), so the 256 probabilities sum to one.

Parameter layout (channel dimension of a (B, P, H, W) map, PixelCNN++ / spec §2.6 order):

* channels ``0 .. K-1``: mixture logits π_k, shared by the colour channels of a pixel;
* the rest, viewed as (C, G·K): for colour channel c, means μ_{c,k} (first K), raw log-scales (next K,
  clamped below at ``log_scale_min`` = -7), and for the channel-autoregressive RGB model raw coefficients
  (last K, through tanh), so G = 3 (AR, C = 3) or G = 2 (channel-independent or C = 1).
  P = 10K for RGB (AR), 7K for RGB (channel-independent, "ci"), 3K for one channel.

Channel autoregression (spec §2.6, default for colour per §6.7): for component k the channel means are
μ'_R = μ_R, μ'_G = μ_G + α_k x_R, μ'_B = μ_B + β_k x_R + γ_k x_G with (α, β, γ) = tanh(coefficient slots of
channels R, G, B). ``autoregressive=False`` gives the "ci" variant: channels independent given k.

Numerics (a decision; spec §2.6 describes the PixelCNN++ recipe): with a = (x + 1/255 - μ')/s,
b = (x - 1/255 - μ')/s and δ = a - b = 2/(255 s), the bin mass factorises exactly as
σ(a) - σ(b) = σ(a) · σ(-b) · (1 - e^{-δ}), so

    log P(bin) = logsigmoid(a) + logsigmoid(-b) + log(-expm1(-δ))

is evaluated in log space without cancellation. PixelCNN++ computes log(σ(a) - σ(b)) in float32, which
loses digits when both CDFs are near 1, and below a mass of 1e-5 substitutes the density at the bin
centre times the bin width; this form needs no such fallback and matches a float64 evaluation to
~1e-5 nats per pixel, where the PixelCNN++ formula is off by up to ~5e-2 (``benchmarks/dmol_speed.py``,
tests down to masses of e^-660). Edge bins drop the missing factor: log σ(a) at value 0, log σ(-b) at
value 255. It all runs in float32 even under bf16/fp16 autocast (the parameters are upcast; gradients
flow back in the caller's dtype).

Speed (spec §2.6 "CPU note", §6.9): a custom autograd function with a hand-written backward, mostly
in-place ops (fresh tensors cost page faults on CPU) and no autograd graph over the (B, C, K, H, W)
grid. Forward + backward at B=64, 3×32×32, K=10 on one CPU core: 44 ms vs 195 ms for the textbook
formula under autograd (4.5x; ``benchmarks/dmol_speed.py``). The maths runs on NCHW maps: channels_last
maps are transposed once (cheaper than the strided views, whose inner runs are only K long), and
their gradient comes back NCHW, which leaves 2.8x for a channels_last head.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from ._protocol import ELBOTerms
from .layers import gaussian_kl_per_image, gaussian_log_importance_weights, upcast

__all__ = ["DMOLNoise", "DMOLParams", "DiscreteLikelihoodVAE", "DiscretizedLogisticMixture", "bits_per_dim"]

# a finite stand-in for ±∞ on the open side of an edge bin: logsigmoid, sigmoid and x·sigmoid(-x) are all
# exactly 0 / finite there, where a true inf would give inf·0 = NaN in the backward pass
_BIG = 1e30


def bits_per_dim(nll_nats: torch.Tensor | float, num_dims: int) -> torch.Tensor | float:
    """Negative log-likelihood in nats -> bits per dimension: ``nll / (num_dims · ln 2)`` (spec §0 "BPD").

    ``num_dims`` is C·H·W of one image (3072 for 32×32 RGB); a model that gives every 8-bit value
    probability 1/256 scores exactly 8 bits/dim.
    """
    if num_dims <= 0:
        raise ValueError(f"num_dims must be the positive number of dimensions per image (C·H·W), got {num_dims}")
    return nll_nats / (num_dims * math.log(2.0))


class DMOLParams(NamedTuple):
    """Views into a (B, P, H, W) DMOL parameter map (no copies); see the module docstring for the layout."""

    logits: torch.Tensor  #: mixture logits, (B, K, H, W)
    means: torch.Tensor  #: μ, (B, C, K, H, W)
    log_scales: torch.Tensor  #: raw log s before the clamp, (B, C, K, H, W)
    coeffs: torch.Tensor | None  #: raw AR coefficients before tanh, (B, 3, K, H, W); None without AR


def _split(params: torch.Tensor, channels: int, num_mixtures: int, has_coeffs: bool) -> DMOLParams:
    batch, _, height, width = params.shape
    k = num_mixtures
    rest = params[:, k:].view(batch, channels, (3 if has_coeffs else 2) * k, height, width)
    coeffs = rest[:, :, 2 * k:] if has_coeffs else None
    return DMOLParams(params[:, :k], rest[:, :, :k], rest[:, :, k:2 * k], coeffs)


class DMOLNoise(NamedTuple):
    """The uniform numbers one call of :meth:`DiscretizedLogisticMixture.sample` consumes (see ``sample_noise``)."""

    component: torch.Tensor  #: U(0, 1) for the Gumbel-max choice of the mixture component, (B, K, H, W)
    value: torch.Tensor  #: U(0, 1) for the logistic draw of each channel, (B, C, H, W)

    def at(self, row: int, col: int) -> DMOLNoise:
        """The numbers of pixel (row, col): (B, K, 1, 1) and (B, C, 1, 1) views."""
        return DMOLNoise(self.component[..., row:row + 1, col:col + 1], self.value[..., row:row + 1, col:col + 1])


class _Terms(NamedTuple):
    """Per-component results of :func:`_component_terms`; all (B, C, K, H, W) unless noted."""

    nlp: torch.Tensor  #: -log P(x_c | x_<c, k)
    neg_a: torch.Tensor  #: -a = -(x + 1/255 - μ')/s (-BIG on the open upper edge)
    b: torch.Tensor  #: (x - 1/255 - μ')/s (-BIG on the open lower edge)
    inv_s: torch.Tensor  #: 1/s
    q: torch.Tensor  #: 1 - e^{-δ}, δ = 2/(255 s)
    coef: torch.Tensor | None  #: tanh'd AR coefficients (B, 3, K, H, W)
    interior: torch.Tensor  #: 1 for values 1..254, 0 for the edge values, (B, C, 1, H, W)


def _component_terms(p: DMOLParams, x: torch.Tensor, half: float, log_scale_min: float) -> _Terms:
    """-log P(x_c | x_<c, k) for every channel c and component k, plus what the backward pass needs.

    Written for CPU speed: every op but a few is in place (fresh tensors cost page faults), and tanh is
    evaluated as 2σ(2c) - 1 (several times cheaper than torch.tanh on CPU). Not autograd-safe; called
    without gradient tracking. x: (B, C, H, W).
    """
    x5 = x.unsqueeze(2)
    t = x5 - p.means  # x - μ, then x - μ' below
    coef = None
    if p.coeffs is not None:
        coef = torch.mul(p.coeffs, 2.0).sigmoid_().mul_(2.0).sub_(1.0)
        t[:, 1].addcmul_(coef[:, 0], x[:, 0:1], value=-1.0)
        t[:, 2].addcmul_(coef[:, 1], x[:, 0:1], value=-1.0).addcmul_(coef[:, 2], x[:, 1:2], value=-1.0)
    inv_s = torch.clamp(p.log_scales, min=log_scale_min).neg_().exp_()
    t.mul_(inv_s)  # centred and scaled
    h = inv_s * half  # half a bin in units of s
    b = t - h
    neg_a = t.neg_().sub_(h)
    upper, lower = x5 > 1.0 - half, x5 < half - 1.0
    neg_a.sub_(upper * _BIG)  # value 255: no upper bin edge, a = +BIG
    b.sub_(lower * _BIG)  # value 0: no lower bin edge, b = -BIG
    nlp = F.softplus(neg_a).add_(F.softplus(b))  # -logsigmoid(a) - logsigmoid(-b)
    q = h.mul_(-2.0).expm1_().neg_()  # 1 - e^{-δ} ∈ (0, 1]
    interior = (~(upper | lower)).to(x.dtype)
    nlp.sub_(torch.log(q).mul_(interior))
    return _Terms(nlp, neg_a, b, inv_s, q, coef, interior)


class _DMOLLogProb(torch.autograd.Function):
    """Per-pixel log-likelihood (B, H, W) with a fused, hand-written backward (w.r.t. params and x)."""

    @staticmethod
    def forward(ctx, params, x, channels, num_mixtures, has_coeffs, half, log_scale_min, track):  # type: ignore[override]
        p = _split(params, channels, num_mixtures, has_coeffs)
        r = _component_terms(p, x, half, log_scale_min)
        log_pi = F.log_softmax(p.logits, dim=1)
        joint = r.nlp.sum(1).neg_().add_(log_pi)  # log π_k + Σ_c log P(x_c | x_<c, k), (B, K, H, W)
        out = torch.logsumexp(joint, dim=1)
        if track and (ctx.needs_input_grad[0] or ctx.needs_input_grad[1]):
            resp = joint.sub_(out.unsqueeze(1)).exp_()  # posterior responsibilities of the components
            ctx.save_for_backward(params, x, r.neg_a, r.b, r.inv_s, r.q, r.coef, r.interior, resp, log_pi)
            ctx.dims = (channels, num_mixtures, has_coeffs, half, log_scale_min)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):  # type: ignore[override]
        params, x, neg_a, b, inv_s, q, coef, interior, resp, log_pi = ctx.saved_tensors
        channels, num_mixtures, has_coeffs, half, log_scale_min = ctx.dims
        # saved tensors are only read (backward may run again with retain_graph=True)
        g = grad_out.unsqueeze(1)
        w = resp * g  # dL/d joint_k, (B, K, H, W)
        w5 = w.unsqueeze(1)
        grad = gp = None
        if ctx.needs_input_grad[0]:
            grad = torch.empty_like(params)
            gp = _split(grad, channels, num_mixtures, has_coeffs)
            torch.sub(w, log_pi.exp().mul_(g), out=gp.logits)  # Σ_k w_k = g
        sa = torch.sigmoid(neg_a)  # σ(-a) = d logsigmoid(a)/da; 0 on the open upper edge
        sb = torch.sigmoid(b)  # σ(b) = -d logsigmoid(-b)/db; 0 on the open lower edge
        gm = torch.sub(sb, sa, out=gp.means) if gp is not None else torch.sub(sb, sa)
        gm.mul_(inv_s).mul_(w5)  # dL/dμ': a and b both move by -1/s per unit of μ'
        grad_x = None
        if ctx.needs_input_grad[1]:
            grad_x = gm.sum(2).neg_()  # x enters as x - μ'
            if coef is not None:
                grad_x[:, 0].add_((gm[:, 1] * coef[:, 0]).sum(1)).add_((gm[:, 2] * coef[:, 1]).sum(1))
                grad_x[:, 1].add_((gm[:, 2] * coef[:, 2]).sum(1))
        if gp is not None:
            # d/d log s: a, b and δ all scale with 1/s: b σ(b) - a σ(-a) - δ/expm1(δ), δ/expm1(δ) = δ (1 - q)/q
            delta = inv_s * (2.0 * half)
            gap = torch.div(delta, q).sub_(delta).mul_(interior)
            sb.mul_(b).add_(sa.mul_(neg_a)).sub_(gap)
            torch.mul(sb, w5, out=gp.log_scales)
            raw = _split(params, channels, num_mixtures, has_coeffs).log_scales
            gp.log_scales.masked_fill_(raw < log_scale_min, 0.0)  # the clamp's gradient
            if coef is not None:
                dtanh = coef.square().neg_().add_(1.0)
                torch.mul(gm[:, 1], x[:, 0:1], out=gp.coeffs[:, 0]).mul_(dtanh[:, 0])
                torch.mul(gm[:, 2], x[:, 0:1], out=gp.coeffs[:, 1]).mul_(dtanh[:, 1])
                torch.mul(gm[:, 2], x[:, 1:2], out=gp.coeffs[:, 2]).mul_(dtanh[:, 2])
        return grad, grad_x, None, None, None, None, None, None


class DiscretizedLogisticMixture(nn.Module):
    """Discretized mixture of logistics over ``num_bins`` values in [-1, 1], for 1 or 3 (or, "ci", any) channels.

    Args:
        channels: image channels C (1 = grey, 3 = RGB).
        num_mixtures: K (10 in both papers; 5 is a cheaper CPU option, spec §3.3).
        autoregressive: PixelCNN++ linear channel autoregression (RGB default, spec §6.7); False = "ci".
            Ignored for one channel (nothing to condition on).
        num_bins: quantisation levels (256 for 8-bit data); bin centres are 2/(num_bins-1) apart.
        log_scale_min: lower clamp of log s (-7 as in PixelCNN++).
        validate_args: check that x lies in [-1, 1] (one cheap reduction per call).

    ``likelihood.param_channels`` is the number of output channels a head must produce. The module has no
    parameters; calling it is :meth:`log_prob`.
    """

    def __init__(
        self,
        channels: int = 3,
        num_mixtures: int = 10,
        autoregressive: bool = True,
        *,
        num_bins: int = 256,
        log_scale_min: float = -7.0,
        validate_args: bool = True,
    ) -> None:
        super().__init__()
        self.param_channels = self.num_params(channels, num_mixtures, autoregressive)
        if num_bins < 2:
            raise ValueError(f"num_bins must be >= 2 (256 for 8-bit images), got {num_bins}")
        self.channels = channels
        self.num_mixtures = num_mixtures
        self.autoregressive = autoregressive and channels > 1
        self.num_bins = num_bins
        self.log_scale_min = float(log_scale_min)
        self.validate_args = validate_args
        self._half = 1.0 / (num_bins - 1)  # half bin width in [-1, 1] units

    @staticmethod
    def num_params(channels: int, num_mixtures: int = 10, autoregressive: bool = True) -> int:
        """Output channels of a head feeding this likelihood: 10K (RGB, AR), 7K (RGB, ci), 3K (grey)."""
        if num_mixtures < 1:
            raise ValueError(f"num_mixtures (K) must be >= 1, got {num_mixtures}")
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        if autoregressive and channels not in (1, 3):
            raise ValueError(
                f"the channel-autoregressive DMOL is defined for 1 or 3 channels (PixelCNN++ coefficients), got "
                f"{channels}; use autoregressive=False for {channels} channels independent given the component"
            )
        per_channel = 3 if autoregressive and channels == 3 else 2
        return num_mixtures * (1 + per_channel * channels)

    def extra_repr(self) -> str:
        mode = "autoregressive" if self.autoregressive else "channel-independent"
        return (f"channels={self.channels}, num_mixtures={self.num_mixtures}, {mode}, num_bins={self.num_bins}, "
                f"param_channels={self.param_channels}")

    def split(self, params: torch.Tensor) -> DMOLParams:
        """Named views of a (B, P, H, W) parameter map: logits, means, raw log-scales, raw coefficients."""
        self._check_params(params)
        return _split(params, self.channels, self.num_mixtures, self.autoregressive)

    # ------------------------------------------------------------------------------------------ checks
    def _check_params(self, params: torch.Tensor) -> None:
        if not isinstance(params, torch.Tensor) or params.ndim != 4:
            shape = tuple(params.shape) if isinstance(params, torch.Tensor) else type(params).__name__
            raise ValueError(f"expected DMOL parameters of shape (B, P, H, W), got {shape}")
        if params.shape[1] != self.param_channels:
            raise ValueError(
                f"expected {self.param_channels} DMOL parameter channels ({self.extra_repr()}) but got "
                f"{params.shape[1]}; build the head with out_chans=likelihood.param_channels"
            )

    def _check_pair(self, params: torch.Tensor, x: torch.Tensor) -> None:
        self._check_params(params)
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != self.channels:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"expected images of shape (B, {self.channels}, H, W), got {shape}")
        if (x.shape[0], *x.shape[2:]) != (params.shape[0], *params.shape[2:]):
            raise ValueError(
                f"images {tuple(x.shape)} and DMOL parameters {tuple(params.shape)} differ in batch or spatial size"
            )
        if not x.is_floating_point():
            raise TypeError(f"expected float images in [-1, 1], got dtype {x.dtype}; map uint8 v to v / 127.5 - 1")
        if self.validate_args and not torch.compiler.is_compiling():
            lo, hi = torch.aminmax(x)
            if not (lo >= -1.0 and hi <= 1.0):  # also catches NaN
                raise ValueError(
                    f"images must lie in [-1, 1] (v / 127.5 - 1 for 8-bit v), got values in [{lo.item():.7g}, "
                    f"{hi.item():.7g}]; rescale them or pass validate_args=False"
                )

    # ------------------------------------------------------------------------------------------ maths
    def log_prob(self, params: torch.Tensor, x: torch.Tensor, *, per_pixel: bool = False) -> torch.Tensor:
        """log p(x | params) in nats: (B,) summed over pixels, or (B, H, W) with ``per_pixel=True``.

        Computed in float32 for float32/bf16/fp16 inputs (float64 stays float64), autocast or not;
        differentiable w.r.t. params (and x) through a hand-written backward.

        Args:
            params: (B, P, H, W) head output, P = ``param_channels``; any float dtype and memory format.
            x: (B, C, H, W) images on the bin grid v/127.5 - 1 (not checked: an off-grid x is scored as the
                centre of a bin of the same width).
        """
        self._check_pair(params, x)
        # channels_last maps are transposed once: cheaper than running on the strided views (inner runs of K)
        params, x = upcast(params).contiguous(), upcast(x).contiguous()
        with torch.autocast(params.device.type, enabled=False):
            out = _DMOLLogProb.apply(params, x, self.channels, self.num_mixtures, self.autoregressive, self._half,
                                     self.log_scale_min, torch.is_grad_enabled())
        return out if per_pixel else out.sum((1, 2))

    forward = log_prob

    @torch.no_grad()
    def component_log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log P(x_c | x_<c, component k) for every channel and component, (B, C, K, H, W), float32.

        The per-component conditionals the mixture is built from (diagnostics, tests); not differentiable.
        """
        self._check_pair(params, x)
        p = _split(upcast(params), self.channels, self.num_mixtures, self.autoregressive)
        return _component_terms(p, upcast(x), self._half, self.log_scale_min).nlp.neg_()

    def sample_noise(
        self, batch: int, height: int, width: int, *, generator: torch.Generator | None = None,
        device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
    ) -> DMOLNoise:
        """The uniform numbers :meth:`sample` consumes for a (batch, ·, height, width) map, drawn in its order.

        Autoregressive samplers that produce an image pixel by pixel draw them once, up front, and pass
        each pixel's slice (``noise.at(i, j)``) to ``sample(..., noise=...)``: samplers that visit the
        pixels differently (a whole-image pass per pixel, a local window per pixel) then consume the same
        numbers and give the same image. ``sample(params, generator=g)`` equals
        ``sample(params, noise=sample_noise(B, H, W, generator=g2))`` for equally seeded ``g`` and ``g2``.
        """
        component = torch.rand((batch, self.num_mixtures, height, width), generator=generator, device=device, dtype=dtype)
        value = torch.rand((batch, self.channels, height, width), generator=generator, device=device, dtype=dtype)
        return DMOLNoise(component, value)

    @torch.no_grad()
    def sample(
        self, params: torch.Tensor, *, generator: torch.Generator | None = None, noise: DMOLNoise | None = None
    ) -> torch.Tensor:
        """Draw x ~ p(x | params): (B, P, H, W) -> (B, C, H, W) on the bin grid in [-1, 1], float32.

        Exact sampling from the discretized distribution: a component per pixel by Gumbel-max over the
        logits, then channel by channel a logistic sample rounded to the nearest bin centre (values beyond
        ±1 fall into the open edge bins). Later channels condition on the *rounded* earlier ones, as the
        likelihood does (PixelCNN++ conditions on the unrounded, clamped value; spec §2.6 "Sampling").

        The randomness is ``noise`` (:meth:`sample_noise` for this map, not modified) if given, else
        drawn from ``generator`` (torch's global generator by default).
        """
        self._check_params(params)
        params = upcast(params)
        p = _split(params, self.channels, self.num_mixtures, self.autoregressive)
        batch, k, height, width = p.logits.shape
        tiny, eps = torch.finfo(params.dtype).tiny, torch.finfo(params.dtype).eps
        if noise is None:
            noise = self.sample_noise(batch, height, width, generator=generator, device=params.device, dtype=params.dtype)
        elif (tuple(noise.component.shape), tuple(noise.value.shape)) != ((batch, k, height, width),
                                                                           (batch, self.channels, height, width)):
            raise ValueError(
                f"noise of shapes {tuple(noise.component.shape)} and {tuple(noise.value.shape)} does not fit parameters "
                f"{tuple(params.shape)}; draw it with sample_noise({batch}, {height}, {width})"
            )

        def uniform(t: torch.Tensor) -> torch.Tensor:  # a fresh tensor: the caller's noise is not modified
            return t.to(device=params.device, dtype=params.dtype).clamp(tiny, 1.0 - eps)

        gumbel = uniform(noise.component).log_().neg_().log_().neg_()
        index = (p.logits + gumbel).argmax(1, keepdim=True)  # (B, 1, H, W)
        index = index.unsqueeze(1).expand(batch, self.channels, 1, height, width)

        def pick(t: torch.Tensor) -> torch.Tensor:
            return t.gather(2, index).squeeze(2)  # (B, C, H, W)

        u = uniform(noise.value)
        scale = pick(p.log_scales).clamp_(min=self.log_scale_min).exp_()
        y = pick(p.means).add_(scale.mul_(u.log() - torch.log1p(-u)))
        levels = (self.num_bins - 1) / 2.0
        out = torch.empty_like(y)
        coef = torch.tanh(pick(p.coeffs)) if p.coeffs is not None else None
        for c in range(self.channels):
            v = y[:, c]
            if coef is not None and c == 1:
                v = v + coef[:, 0] * out[:, 0]
            elif coef is not None and c == 2:
                v = v + coef[:, 1] * out[:, 0] + coef[:, 2] * out[:, 1]
            out[:, c] = v.clamp(-1.0, 1.0).add_(1.0).mul_(levels).round_().div_(levels).sub_(1.0)
        return out

    bits_per_dim = staticmethod(bits_per_dim)


class DiscreteLikelihoodVAE:
    """Mixin: the −ELBO machinery shared by the VAEs whose decoder scores pixels with a DMOL (Zhang's PixelVAEs,
    Sixt's patch VAEs), for a diagonal Gaussian q(z | x) and the prior N(0, I).

    The class provides ``encode(x)`` (a posterior with ``mean`` and ``var``), ``decoder.params(x, z)`` and
    ``likelihood``; ``_likelihood_posterior(x)`` (default: ``encode``) may validate the input further.
    """

    def _likelihood_posterior(self, x: torch.Tensor):  # type: ignore[no-untyped-def]
        return self.encode(x)  # type: ignore[attr-defined]

    def _elbo_pass(self, x: torch.Tensor, sample: bool | None):  # type: ignore[no-untyped-def]
        """(params, posterior, z, −log p(x | z) (B,), KL (B,)): z ~ q in training mode (or ``sample=True``), else μ."""
        post = self._likelihood_posterior(x)
        z = post.mean
        if self.training if sample is None else sample:  # type: ignore[attr-defined]
            z = post.mean + post.var.sqrt() * torch.randn_like(post.mean)
        params = self.decoder.params(x, z)  # type: ignore[attr-defined]
        nll = self.likelihood.log_prob(params, x).neg()  # type: ignore[attr-defined]
        return params, post, z, nll, gaussian_kl_per_image(post.mean, post.var)

    def rate(self, x: torch.Tensor) -> torch.Tensor:
        """KL(q(z | x) ‖ N(0, I)) per item in nats, (B,)."""
        post = self._likelihood_posterior(x)
        return gaussian_kl_per_image(post.mean, post.var)

    def elbo_terms(self, x: torch.Tensor) -> ELBOTerms:
        """−log p(x | z) with one z ~ q(z | x) and the analytic KL, nats per item (B,) each."""
        _, _, _, nll, kl = self._elbo_pass(x, True)
        return ELBOTerms(nll, kl)

    def log_importance_weights(self, x: torch.Tensor, num_samples: int) -> torch.Tensor:
        """log p(x | z_k) + log p(z_k) − log q(z_k | x), z_k ~ q(z | x), k = 1..num_samples: (B, num_samples) nats."""
        post = self._likelihood_posterior(x)
        return gaussian_log_importance_weights(
            post.mean, post.var, lambda z: self.likelihood.log_prob(self.decoder.params(x, z), x),  # type: ignore[attr-defined]
            num_samples)
