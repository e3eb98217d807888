"""Test bits per dimension of a likelihood VAE: the single-sample negative ELBO and the IWAE-k bound.

    from patchvae.evaluation import bpd
    result = bpd(model, test_images, seeds=3, iwae_k=100)
    print(result.summary())   # -ELBO 3.21 ± 0.00 bits/dim (reconstruction 3.05 + KL 0.16), IWAE-100 3.18 ...

Works for any :class:`patchvae.models.LikelihoodModel` (``elbo_terms`` and ``log_importance_weights``,
a discrete likelihood over the 256 values of each sub-pixel, x in [-1, 1]); other models are refused
with a one-line error. Definitions (spec ``sixt_zhang.md`` §2.9 "BPD", §1.6.2, §6.6):

* **BPD** (Zhang et al. 2022, footnote 4): ``E_x[−ELBO(x)] / (D · ln 2)`` with D = C·H·W of the
  model's input (784 for 28×28 MNIST, 3072 for 32×32 RGB; zero-padded inputs count their padding),
  −ELBO(x) = −log p(x | z) + KL(q(z | x) ‖ p(z)) with **one** posterior sample z per image, the model
  in eval mode, averaged over the images (not importance weighted). ``bpd`` is the mean over
  images of ``(nll + kl) / (D ln 2)``.
* The two readings of Sixt's "cross entropy" (S Table 3, §1.6.2): ``reconstruction_bpd`` =
  E[−log₂ p(x | z)] / D (reading a) and ``bpd`` = the full −ELBO (reading b, the standard bits/dim);
  ``kl_bpd`` = E[KL] / (D ln 2) is their difference.
* **IWAE-k** (an option, reported separately): ``−E_x[log (1/k) Σ_j w_j] / (D ln 2)`` with the log
  importance weights ``log w_j = log p(x | z_j) + log p(z_j) − log q(z_j | x)``, z_j ~ q(z | x),
  computed with a float64 log-sum-exp. It is a tighter bound: IWAE-k BPD ≤ the ELBO's in
  expectation, equal for k = 1 in expectation, and → −log₂ p(x) / D as k grows. ``iwae_chunk`` draws
  the k samples in chunks (the same estimator; memory bounded by the chunk).
* **Seeds**: each seed seeds torch's generators for the whole pass (the posterior samples); the
  result keeps every seed's value and their mean ± sample standard deviation. The samples come
  from the model's own draws (the protocol has no noise argument), so with the same seed they
  depend on the batch size; the per-image values are otherwise batch-independent.

Sums are accumulated in float64; the model runs in float32 by default (``amp=None``).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .._runtime import autocast, resolve_device
from ._metric_utils import (
    Moments,
    check_seeds,
    evaluating,
    image_batches,
    mean_std,
    resolve_model,
)

__all__ = ["BPDResult", "bpd", "is_likelihood_model", "log_mean_exp"]

_LN2 = math.log(2.0)


@dataclass(frozen=True)
class BPDResult:
    """Bits per dimension of a likelihood VAE over a set of images (see the module docstring).

    Headline fields are the mean over seeds; ``*_std`` the sample standard deviation over seeds
    (0 for one seed) and ``*_per_seed`` each seed's value. ``iwae_*`` are None without ``iwae_k``.
    """

    bpd: float  #: −ELBO / (D ln 2), single-sample (Zhang's BPD; Sixt's cross entropy, reading b)
    bpd_std: float
    bpd_per_seed: tuple[float, ...]
    reconstruction_bpd: float  #: E[−log p(x|z)] / (D ln 2) (Sixt's cross entropy, reading a)
    kl_bpd: float  #: E[KL] / (D ln 2)
    nll_nats: float  #: E[−ELBO] per image, nats (mean over seeds)
    kl_nats: float  #: E[KL] per image, nats
    num_images: int
    num_dims: int  #: D = C·H·W
    seeds: tuple[int, ...]
    iwae_k: int | None = None
    iwae_bpd: float | None = None
    iwae_bpd_std: float | None = None
    iwae_bpd_per_seed: tuple[float, ...] | None = None
    elapsed_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict of every field (``metric`` = "bpd")."""
        out: dict[str, Any] = {"metric": "bpd"}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def scalars(self) -> dict[str, float]:
        out = {"bpd": self.bpd, "reconstruction_bpd": self.reconstruction_bpd, "kl_bpd": self.kl_bpd}
        if self.iwae_bpd is not None:
            out[f"iwae{self.iwae_k}_bpd"] = self.iwae_bpd
        return out

    def summary(self) -> str:
        text = (
            f"-ELBO {self.bpd:.4f} ± {self.bpd_std:.4f} bits/dim (reconstruction {self.reconstruction_bpd:.4f} + "
            f"KL {self.kl_bpd:.4f})"
        )
        if self.iwae_bpd is not None:
            text += f", IWAE-{self.iwae_k} {self.iwae_bpd:.4f} ± {self.iwae_bpd_std:.4f} bits/dim"
        return text + f"; D = {self.num_dims}, {self.num_images} images, {len(self.seeds)} seed(s)"


def is_likelihood_model(model: Any) -> bool:
    """Whether ``model`` implements :class:`patchvae.models.LikelihoodModel` (``elbo_terms``, ``log_importance_weights``)."""
    from ..models import LikelihoodModel

    return isinstance(model, LikelihoodModel)


def _refuse(model: Any) -> ValueError:
    return ValueError(
        f"bits per dimension need a model with a discrete likelihood (the patchvae.models.LikelihoodModel protocol: "
        f"elbo_terms and log_importance_weights); {type(model).__name__} has none"
    )


def log_mean_exp(values: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``log((1/k) Σ exp(values))`` along ``dim``, in float64 and numerically stable (k = size of ``dim``)."""
    v = values.to(torch.float64)
    return torch.logsumexp(v, dim=dim) - math.log(v.shape[dim])


def _check_unit_range(x: torch.Tensor) -> None:
    lo, hi = float(x.min()), float(x.max())
    if lo < -1.0 - 1e-3 or hi > 1.0 + 1e-3:
        raise ValueError(
            f"a likelihood model takes images in [-1, 1], but its preprocessed inputs span [{lo:.3g}, {hi:.3g}]: "
            "its data_config must normalise with mean 0.5 and std 0.5"
        )


def bpd(
    model: nn.Module | str | os.PathLike,
    inputs: Any,
    *,
    seeds: int = 1,
    seed: int = 0,
    iwae_k: int | None = None,
    iwae_chunk: int = 64,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    amp: str | None = None,
    preprocessed: bool = False,
    progress: bool = False,
) -> BPDResult:
    """Test bits per dimension of ``model`` over ``inputs`` (see the module docstring for the definitions).

    Args:
        model: a :class:`~patchvae.models.LikelihoodModel`, a zoo name with weights or a weights folder.
        inputs: anything :func:`patchvae.extract_features` takes; raw images get the weights' own
            preprocessing (it must map them to [-1, 1]); ``preprocessed=True`` takes normalised tensors.
        seeds: number of seeds (``seed``, ``seed + 1`` ...): each re-runs the pass with new posterior samples.
        iwae_k: also compute the IWAE-k bound with k importance samples per image (None: not computed).
        iwae_chunk: importance samples drawn per call of ``log_importance_weights``.
        batch_size, device, amp, progress: as in :func:`patchvae.evaluation.part_health`.

    Raises:
        ValueError: the model has no discrete likelihood, inputs outside [-1, 1], or empty inputs.
    """
    import time

    start = time.perf_counter()
    model = resolve_model(model)
    if not is_likelihood_model(model):
        raise _refuse(model)
    check_seeds(seeds)
    if iwae_k is not None and (isinstance(iwae_k, bool) or not isinstance(iwae_k, int) or iwae_k < 1):
        raise ValueError(f"iwae_k must be an int >= 1 or None, got {iwae_k!r}")
    if isinstance(iwae_chunk, bool) or not isinstance(iwae_chunk, int) or iwae_chunk < 1:
        raise ValueError(f"iwae_chunk must be an int >= 1, got {iwae_chunk!r}")
    device = resolve_device(device) if device is not None else None
    seed_list = tuple(seed + i for i in range(seeds))
    per_seed: list[tuple[float, float, float | None]] = []  # (nll nats, kl nats, iwae nats)
    num_images = num_dims = 0
    with evaluating(model, device) as target, torch.no_grad():
        fork = [target] if target.type == "cuda" else []
        for s in seed_list:
            nll, kl, iwae = Moments(), Moments(), Moments()
            with torch.random.fork_rng(devices=fork):
                torch.manual_seed(s)
                for x in image_batches(model, inputs, batch_size=batch_size, device=target, preprocessed=preprocessed,
                                       progress=progress, desc=f"bpd seed {s}"):
                    _check_unit_range(x)
                    dims = int(x[0].numel())
                    if num_dims and dims != num_dims:
                        raise ValueError(f"all images need the same size for bits/dim, got D = {num_dims} and {dims}")
                    num_dims = dims
                    with autocast(target, amp):
                        terms = model.elbo_terms(x)
                        rec, k_l = terms.reconstruction_nll.double(), terms.kl.double()
                        nll.update(rec + k_l)
                        kl.update(k_l)
                        if iwae_k is not None:
                            chunks = []
                            for done in range(0, iwae_k, iwae_chunk):
                                chunks.append(model.log_importance_weights(x, min(iwae_chunk, iwae_k - done)).double())
                            iwae.update(-log_mean_exp(torch.cat(chunks, dim=1), dim=1))
            num_images = nll.count
            per_seed.append((nll.mean, kl.mean, iwae.mean if iwae_k is not None else None))
    scale = num_dims * _LN2
    bpds = [n / scale for n, _, _ in per_seed]
    mean_bpd, std_bpd = mean_std(bpds)
    nll_nats = sum(n for n, _, _ in per_seed) / len(per_seed)
    kl_nats = sum(k for _, k, _ in per_seed) / len(per_seed)
    iwae_fields: dict[str, Any] = {}
    if iwae_k is not None:
        iwae_bpds = [float(i) / scale for _, _, i in per_seed if i is not None]
        m, s = mean_std(iwae_bpds)
        iwae_fields = {"iwae_k": iwae_k, "iwae_bpd": m, "iwae_bpd_std": s, "iwae_bpd_per_seed": tuple(iwae_bpds)}
    return BPDResult(
        bpd=mean_bpd, bpd_std=std_bpd, bpd_per_seed=tuple(bpds),
        reconstruction_bpd=(nll_nats - kl_nats) / scale, kl_bpd=kl_nats / scale,
        nll_nats=nll_nats, kl_nats=kl_nats, num_images=num_images, num_dims=num_dims, seeds=seed_list,
        elapsed_seconds=time.perf_counter() - start, **iwae_fields,
    )
