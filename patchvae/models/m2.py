"""Semi-supervised M2 (Kingma et al. 2014) with a local PixelCNN decoder: LPVAE-M2 of Zhang et al. 2022 §6.

::

    p(x, y, z) = p(y) p(z) p(x | y, z)         p(y) = 1/K, p(z) = N(0, I)
    q(y | x)   = Classifier(x)                  the auxiliary classifier, what a user keeps
    q(z | x, y) = N(μ, σ²) = Enc([x, onehot(y)]), σ = softplus(·)
    p(x | y, z) : Dec([onehot(y), z]) ─► c (B, C_cond, H, W) ─► PixelCNN head ─► DMOL   (the PixelVAE decoder)

Bounds (Zhang eqs. 9-11, spec §2.11), nats per image:

* labelled: ELBO(x, y) = E_q(z|x,y) log p(x | y, z) + log p(y) − KL(q(z | x, y) ‖ p(z))  (:meth:`M2VAE.labelled_elbo`)
* unlabelled: ELBO(x) = Σ_y q(y | x) ELBO(x, y) + H(q(y | x)), every label enumerated: the batch is scored K
  times, once per label, in one pass (:meth:`M2VAE.unlabelled_elbo`)
* the objective of :class:`patchvae.training.tasks.M2Task`: mean(−ELBO(x_l, y_l)) + mean(−ELBO(x_u)) +
  α · mean(−log q(y_l | x_l)).

Decoders: ``horizon=1`` / ``2`` is LPVAE-M2 (the paper's MNIST / SVHN models); ``horizon=0`` is the plain M2
decoder with the same DMOL likelihood (each pixel independent given y, z: the 1×1 mask-A head sees no
context), so the two differ only in the local context. The paper's M2 row is Kingma's original (a Bernoulli /
Gaussian likelihood): ours is the like-for-like baseline (listed in docs/models.md).

Networks (spec §2.11 [REF]):

* ``arch="mlp"`` (MNIST): Enc [x (784), y (10)] → 500 (BN, ReLU) → 500 (BN, ReLU) → μ, σ (64); Dec [y, z] (74)
  → 500 (BN, ReLU) → 500 (BN, ReLU) → C_cond·28·28; classifier 784 → 500 → 500 → 10 (BN, ReLU).
* ``arch="conv"`` (SVHN): Enc Conv 5×5/2 3→32→64→128→256 (BN, LeakyReLU 0.2) flattened (1024) ⊕ y → Linear(10,
  20) (BN, LReLU) → 256 (BN, LReLU) → μ, σ (64); Dec [y, z] → 512 → 1024 (BN, LReLU) → (256, 2, 2) → ConvT 5×5
  256→128 (6×6) → 128→64 (10×10) → 64→64 (14×14) (BN, LReLU) → ConvT 6×6/2 64→C_cond (32×32); classifier Conv
  5×5 3→6, MaxPool 2, Conv 5×5 6→16, MaxPool 2, FC 400 → 128 → 64 → 10 (BN, ReLU, Dropout 0.3 after each of
  the four hidden stages).

Decisions (ours, listed in docs/models.md): inputs are 8-bit images as v/127.5 - 1 (the DMOL scores the bins);
z is sampled in training and is μ in eval mode (override with ``sample=``), as the PixelVAEs; the label
prior is uniform.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..data.config import DataConfig
from ._builder import build_model_with_cfg
from ._pretrained import PretrainedCfg
from ._protocol import (
    NoiseFn,
    RepresentationInfo,
    check_representation_names,
    default_noise,
    gaussian_latent_infos,
    gaussian_representation,
    select,
)
from ._registry import register_model
from .beta_vae import GaussianPosterior
from .layers import check_images, gaussian_kl_per_image, upcast
from .likelihoods import DiscretizedLogisticMixture
from .pixelcnn import LocalPixelCNNHead
from .pixelvae import DECODE_SEED, MLPConditioner, PixelVAEDecoder

__all__ = ["M2_MNIST", "M2_SVHN", "M2Encoder", "M2Output", "M2Posterior", "M2VAE", "label_entropy"]

#: MNIST networks: 28×28 grey as v/127.5 - 1
M2_MNIST = DataConfig((1, 28, 28), (0.5,), (0.5,), resize_mode="pad", crop_pct=1.0)
#: SVHN networks: 32×32 RGB as v/127.5 - 1 (no flips: digits)
M2_SVHN = DataConfig((3, 32, 32), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), resize_mode="resize_crop")


class M2Output(NamedTuple):
    """:meth:`M2VAE.forward` by name; the bounds are in nats per image."""

    class_logits: torch.Tensor  #: log q(y | x) up to a constant, (B, K)
    elbo: torch.Tensor  #: ELBO(x, y) for the given labels, else the unlabelled bound ELBO(x), (B,)
    label_elbos: torch.Tensor | None  #: ELBO(x, y) for every label y (unlabelled batches only), (B, K)


def label_entropy(logits: torch.Tensor) -> torch.Tensor:
    """H(q(y | x)) in nats from logits (B, K) -> (B,)."""
    log_q = F.log_softmax(upcast(logits), dim=1)
    return -(log_q.exp() * log_q).sum(1)


def _posterior(features: torch.Tensor, mean: nn.Linear, std: nn.Linear) -> GaussianPosterior:
    sigma = F.softplus(upcast(std(features)))
    return GaussianPosterior(features, upcast(mean(features)), sigma.square())


# --------------------------------------------------------------------------- MNIST networks
class MLPClassifier(nn.Module):
    """q(y | x): C·H·W → hidden (BN, ReLU) → hidden (BN, ReLU) → K logits."""

    def __init__(self, in_dim: int, num_labels: int, hidden_dim: int = 500) -> None:
        super().__init__()
        self.fc1 = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU())
        self.fc2 = nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU())
        self.logits = nn.Linear(hidden_dim, num_labels)

    def layers(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``classifier_hidden1``, ``classifier_hidden2`` (B, hidden) and ``class_logits`` (B, K)."""
        h1 = self.fc1(x.flatten(1))
        h2 = self.fc2(h1)
        return {"classifier_hidden1": h1, "classifier_hidden2": h2, "class_logits": self.logits(h2)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)["class_logits"]


class MLPLabelEncoder(nn.Module):
    """q(z | x, y): [x (C·H·W), onehot(y) (K)] → hidden (BN, ReLU) → hidden (BN, ReLU) → μ, σ = softplus."""

    def __init__(self, in_dim: int, num_labels: int, latent_dim: int, hidden_dim: int = 500) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim + num_labels, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(),
            nn.Linear(hidden_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(),
        )
        self.mean = nn.Linear(hidden_dim, latent_dim)
        self.std = nn.Linear(hidden_dim, latent_dim)

    def forward(self, x: torch.Tensor, onehot: torch.Tensor) -> GaussianPosterior:
        return _posterior(self.net(torch.cat([x.flatten(1), onehot.to(x.dtype)], 1)), self.mean, self.std)


# --------------------------------------------------------------------------- SVHN networks
def _conv_bn_lrelu(in_chans: int, out_chans: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_chans, out_chans, 5, 2, 2), nn.BatchNorm2d(out_chans), nn.LeakyReLU(0.2))


def _linear_bn_lrelu(in_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.BatchNorm1d(out_dim), nn.LeakyReLU(0.2))


class ConvLabelEncoder(nn.Module):
    """q(z | x, y) of the SVHN networks: four 5×5/2 convs (32×32 → 2×2) ⊕ an embedded label → 256 → μ, σ."""

    def __init__(self, in_chans: int, num_labels: int, latent_dim: int, widths: Sequence[int] = (32, 64, 128, 256),
                 hidden_dim: int = 256) -> None:
        super().__init__()
        chans = [in_chans, *widths]
        self.convs = nn.Sequential(*[_conv_bn_lrelu(a, b) for a, b in zip(chans, chans[1:])])
        self.label = _linear_bn_lrelu(num_labels, 20)
        self.fc = _linear_bn_lrelu(widths[-1] * 2 * 2 + 20, hidden_dim)
        self.mean = nn.Linear(hidden_dim, latent_dim)
        self.std = nn.Linear(hidden_dim, latent_dim)

    def forward(self, x: torch.Tensor, onehot: torch.Tensor) -> GaussianPosterior:
        h = torch.cat([self.convs(x).flatten(1), self.label(onehot.to(x.dtype))], 1)
        return _posterior(self.fc(h), self.mean, self.std)


class ConvConditioner(nn.Module):
    """Dec of the SVHN networks: [y, z] → 512 → 1024 → (256, 2, 2) → 3 ConvT 5×5 (6, 10, 14) → ConvT 6×6/2 → 32×32."""

    def __init__(self, in_dim: int, cond_chans: int, widths: Sequence[int] = (128, 64, 64)) -> None:
        super().__init__()
        self.fc = nn.Sequential(_linear_bn_lrelu(in_dim, 512), _linear_bn_lrelu(512, 1024))
        chans = [256, *widths]
        self.up = nn.Sequential(*[
            nn.Sequential(nn.ConvTranspose2d(a, b, 5, 1), nn.BatchNorm2d(b), nn.LeakyReLU(0.2))
            for a, b in zip(chans, chans[1:])
        ])
        self.out = nn.ConvTranspose2d(chans[-1], cond_chans, 6, 2)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.out(self.up(self.fc(code).view(code.shape[0], 256, 2, 2)))


class ConvClassifier(nn.Module):
    """q(y | x) of the SVHN networks: LeNet-style, BN + ReLU on every hidden layer, Dropout 0.3 after each stage."""

    def __init__(self, in_chans: int, num_labels: int, img_size: int = 32, dropout: float = 0.3) -> None:
        super().__init__()
        def stage(a: int, b: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(a, b, 5), nn.BatchNorm2d(b), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(dropout))
        self.conv1, self.conv2 = stage(in_chans, 6), stage(6, 16)
        side = ((img_size - 4) // 2 - 4) // 2
        self.fc1 = nn.Sequential(nn.Linear(16 * side * side, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(dropout))
        self.fc2 = nn.Sequential(nn.Linear(128, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(dropout))
        self.logits = nn.Linear(64, num_labels)

    def layers(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``classifier_hidden1`` (B, 128), ``classifier_hidden2`` (B, 64) and ``class_logits`` (B, K)."""
        h1 = self.fc1(self.conv2(self.conv1(x)).flatten(1))
        h2 = self.fc2(h1)
        return {"classifier_hidden1": h1, "classifier_hidden2": h2, "class_logits": self.logits(h2)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)["class_logits"]


# --------------------------------------------------------------------------- the encoder: q(y | x), then q(z | x, y)
class M2Posterior(NamedTuple):
    """q(y | x) and q(z | x, y) at one label per image (the given one, else the classifier's argmax)."""

    features: torch.Tensor  #: the input of the latent heads, (B, hidden)
    mean: torch.Tensor  #: μ, (B, D)
    var: torch.Tensor  #: σ², (B, D)
    class_logits: torch.Tensor  #: logits of q(y | x), (B, K)
    label: torch.Tensor  #: the label y that q(z | x, y) is conditioned on, (B,)

    def code(self) -> torch.Tensor:
        """The decoder's input [onehot(y), μ], (B, K + D)."""
        return torch.cat([F.one_hot(self.label.long(), self.class_logits.shape[1]).to(self.mean), self.mean], 1)


class M2Encoder(nn.Module):
    """x -> :class:`M2Posterior`: the classifier q(y | x) and the label-conditioned Gaussian q(z | x, y)."""

    def __init__(self, classifier: nn.Module, posterior: nn.Module, num_labels: int) -> None:
        super().__init__()
        self.classifier = classifier
        self.posterior = posterior
        self.num_labels = num_labels

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> M2Posterior:
        logits = self.classifier(x)
        label = logits.argmax(1) if y is None else y
        post = self.posterior(x, F.one_hot(label.long(), self.num_labels).float())
        return M2Posterior(post.features, post.mean, post.var, logits, label)


# --------------------------------------------------------------------------- the model
class M2VAE(nn.Module):
    """M2 / LPVAE-M2 (Zhang et al. 2022 §6) with the MNIST (MLP) or SVHN (conv) networks.

    Args:
        arch: ``"mlp"`` or ``"conv"`` (spec §2.11).
        horizon: h of the local PixelCNN head: 0 = the plain M2 decoder (no pixel context), 1 (MNIST), 2 (SVHN).
        in_chans / img_size: 1 / 28 (MNIST), 3 / 32 (SVHN; the conv networks need 32×32).
        num_labels: K, the classes of y (10).
        latent_dim: Dim(z) (64).
        hidden_dim: width of the MLP networks (500).
        cond_chans: channels of c = Dec(y, z) (32 MNIST, 100 SVHN).
        head_width / head_blocks / head_convs_per_block: the PixelCNN trunk (256 / 5 / 3 in [REF]).
        num_mixtures: K of the DMOL (10).
    """

    def __init__(
        self,
        arch: str = "mlp",
        horizon: int = 1,
        in_chans: int = 1,
        img_size: int = 28,
        num_labels: int = 10,
        latent_dim: int = 64,
        hidden_dim: int = 500,
        cond_chans: int = 32,
        head_width: int = 256,
        head_blocks: int = 5,
        head_convs_per_block: int = 3,
        num_mixtures: int = 10,
    ) -> None:
        super().__init__()
        if arch not in ("mlp", "conv"):
            raise ValueError(f"arch must be 'mlp' (Zhang's MNIST networks) or 'conv' (SVHN), got {arch!r}")
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 0:
            raise ValueError(f"horizon must be an int >= 0 (0 = the plain M2 decoder), got {horizon!r}")
        if num_labels < 2:
            raise ValueError(f"num_labels must be >= 2, got {num_labels}")
        if arch == "conv" and img_size != 32:
            raise ValueError(f"the SVHN networks take 32x32 images (four 5x5/2 convs to 2x2), got img_size={img_size}")
        self.arch, self.horizon = arch, horizon
        self.in_chans, self.img_size = in_chans, img_size
        self.num_labels, self.latent_dim = num_labels, latent_dim
        self.check_inputs = True  #: validate every input batch (the trainer turns it off after the first)
        likelihood = DiscretizedLogisticMixture(in_chans, num_mixtures)
        head = LocalPixelCNNHead(in_chans, cond_chans, likelihood.param_channels, horizon, width=head_width,
                                 num_blocks=head_blocks, convs_per_block=head_convs_per_block)
        flat = in_chans * img_size * img_size
        if arch == "mlp":
            classifier: nn.Module = MLPClassifier(flat, num_labels, hidden_dim)
            posterior: nn.Module = MLPLabelEncoder(flat, num_labels, latent_dim, hidden_dim)
            net: nn.Module = MLPConditioner(num_labels + latent_dim, cond_chans, img_size, hidden_dim)
        else:
            classifier = ConvClassifier(in_chans, num_labels, img_size)
            posterior = ConvLabelEncoder(in_chans, num_labels, latent_dim)
            net = ConvConditioner(num_labels + latent_dim, cond_chans)
        self.encoder = M2Encoder(classifier, posterior, num_labels)
        self.decoder = PixelVAEDecoder(net, head, likelihood)

    @property
    def classifier(self) -> nn.Module:
        """q(y | x), the auxiliary classifier (``encoder.classifier``)."""
        return self.encoder.classifier

    @property
    def stride(self) -> int:
        return 1

    @property
    def num_dims(self) -> int:
        """D = C·H·W, what bits per dimension divide by."""
        return self.in_chans * self.img_size * self.img_size

    @property
    def likelihood(self) -> DiscretizedLogisticMixture:
        return self.decoder.likelihood

    @property
    def log_prior_y(self) -> float:
        """log p(y) = −log K (uniform labels)."""
        return -math.log(self.num_labels)

    def _check(self, x: torch.Tensor, always: bool = False) -> None:
        if self.check_inputs or always:
            check_images(x, in_chans=self.in_chans, stride=1, image_size=(self.img_size, self.img_size),
                         param_dtype=self.decoder.head.out.weight.dtype)

    def _check_labels(self, y: torch.Tensor, batch: int) -> None:
        if y.shape != (batch,) or y.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"labels must be an integer tensor of shape ({batch},), got {y.dtype} {tuple(y.shape)}")
        if batch and (int(y.min()) < 0 or int(y.max()) >= self.num_labels):
            raise ValueError(f"labels must lie in [0, {self.num_labels}), got values in [{int(y.min())}, {int(y.max())}]")

    def onehot(self, y: torch.Tensor) -> torch.Tensor:
        return F.one_hot(y.long(), self.num_labels).float()

    # ----------------------------------------------------------------- the three networks
    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of q(y | x), (B, K): the auxiliary classifier, the model's prediction."""
        self._check(x)
        return self.classifier(x)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> M2Posterior:
        """q(y | x) and q(z | x, y) (:class:`M2Posterior`); without ``y``, at the classifier's argmax label.
        ``code()`` is [onehot(y), μ], the decoder's input."""
        self._check(x)
        if y is not None:
            self._check_labels(y, x.shape[0])
        return self.encoder(x, y)

    def label_code(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The decoder's input [onehot(y), z] (B, K + D) of latents z (B, D) and labels y (B,)."""
        self._check_labels(y, z.shape[0])
        return torch.cat([self.onehot(y).to(z), z], 1)

    def decode(self, code: torch.Tensor, *, generator: torch.Generator | None = None, method: str = "fast") -> torch.Tensor:
        """x ~ p(x | y, z) of code = [onehot(y), z] (B, K + D) (:meth:`label_code`), (B, C, H, W) in [-1, 1]: the
        noise of :data:`DECODE_SEED` unless ``generator`` is given."""
        expected = self.num_labels + self.latent_dim
        if code.ndim != 2 or code.shape[1] != expected:
            raise ValueError(f"an M2 code is [onehot(y), z] of shape (B, {expected}); got {tuple(code.shape)} "
                             "(build one with model.label_code(z, y))")
        return self.decoder(code, generator=generator, method=method)

    @torch.no_grad()
    def sample(self, num_samples: int, y: torch.Tensor | None = None, *, generator: torch.Generator | None = None,
               method: str = "fast") -> torch.Tensor:
        """z ~ N(0, I) and y (default: each label in turn), then x ~ p(x | y, z): (num_samples, C, H, W)."""
        device = self.decoder.head.out.weight.device
        if y is None:
            y = torch.arange(num_samples, device=device) % self.num_labels
        z = torch.randn(num_samples, self.latent_dim, generator=generator, device=device)
        return self.decoder.sample(self.label_code(z, y.to(device)), generator=generator, method=method)

    def reconstruct(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """A sample of p(x | ŷ, μ(x, ŷ)) with ŷ = argmax q(y | x), deterministic by default (see :meth:`decode`)."""
        return self.decode(self.encode(x).code(), generator=generator)

    # ----------------------------------------------------------------- bounds
    def labelled_terms(self, x: torch.Tensor, y: torch.Tensor, *, sample: bool | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """(−log p(x | y, z) (B,), KL(q(z | x, y) ‖ p(z)) (B,)) in nats; z ~ q in training mode (or ``sample=True``)."""
        self._check(x)
        self._check_labels(y, x.shape[0])
        onehot = self.onehot(y)
        post = self.encoder.posterior(x, onehot)
        z = post.mean
        if self.training if sample is None else sample:
            z = post.mean + post.var.sqrt() * torch.randn_like(post.mean)
        params = self.decoder.params(x, torch.cat([onehot.to(z), z], 1))
        return self.likelihood.log_prob(params, x).neg(), gaussian_kl_per_image(post.mean, post.var)

    def labelled_elbo(self, x: torch.Tensor, y: torch.Tensor, *, sample: bool | None = None) -> torch.Tensor:
        """ELBO(x, y) = E log p(x | y, z) + log p(y) − KL (eq. 9), nats per image (B,)."""
        nll, kl = self.labelled_terms(x, y, sample=sample)
        return self.log_prior_y - nll - kl

    def label_elbos(self, x: torch.Tensor, *, sample: bool | None = None) -> torch.Tensor:
        """ELBO(x, y) for every label y, (B, K): the batch scored K times in one pass (label-major order)."""
        batch, k = x.shape[0], self.num_labels
        labels = torch.arange(k, device=x.device).repeat_interleave(batch)
        repeated = x.repeat(k, *([1] * (x.ndim - 1)))
        return self.labelled_elbo(repeated, labels, sample=sample).view(k, batch).t()

    def unlabelled_elbo(self, x: torch.Tensor, *, sample: bool | None = None,
                        logits: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(ELBO(x) = Σ_y q(y | x) ELBO(x, y) + H(q(y | x)) (eq. 10) (B,), the per-label ELBOs (B, K))."""
        logits = self.classify(x) if logits is None else logits
        elbos = self.label_elbos(x, sample=sample)
        probs = F.softmax(upcast(logits), dim=1)
        return (probs * elbos).sum(1) + label_entropy(logits), elbos

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, *, sample: bool | None = None) -> M2Output:
        """Labelled batch (``y`` given): ELBO(x, y); unlabelled: the enumerated bound. Both with q(y | x)'s logits."""
        logits = self.classify(x)
        if y is not None:
            return M2Output(logits, self.labelled_elbo(x, y, sample=sample), None)
        bound, elbos = self.unlabelled_elbo(x, sample=sample, logits=logits)
        return M2Output(logits, bound, elbos)

    @torch.no_grad()
    def generative_classify(self, x: torch.Tensor) -> torch.Tensor:
        """The generative classifier argmax_y ELBO(x, y) with z = μ (spec §2.11 [REF], an option): labels (B,)."""
        return self.label_elbos(x, sample=False).argmax(1)

    # ----------------------------------------------------------------- representation protocol
    def representations(self, input_size: tuple[int, int, int] | None = None) -> dict[str, RepresentationInfo]:
        """The classifier's ``classifier_hidden1/2`` and ``class_logits``, ``class_probs`` = q(y | x), and the latent
        of q(z | x, ŷ) at the predicted label ŷ (``latent``, ``latent_var``)."""
        size = (self.in_chans, self.img_size, self.img_size)
        if input_size is not None and tuple(input_size) != size:
            raise ValueError(f"{type(self).__name__} ({self.arch}) has a fixed input size {size}, got {tuple(input_size)}")
        h1 = self.classifier.fc1[0].out_features
        h2 = self.classifier.fc2[0].out_features
        k = self.num_labels
        return {
            "classifier_hidden1": RepresentationInfo("classifier_hidden1", (h1,), "q(y | x)'s first hidden layer"),
            "classifier_hidden2": RepresentationInfo("classifier_hidden2", (h2,), "q(y | x)'s last hidden layer"),
            "class_logits": RepresentationInfo("class_logits", (k,), "the logits of q(y | x)"),
            "class_probs": RepresentationInfo("class_probs", (k,), "q(y | x), the auxiliary classifier's probabilities"),
            **gaussian_latent_infos(self.latent_dim, "of q(z | x, ŷ) at the predicted label, Zhang §6"),
        }

    def represent(self, x: torch.Tensor, names: Sequence[str], mode: str = "mean",
                  noise: NoiseFn | None = None) -> dict[str, torch.Tensor]:
        """The layers ``names`` of a preprocessed batch (B, C, img_size, img_size)."""
        names = check_representation_names(self, names, mode)
        noise = noise or default_noise
        self._check(x, always=True)
        out = self.classifier.layers(x)
        out["class_probs"] = F.softmax(upcast(out["class_logits"]), 1)
        if "latent" in names or "latent_var" in names:
            post = self.encoder.posterior(x, self.onehot(out["class_logits"].argmax(1)))
            out["latent"] = gaussian_representation(post.mean, post.var, mode, noise)
            out["latent_var"] = post.var
        return select(out, names)


# --------------------------------------------------------------------------- zoo entrypoints
def _create_m2(variant: str, pretrained: bool = False, **kwargs: Any) -> M2VAE:
    return build_model_with_cfg(M2VAE, variant, pretrained, **kwargs)


#: paper/reference sizes (spec §2.11) and the CPU sizes (ours: narrower PixelCNN head and conditioning map)
_SIZES: dict[str, dict[str, Any]] = {
    "mlp": {"arch": "mlp", "in_chans": 1, "img_size": 28, "cond_chans": 32, "head_width": 256, "head_blocks": 5},
    "mlp_small": {"arch": "mlp", "in_chans": 1, "img_size": 28, "cond_chans": 8, "head_width": 32, "head_blocks": 1,
                  "head_convs_per_block": 2},
    "conv": {"arch": "conv", "in_chans": 3, "img_size": 32, "cond_chans": 100, "head_width": 256, "head_blocks": 5},
    "conv_small": {"arch": "conv", "in_chans": 3, "img_size": 32, "cond_chans": 16, "head_width": 32,
                   "head_blocks": 1, "head_convs_per_block": 2},
}
_DECODERS = {"m2": (0, "plain M2 decoder (h=0)"), "lpvae_h1": (1, "LPVAE-M2 h=1"), "lpvae_h2": (2, "LPVAE-M2 h=2")}


def _name(size: str, decoder: str) -> str:
    """("mlp_small", "lpvae_h1") -> "m2_mlp_lpvae_h1_small"."""
    base, small = size.removesuffix("_small"), size.endswith("_small")
    return f"m2_{base}_{decoder}" + ("_small" if small else "")


def _describe(size: str, decoder: str) -> str:
    net = "MNIST networks (MLP, 28×28×1)" if size.startswith("mlp") else "SVHN networks (conv, 32×32×3)"
    scale = ("CPU size (32-channel 1-block PixelCNN head, narrow conditioning map; ours)" if size.endswith("_small")
             else "paper/reference size (256-channel 5-block PixelCNN head)")
    return f"{_DECODERS[decoder][1]}, {net}, {scale}; Zhang et al. 2022 §6, Table 6"


default_cfgs: dict[str, PretrainedCfg] = {
    _name(size, dec): PretrainedCfg(paper="zhang2022", data_config=M2_MNIST if size.startswith("mlp") else M2_SVHN,
                                    description=_describe(size, dec))
    for size in _SIZES for dec in _DECODERS
}


def _entry(size: str, decoder: str, pretrained: bool, kwargs: dict[str, Any]) -> M2VAE:
    defaults = {**_SIZES[size], "horizon": _DECODERS[decoder][0]}
    return _create_m2(_name(size, decoder), pretrained, model_defaults=defaults, **kwargs)


@register_model
def m2_mlp_m2(pretrained: bool = False, **kwargs: Any) -> M2VAE:
    """M2 with the plain (h=0) DMOL decoder, MNIST MLP networks, reference size (Zhang et al. 2022 Table 6)."""
    return _entry("mlp", "m2", pretrained, kwargs)


@register_model
def m2_mlp_lpvae_h1(pretrained: bool = False, **kwargs: Any) -> M2VAE:
    """LPVAE-M2 h=1, MNIST MLP networks, reference size (Zhang et al. 2022 Table 6, MNIST)."""
    return _entry("mlp", "lpvae_h1", pretrained, kwargs)


@register_model
def m2_mlp_lpvae_h2(pretrained: bool = False, **kwargs: Any) -> M2VAE:
    """LPVAE-M2 h=2, MNIST MLP networks, reference size."""
    return _entry("mlp", "lpvae_h2", pretrained, kwargs)


@register_model
def m2_mlp_m2_small(pretrained: bool = False, **kwargs: Any) -> M2VAE:
    """M2 (h=0 decoder), MNIST MLP networks, CPU size: 8-channel conditioning map, 32-channel 1-block head."""
    return _entry("mlp_small", "m2", pretrained, kwargs)


@register_model
def m2_mlp_lpvae_h1_small(pretrained: bool = False, **kwargs: Any) -> M2VAE:
    """LPVAE-M2 h=1, MNIST MLP networks, CPU size: 8-channel conditioning map, 32-channel 1-block head."""
    return _entry("mlp_small", "lpvae_h1", pretrained, kwargs)


@register_model
def m2_mlp_lpvae_h2_small(pretrained: bool = False, **kwargs: Any) -> M2VAE:
    """LPVAE-M2 h=2, MNIST MLP networks, CPU size: 8-channel conditioning map, 32-channel 1-block head."""
    return _entry("mlp_small", "lpvae_h2", pretrained, kwargs)


@register_model
def m2_conv_m2(pretrained: bool = False, **kwargs: Any) -> M2VAE:
    """M2 (h=0 decoder), SVHN conv networks, reference size (Zhang et al. 2022 Table 6)."""
    return _entry("conv", "m2", pretrained, kwargs)


@register_model
def m2_conv_lpvae_h1(pretrained: bool = False, **kwargs: Any) -> M2VAE:
    """LPVAE-M2 h=1, SVHN conv networks, reference size."""
    return _entry("conv", "lpvae_h1", pretrained, kwargs)


@register_model
def m2_conv_lpvae_h2(pretrained: bool = False, **kwargs: Any) -> M2VAE:
    """LPVAE-M2 h=2, SVHN conv networks, reference size (Zhang et al. 2022 Table 6, SVHN)."""
    return _entry("conv", "lpvae_h2", pretrained, kwargs)


@register_model
def m2_conv_m2_small(pretrained: bool = False, **kwargs: Any) -> M2VAE:
    """M2 (h=0 decoder), SVHN conv networks, CPU size: 16-channel conditioning map, 32-channel 1-block head."""
    return _entry("conv_small", "m2", pretrained, kwargs)


@register_model
def m2_conv_lpvae_h1_small(pretrained: bool = False, **kwargs: Any) -> M2VAE:
    """LPVAE-M2 h=1, SVHN conv networks, CPU size: 16-channel conditioning map, 32-channel 1-block head."""
    return _entry("conv_small", "lpvae_h1", pretrained, kwargs)


@register_model
def m2_conv_lpvae_h2_small(pretrained: bool = False, **kwargs: Any) -> M2VAE:
    """LPVAE-M2 h=2, SVHN conv networks, CPU size: 16-channel conditioning map, 32-channel 1-block head."""
    return _entry("conv_small", "lpvae_h2", pretrained, kwargs)
