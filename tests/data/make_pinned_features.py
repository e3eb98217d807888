"""Regenerate ``pinned_features.safetensors``: extract_features of every family before the protocol refactor.

    python tests/data/make_pinned_features.py

Every model gets deterministic parameters and buffers from a formula of their names and shapes only
(``deterministic_state``), so the file does not depend on initialisation order or RNG state. The
features of two fixed images are stored for every layer (float32, amp=None), and for ``mode="sample"``
the layers that differ from ``mode="mean"``.
Regenerate only when a family's outputs change on purpose, and say so in the CHANGELOG.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import patchvae.models as zoo  # noqa: E402
from patchvae import extract_features  # noqa: E402

#: name -> how to build it: (create function, model name, kwargs)
PINNED_MODELS = {
    "patchvae": ("create", "patchvae_resnet9", {}),
    "patchvae_hard": ("create", "patchvae_resnet9", {"hard": True}),
    "beta_vae": ("create", "beta_vae_resnet9_32", {}),
    "bigan": ("create", "bigan_resnet9_32", {}),
    "classifier": ("create", "classifier_resnet9_32", {"num_classes": 10}),
    "backbone": ("create_backbone", "patchvae_resnet9", {}),
}


def deterministic_state(model: torch.nn.Module) -> None:
    """Fill every parameter and float buffer with a smooth function of its name and shape."""
    with torch.no_grad():
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            if not tensor.is_floating_point():
                continue
            seed = sum(ord(c) * (i + 1) for i, c in enumerate(name)) % 997
            values = torch.sin(torch.arange(tensor.numel(), dtype=torch.float64) * 0.731 + seed).reshape(tensor.shape)
            if name.endswith("running_var"):
                values = 1.0 + 0.5 * values.abs()
            else:
                values = values * (1.0 / max(1, tensor[0].numel()) ** 0.5 if tensor.ndim > 1 else 0.1)
            tensor.copy_(values.to(tensor.dtype))


def build(key: str) -> torch.nn.Module:
    factory, name, kwargs = PINNED_MODELS[key]
    model = getattr(zoo, factory)(name, **kwargs)
    deterministic_state(model)
    return model.eval()


def images() -> torch.Tensor:
    """Two fixed uint8 RGB 32×32 images."""
    grid = torch.arange(2 * 3 * 32 * 32).reshape(2, 3, 32, 32)
    return ((grid * 37 + (grid // 97) * 11) % 256).to(torch.uint8)


def pinned_layers(model: torch.nn.Module) -> list[str]:
    from patchvae.features import available_layers

    return available_layers(model)


def compute(key: str, layers: list[str]) -> dict[str, torch.Tensor]:
    model = build(key)
    mean = extract_features(model, images(), layer=layers, mode="mean", amp=None, progress=False, seed=3)
    sample = extract_features(model, images(), layer=layers, mode="sample", amp=None, progress=False, seed=3)
    out = {f"{key}/mean/{name}": value for name, value in mean.items()}
    # sample mode: only the layers it changes (the rest are pinned equal to the mean ones by the test)
    out.update({f"{key}/sample/{name}": value for name, value in sample.items() if not torch.equal(value, mean[name])})
    return out


def main() -> None:
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    for key in PINNED_MODELS:
        tensors.update(compute(key, pinned_layers(build(key))))
    out = Path(__file__).with_name("pinned_features.safetensors")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out))
    print(f"wrote {len(tensors)} tensors to {out}")


if __name__ == "__main__":
    main()
