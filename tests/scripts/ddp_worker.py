"""Launched by torchrun in tests: train a few steps, then every rank saves its full model state."""

import sys

import torch

from patchvae._io import save_safetensors
from patchvae.recipes import get_recipe
from patchvae.training import train

out = sys.argv[1]
recipe = get_recipe("fmnist_patchvae").with_overrides({"epochs": 1, "batch_size": 64, "amp": "none"})
result = train(recipe, out, train_subset=512, eval_subset=64, save_images=False, export=False, log_every=2)
rank = torch.distributed.get_rank()
save_safetensors(f"{out}/rank{rank}.safetensors", result.model.state_dict())
torch.distributed.destroy_process_group()
