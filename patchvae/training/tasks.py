"""One optimisation step per model family: VAE (β-VAE, PatchVAE), VAE-GAN, BiGAN, −ELBO (Zhang's PixelVAEs).

Each task owns its optimisers and (DDP-wrapped) modules and returns its loss parts by name.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..data.config import DataConfig
from ..data.patches import random_patches
from ..evaluation.part_health import PartHealthAccumulator
from ..losses import (
    BetaVAEObjective,
    PatchVAEObjective,
    TemperatureSchedule,
    bigan_encoder_generator_loss,
    fake_loss,
    generator_loss,
    real_loss,
    reconstruction_loss,
)
from ..models import BiGAN, Discriminator, M2VAE, PatchVAE
from ..recipes import Recipe
from .data import LabelledData
from .distributed import World, wrap_ddp
from .gemm_grads import use_gemm_weight_grads
from .images import save_reconstructions, save_samples, save_visibility_maps

__all__ = ["BiGANTask", "ELBOTask", "M2Task", "Task", "VAETask", "m2_alpha", "make_task", "temperature_schedule"]

Parts = dict[str, torch.Tensor]


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


@contextlib.contextmanager
def _frozen(module: nn.Module) -> Iterator[nn.Module]:
    """The plain module with gradients off: used to backpropagate *through* a discriminator into G."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p in params:
            p.requires_grad_(True)


def temperature_schedule(recipe: Recipe) -> TemperatureSchedule:
    """The relaxed-Bernoulli temperature τ(step) a run of ``recipe`` trains with (its ``temperature_*`` fields)."""
    return TemperatureSchedule(recipe.temperature_start, recipe.temperature_anneal_rate, recipe.temperature_floor,
                               recipe.temperature_mode)


class Task:
    """Common plumbing: autocast, fp16 grad scaling, the temperature schedule, checkpointed modules."""

    def __init__(self, recipe: Recipe, device: torch.device, world: World, amp_dtype: torch.dtype | None) -> None:
        self.recipe = recipe
        self.device = device
        self.world = world
        self.amp_dtype = amp_dtype
        self.schedule = temperature_schedule(recipe)
        self.modules: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self._scalers: dict[str, torch.amp.GradScaler] = {}

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _adam(self, name: str, params: Iterator[nn.Parameter], lr: float) -> torch.optim.Optimizer:
        # one fused kernel per step instead of a loop over the parameter tensors (same update rule)
        fused = self.recipe.fused_optimizer and self.device.type in ("cpu", "cuda")
        opt = torch.optim.Adam(params, lr=lr, betas=tuple(self.recipe.betas), weight_decay=self.recipe.weight_decay,
                               fused=fused or None)
        self.optimizers[name] = opt
        self._scalers[name] = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        return opt

    def _backward(self, name: str, loss: torch.Tensor) -> None:
        self._scalers[name].scale(loss).backward()

    def _step(self, name: str) -> None:
        self._scalers[name].step(self.optimizers[name])
        self._scalers[name].update()

    def _zero(self, name: str) -> None:
        self.optimizers[name].zero_grad(set_to_none=True)

    def train(self, mode: bool = True) -> None:
        for module in self.modules.values():
            module.train(mode)

    def compile(self, mode: str | None = None) -> None:
        """``torch.compile`` the networks used in the training step (forward and backward graphs)."""
        for attr in ("net", "disc_net", "eg"):
            if hasattr(self, attr):
                setattr(self, attr, torch.compile(getattr(self, attr), mode=mode))

    # overridden by the families
    def train_step(self, x: torch.Tensor, step: int) -> Parts:  # pragma: no cover - interface
        raise NotImplementedError

    def eval_step(self, x: torch.Tensor, step: int, part_health: PartHealthAccumulator | None = None,
                  labels: torch.Tensor | None = None) -> Parts:  # pragma: no cover
        """Eval-mode loss parts of batch ``x`` (with its ``labels``); models with part visibility also feed ``part_health``."""
        raise NotImplementedError

    def save_images(self, out_dir: Path, epoch: int, x: torch.Tensor, data_config: DataConfig) -> None:  # pragma: no cover
        raise NotImplementedError


class VAETask(Task):
    """β-VAE / PatchVAE, optionally with the image discriminator of the '-GAN' variants.

    Per step: [D step on real images vs detached reconstructions,] then the VAE update. Without a
    discriminator it is one Adam step on reconstruction + KL; with one it follows ``recipe.gan_update``:

    * ``"authors"`` (the authors' run.py): an Adam step on reconstruction + KL, then a second forward
      pass of the updated VAE and a second Adam step on ``gan_weight`` × the non-saturating generator
      loss *plus the first step's gradients* (run.py does not zero them between the two steps);
    * ``"joint"``: one Adam step on reconstruction + KL + ``gan_weight`` × the generator loss.
    """

    def __init__(self, model: nn.Module, recipe: Recipe, device: torch.device, world: World, amp_dtype: torch.dtype | None):
        super().__init__(recipe, device, world, amp_dtype)
        self.model = model
        self.is_patchvae = isinstance(model, PatchVAE)
        objective_cls = PatchVAEObjective if recipe.objective == "patchvae" else BetaVAEObjective
        self.objective = objective_cls(**recipe.objective_args)
        self.net = wrap_ddp(model, world, device)
        self.modules["model"] = model
        self._adam("model", model.parameters(), recipe.lr)
        self.gan = recipe.family == "vae_gan"
        if self.gan:
            self.discriminator = Discriminator(model.in_chans, stride=model.stride).to(device)
            if recipe.channels_last:
                self.discriminator.to(memory_format=torch.channels_last)
            self.disc_net = wrap_ddp(self.discriminator, world, device)
            self.modules["discriminator"] = self.discriminator
            self._adam("discriminator", self.discriminator.parameters(), recipe.disc_lr)

    def _forward(self, x: torch.Tensor, step: int, net: nn.Module | None = None, **kw: bool):
        net = net or self.net
        return net(x, self.schedule(step), **kw) if self.is_patchvae else net(x, **kw)

    def _discriminator_step(self, x: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
        """One D step on real ``x`` vs the detached ``reconstruction``; returns the summed D loss."""
        self._zero("discriminator")
        # real and generated batches go through D separately (own BN statistics), as the authors' code
        with self.autocast():
            loss_real = real_loss(self.disc_net(x))
        self._backward("discriminator", loss_real)
        with self.autocast():
            loss_fake = fake_loss(self.disc_net(reconstruction.detach()))
        self._backward("discriminator", loss_fake)
        self._step("discriminator")
        return loss_real.detach() + loss_fake.detach()

    def _generator_loss(self, reconstruction: torch.Tensor) -> torch.Tensor:
        """The non-saturating generator loss of ``reconstruction``, backpropagated through a frozen D."""
        with _frozen(self.discriminator) as disc, self.autocast():
            return generator_loss(disc(reconstruction))

    def _vae_step(self, loss: torch.Tensor) -> None:
        self._zero("model")
        self._backward("model", loss)
        self._step("model")

    def train_step(self, x: torch.Tensor, step: int) -> Parts:
        with self.autocast():
            out = self._forward(x, step)
        parts = self.objective(out, x)
        logs: Parts = {"loss": parts.total, **{k: v for k, v in parts._asdict().items() if k != "total"}}
        if not self.gan:
            self._vae_step(parts.total)
            return {k: v.detach() for k, v in logs.items()}
        d_loss = self._discriminator_step(x, out.reconstruction)
        weight = self.recipe.gan_weight
        if self.recipe.gan_update == "joint":
            g_loss = self._generator_loss(out.reconstruction)
            self._vae_step(parts.total + weight * g_loss)
        else:
            self._vae_step(parts.total)
            kept = [p.grad for p in self.model.parameters()]  # unscaled by the step: the VAE step's gradients
            with self.autocast():
                again = self._forward(x, step)  # the updated VAE, a fresh sample
            g_loss = self._generator_loss(again.reconstruction)
            self._zero("model")
            self._backward("model", weight * g_loss)
            scale = self._scalers["model"].get_scale()  # 1.0 unless fp16 loss scaling is on
            for param, grad in zip(self.model.parameters(), kept):
                if grad is not None:  # scaled like the generator gradients, so the step unscales both alike
                    param.grad = grad * scale if param.grad is None else param.grad.add_(grad, alpha=scale)
            self._step("model")
        logs.update(loss=parts.total + weight * g_loss, d_loss=d_loss, g_loss=g_loss)
        return {k: v.detach() for k, v in logs.items()}

    @torch.no_grad()
    def eval_step(self, x: torch.Tensor, step: int, part_health: PartHealthAccumulator | None = None,
                  labels: torch.Tensor | None = None) -> Parts:
        with self.autocast():
            out = self._forward(x, step, net=self.model, sample=True)
        if part_health is not None and getattr(out, "visibility_probs", None) is not None:
            part_health.update(out.visibility_probs)  # Q^V(z_vis=1|x) of this eval-mode pass: no extra forward
        parts = self.objective(out, x)
        return {"loss": parts.total, **{k: v for k, v in parts._asdict().items() if k != "total"}}

    @torch.no_grad()
    def save_images(self, out_dir: Path, epoch: int, x: torch.Tensor, data_config: DataConfig) -> None:
        out = self._forward(x, 0, net=self.model, sample=False)  # posterior means
        save_reconstructions(out_dir / f"epoch_{epoch:03d}_reconstructions.png", x, out.reconstruction, data_config)
        if self.is_patchvae:
            save_visibility_maps(out_dir / f"epoch_{epoch:03d}_visibility.png", x[:8], out.visibility_probs[:8], data_config)
            grid = (x.shape[-2] // self.model.stride, x.shape[-1] // self.model.stride)
            samples = self.model.sample(32, grid_size=grid)
        else:
            samples = self.model.sample(32)
        save_samples(out_dir / f"epoch_{epoch:03d}_samples.png", samples, data_config)


class _EncoderGenerator(nn.Module):
    """E and G of a BiGAN as one module, so DDP synchronises both with one wrapper."""

    def __init__(self, model: BiGAN) -> None:
        super().__init__()
        self.encoder = model.encoder
        self.decoder = model.decoder

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(E(x) (B, D), G(z) (B, C, H, W))."""
        return self.encoder(x).latent, self.decoder(z)


class BiGANTask(Task):
    """BiGAN (Donahue et al. 2017): D step on (x, E(x)) vs (G(z), z), then an E+G step with flipped labels."""

    def __init__(self, model: BiGAN, recipe: Recipe, device: torch.device, world: World, amp_dtype: torch.dtype | None):
        super().__init__(recipe, device, world, amp_dtype)
        self.model = model
        self.eg = wrap_ddp(_EncoderGenerator(model), world, device)
        self.disc_net = wrap_ddp(model.discriminator, world, device)
        self.modules["model"] = model
        eg_params = [*model.encoder.parameters(), *model.decoder.parameters()]
        self._adam("model", iter(eg_params), recipe.lr)
        self._adam("discriminator", model.discriminator.parameters(), recipe.disc_lr)

    def train_step(self, x: torch.Tensor, step: int) -> Parts:
        z = torch.randn(x.shape[0], self.model.latent_dim, device=x.device)
        with self.autocast():
            z_enc, x_gen = self.eg(x, z)
        self._zero("discriminator")
        with self.autocast():
            loss_real = real_loss(self.disc_net(x, z_enc.detach()))
        self._backward("discriminator", loss_real)
        with self.autocast():
            loss_fake = fake_loss(self.disc_net(x_gen.detach(), z))
        self._backward("discriminator", loss_fake)
        self._step("discriminator")
        with _frozen(self.model.discriminator) as disc, self.autocast():
            eg_loss = bigan_encoder_generator_loss(disc(x, z_enc), disc(x_gen, z))
        self._zero("model")
        self._backward("model", eg_loss.total)
        self._step("model")
        return {
            "loss": eg_loss.total.detach(),
            "d_loss": (loss_real + loss_fake).detach(),
            "d_real": loss_real.detach(),
            "d_fake": loss_fake.detach(),
        }

    @torch.no_grad()
    def eval_step(self, x: torch.Tensor, step: int, part_health: PartHealthAccumulator | None = None,
                  labels: torch.Tensor | None = None) -> Parts:
        with self.autocast():
            recon = self.model.reconstruct(x)
        return {"reconstruction": reconstruction_loss(recon, x)}

    @torch.no_grad()
    def save_images(self, out_dir: Path, epoch: int, x: torch.Tensor, data_config: DataConfig) -> None:
        recon = self.model.reconstruct(x)
        save_reconstructions(out_dir / f"epoch_{epoch:03d}_reconstructions.png", x, recon, data_config)
        z = torch.randn(32, self.model.latent_dim, device=x.device)
        save_samples(out_dir / f"epoch_{epoch:03d}_samples.png", self.model.generate(z), data_config)


class ELBOTask(Task):
    """VAEs trained on their negative ELBO: Zhang et al. 2022's PixelVAEs, Sixt 2018's patch and global VAEs.

    The loss is the batch mean of −log p(x | z) + β·KL(q(z | x) ‖ p(z)), one reparameterised z per item, in
    nats per item (spec §2.7); it is logged with its two terms and in bits per dimension (``bpd``: the
    −ELBO with β = 1 over C·H·W; on the eval split, the test BPD of spec §2.9). ``objective_args``:

    * ``random_crop_padding`` p (default 0): training images are random crops of the image padded by p
      black pixels (spec §2.8: p = 4 on CIFAR-10).
    * ``beta`` (default 1): the KL weight (Sixt's β-VAE: 250, S eq. 27).
    * ``patch_size`` p and ``patches_per_image`` k (default none): each batch of images becomes k
      uniformly placed p×p patches per image (:func:`patchvae.data.random_patches`; Sixt's patch VAEs,
      S Fig. 3); eval batches use the same positions every epoch (a generator seeded per batch index).
    """

    OBJECTIVE_ARGS = ("random_crop_padding", "beta", "patch_size", "patches_per_image")

    def __init__(self, model: nn.Module, recipe: Recipe, device: torch.device, world: World, amp_dtype: torch.dtype | None):
        super().__init__(recipe, device, world, amp_dtype)
        args = dict(recipe.objective_args)
        unknown = sorted(set(args) - set(self.OBJECTIVE_ARGS))
        if unknown:
            raise ValueError(f"recipe {recipe.name}: objective 'elbo' takes objective_args {', '.join(self.OBJECTIVE_ARGS)}; "
                             f"got {unknown}")
        if not callable(getattr(model, "elbo_terms", None)):
            raise ValueError(f"recipe {recipe.name}: objective 'elbo' needs a model with elbo_terms (a VAE trained on its "
                             f"ELBO, e.g. pixelvae_*, sixt2018_*), got {type(model).__name__}")
        self.model = model
        self.crop_padding = int(args.get("random_crop_padding", 0))
        self.beta = float(args.get("beta", 1.0))
        if not self.beta > 0:
            raise ValueError(f"recipe {recipe.name}: objective_args.beta must be > 0, got {self.beta}")
        self.patch_size = args.get("patch_size")
        self.patches_per_image = int(args.get("patches_per_image", 1))
        model_patch = getattr(model, "patch_size", None)
        if model_patch is not None and self.patch_size != model_patch:
            raise ValueError(f"recipe {recipe.name}: {type(model).__name__} scores {model_patch}x{model_patch} patches: set "
                             f"objective_args.patch_size={model_patch} (got {self.patch_size})")
        self._eval_batches = 0
        self.net = wrap_ddp(model, world, device)
        self.modules["model"] = model
        self._adam("model", model.parameters(), recipe.lr)

    def _random_crop(self, x: torch.Tensor) -> torch.Tensor:
        """Per image a random H×W crop of x padded by p pixels of value -1 (black: v/127.5 - 1 at v = 0)."""
        p = self.crop_padding
        if p <= 0:
            return x
        batch, _, height, width = x.shape
        padded = F.pad(x, (p, p, p, p), value=-1.0)
        top, left = torch.randint(0, 2 * p + 1, (2, batch, 1), device=x.device)
        rows = (top + torch.arange(height, device=x.device))[:, :, None]
        cols = (left + torch.arange(width, device=x.device))[:, None, :]
        out = padded[torch.arange(batch, device=x.device)[:, None, None], :, rows, cols]  # (B, H, W, C)
        fmt = torch.channels_last if self.recipe.channels_last else torch.contiguous_format
        return out.permute(0, 3, 1, 2).contiguous(memory_format=fmt)

    def _patches(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.patch_size is None:
            return x
        return random_patches(x, int(self.patch_size), self.patches_per_image, generator=generator)

    def _parts(self, out, x: torch.Tensor) -> Parts:
        nll, kl = out.reconstruction_nll.mean(), out.kl.mean()
        loss = nll + self.beta * kl if self.beta != 1.0 else nll + kl
        return {"loss": loss, "reconstruction_nll": nll, "kl": kl, "bpd": (nll + kl) / (x[0].numel() * math.log(2.0))}

    def train_step(self, x: torch.Tensor, step: int) -> Parts:
        x = self._patches(self._random_crop(x))
        with self.autocast():
            out = self.net(x)
        parts = self._parts(out, x)
        self._zero("model")
        self._backward("model", parts["loss"])
        self._step("model")
        return {k: v.detach() for k, v in parts.items()}

    @torch.no_grad()
    def eval_step(self, x: torch.Tensor, step: int, part_health: PartHealthAccumulator | None = None,
                  labels: torch.Tensor | None = None) -> Parts:
        if self.patch_size is not None:  # the same positions every epoch: batch k of the eval pass uses seed k
            gen = torch.Generator(device=x.device).manual_seed(self._eval_batches)
            self._eval_batches += 1
            x = self._patches(x, gen)
        with self.autocast():
            out = self.model(x, sample=True)  # single-sample −ELBO, BN running statistics
        return self._parts(out, x)

    def train(self, mode: bool = True) -> None:
        super().train(mode)
        self._eval_batches = 0

    @torch.no_grad()
    def save_images(self, out_dir: Path, epoch: int, x: torch.Tensor, data_config: DataConfig) -> None:
        x = x[:8]
        recon = self.model.reconstruct(x)  # a sample of p(x | μ) with fixed pixel noise: comparable across epochs
        x = x[..., :recon.shape[-2], :recon.shape[-1]]  # patch VAEs reconstruct the largest tiled region
        save_reconstructions(out_dir / f"epoch_{epoch:03d}_reconstructions.png", x, recon, data_config)
        save_samples(out_dir / f"epoch_{epoch:03d}_samples.png", self.model.sample(16), data_config)


def m2_alpha(num_labelled: int, num_unlabelled: int, rate: float = 0.1, formula: str = "reference") -> float:
    """α, the weight of the labelled classification loss of M2 (spec §2.11, §6.8).

    ``"reference"`` (default): r(N+M)/N, the reference code's and the usual M2 practice (counted here in images;
    the code counts mini-batches, which differs only by rounding); ``"paper"``: r(N+M)/M as Zhang et al. print it.
    N labelled, M unlabelled images, r the supervision rate (0.1).
    """
    if formula not in ("reference", "paper"):
        raise ValueError(f"alpha_formula must be 'reference' (r(N+M)/N) or 'paper' (r(N+M)/M), got {formula!r}")
    if num_labelled < 1 or num_unlabelled < 1:
        raise ValueError(f"alpha needs N >= 1 labelled and M >= 1 unlabelled images, got N={num_labelled}, M={num_unlabelled}")
    total = num_labelled + num_unlabelled
    return rate * total / (num_labelled if formula == "reference" else num_unlabelled)


class M2Task(Task):
    """Semi-supervised M2 (Zhang et al. 2022 §6, eq. 11): per step one unlabelled batch (the trainer's: one epoch is
    one pass over every training image) and the next labelled batch (cycled, a function of the step, so a resumed
    run sees the same batches). Loss, nats per image:

        mean(−ELBO(x_l, y_l)) + mean(−ELBO(x_u)) + α · mean(−log q(y_l | x_l))

    ``objective_args``: ``labels_per_class`` (required); ``alpha`` (a number; default from ``alpha_formula``
    "reference" r(N+M)/N or "paper" r(N+M)/M with ``supervision_rate`` r = 0.1: :func:`m2_alpha`);
    ``labelled_batch_size``; ``supervised_only`` (train q(y | x) on the labelled images alone, the
    supervised baseline on the same labels); ``generative_accuracy`` (also evaluate argmax_y ELBO(x, y)).
    Eval logs the test accuracy of q(y | x) (``accuracy``, %), its cross entropy and the labelled −ELBO.
    """

    OBJECTIVE_ARGS = ("labels_per_class", "alpha", "alpha_formula", "supervision_rate", "labelled_batch_size",
                      "supervised_only", "generative_accuracy")

    def __init__(self, model: nn.Module, recipe: Recipe, device: torch.device, world: World, amp_dtype: torch.dtype | None,
                 labelled: LabelledData | None):
        super().__init__(recipe, device, world, amp_dtype)
        args = dict(recipe.objective_args)
        unknown = sorted(set(args) - set(self.OBJECTIVE_ARGS))
        if unknown:
            raise ValueError(f"recipe {recipe.name}: objective 'm2' takes objective_args {', '.join(self.OBJECTIVE_ARGS)}; "
                             f"got {unknown}")
        if not isinstance(model, M2VAE):
            raise ValueError(f"recipe {recipe.name}: objective 'm2' needs an M2 model (m2_*), got {type(model).__name__}")
        if labelled is None:
            raise ValueError(f"recipe {recipe.name}: objective 'm2' needs the labelled subset (built by build_run_data)")
        self.model = model
        self.labelled = labelled
        self.supervised_only = bool(args.get("supervised_only", False))
        self.generative_accuracy = bool(args.get("generative_accuracy", False))
        if "alpha" in args:
            self.alpha = float(args["alpha"])
        else:
            self.alpha = m2_alpha(labelled.num_labelled, labelled.num_unlabelled, float(args.get("supervision_rate", 0.1)),
                                  str(args.get("alpha_formula", "reference")))
        if not self.alpha >= 0:
            raise ValueError(f"recipe {recipe.name}: objective_args.alpha must be >= 0, got {self.alpha}")
        if self.supervised_only and world.distributed:
            raise ValueError(f"recipe {recipe.name}: objective_args.supervised_only trains on the few labelled images "
                             "alone: run it in one process (no torchrun)")
        self._cursor: tuple[int, int] | None = None  # (cycle, next batch) of the labelled iterator
        self._batches: Iterator[tuple[torch.Tensor, torch.Tensor]] = iter(())
        self.net = wrap_ddp(model, world, device)
        self.modules["model"] = model
        self._adam("model", model.parameters(), recipe.lr)

    def labelled_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The labelled batch of global step ``step``: batch ``step % L`` of cycle ``step // L`` (L batches per cycle)."""
        per_cycle = len(self.labelled.batches)
        cycle, index = divmod(step, per_cycle)
        if self._cursor != (cycle, index):  # a new cycle, or a resumed run: re-position the iterator
            self.labelled.batches.set_epoch(cycle)
            self._batches = iter(self.labelled.batches)
            for _ in range(index):
                next(self._batches)
        batch = next(self._batches)
        self._cursor = (cycle, index + 1) if index + 1 < per_cycle else None
        return batch

    def _labelled_parts(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, Parts]:
        out = net(x, y)
        ce = F.cross_entropy(out.class_logits.float(), y)
        accuracy = (out.class_logits.argmax(1) == y).float().mean() * 100
        return ce, {"labelled_nelbo": -out.elbo.mean(), "cross_entropy": ce, "labelled_accuracy": accuracy}

    def train_step(self, x: torch.Tensor, step: int) -> Parts:
        x_l, y_l = self.labelled_batch(step)
        if self.recipe.channels_last:
            x_l = x_l.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            if self.supervised_only:
                logits = self.model.classify(x_l)
                loss = F.cross_entropy(logits.float(), y_l)
                parts: Parts = {"cross_entropy": loss, "labelled_accuracy": (logits.argmax(1) == y_l).float().mean() * 100}
            else:
                ce, parts = self._labelled_parts(self.net, x_l, y_l)
                unlabelled = -self.net(x).elbo.mean()
                loss = parts["labelled_nelbo"] + unlabelled + self.alpha * ce
                parts["unlabelled_nelbo"] = unlabelled
        parts["loss"] = loss
        self._zero("model")
        self._backward("model", loss)
        self._step("model")
        return {k: v.detach() for k, v in parts.items()}

    @torch.no_grad()
    def eval_step(self, x: torch.Tensor, step: int, part_health: PartHealthAccumulator | None = None,
                  labels: torch.Tensor | None = None) -> Parts:
        if labels is None:
            raise ValueError("M2 evaluation needs the eval split's labels (the test accuracy of q(y | x))")
        with self.autocast():
            ce, parts = self._labelled_parts(self.model, x, labels)
        parts = {"loss": parts["labelled_nelbo"] + self.alpha * ce, "accuracy": parts.pop("labelled_accuracy"), **parts}
        parts["bpd"] = parts["labelled_nelbo"] / (x[0].numel() * math.log(2.0))
        if self.generative_accuracy:
            parts["generative_accuracy"] = (self.model.generative_classify(x) == labels).float().mean() * 100
        return parts

    @torch.no_grad()
    def save_images(self, out_dir: Path, epoch: int, x: torch.Tensor, data_config: DataConfig) -> None:
        if self.supervised_only:
            return
        x = x[:8]
        save_reconstructions(out_dir / f"epoch_{epoch:03d}_reconstructions.png", x, self.model.reconstruct(x), data_config)
        labels = torch.arange(self.model.num_labels, device=x.device).repeat(2)  # two draws of every class
        save_samples(out_dir / f"epoch_{epoch:03d}_samples.png", self.model.sample(len(labels), labels), data_config)


def make_task(model: nn.Module, recipe: Recipe, device: torch.device, world: World, amp_dtype: torch.dtype | None,
              labelled: LabelledData | None = None) -> Task:
    if recipe.gemm_weight_grads and device.type == "cpu" and amp_dtype == torch.bfloat16:
        use_gemm_weight_grads(model)
    if recipe.objective == "m2":
        return M2Task(model, recipe, device, world, amp_dtype, labelled)
    if recipe.objective == "elbo":
        return ELBOTask(model, recipe, device, world, amp_dtype)
    if recipe.family == "bigan":
        if not isinstance(model, BiGAN):
            raise ValueError(f"recipe {recipe.name}: family 'bigan' needs a BiGAN model, got {type(model).__name__}")
        return BiGANTask(model, recipe, device, world, amp_dtype)
    return VAETask(model, recipe, device, world, amp_dtype)
