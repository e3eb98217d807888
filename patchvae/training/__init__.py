"""Training: one loop for every family (VAE, VAE-GAN, BiGAN) with checkpoints, resume, logs and DDP.

    from patchvae.recipes import get_recipe
    from patchvae.training import train
    train(get_recipe("fmnist_patchvae"), "runs/fmnist_patchvae")
"""

from .checkpoint import CheckpointError
from .runlock import RunLockedError
from .trainer import TrainingDivergedError, TrainResult, train

__all__ = ["CheckpointError", "RunLockedError", "TrainResult", "TrainingDivergedError", "train"]
