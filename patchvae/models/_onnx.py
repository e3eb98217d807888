"""ONNX export of zoo models through ``torch.export`` (the exporter PyTorch develops; TorchScript is deprecated).

    phi = patchvae.models.create_backbone("patchvae_resnet9", pretrained=True).eval()
    patchvae.models.export_onnx(phi, "phi.onnx")          # input "images" (B, C, H, W), output "output"

Needs the ``onnx`` extra (``pip install 'patchvae[onnx]'``: onnx, onnxscript, and onnxruntime to run
the file). Models whose ``forward`` returns a tensor or a list/tuple of tensors export: φ with or
without a head, ``features_only`` pyramids, the Table 5 classifier, and the VAEs in eval mode (their
output NamedTuple becomes named graph outputs).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

__all__ = ["export_onnx"]

log = logging.getLogger(__name__)


def _example_input(model: nn.Module, batch_size: int) -> torch.Tensor:
    data = getattr(model, "data_config", None)
    if data is None:
        raise ValueError(
            f"{type(model).__name__} carries no data_config to size the example input: pass example_input=torch.randn(B, C, H, W)"
        )
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    return torch.randn(batch_size, *data.input_size, device=device, dtype=dtype)


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    example_input: torch.Tensor | None = None,
    dynamic_batch: bool = True,
    opset_version: int | None = None,
) -> Path:
    """Export ``model`` (in eval mode) to an ONNX file with ``torch.onnx.export(..., dynamo=True)``.

    Args:
        model: a zoo model whose ``forward`` takes images (B, C, H, W) and returns tensors.
        path: the ``.onnx`` file to write (its folder is created).
        example_input: images to trace with; default: 2 random images of ``model.data_config.input_size``.
        dynamic_batch: the batch dimension is symbolic (any batch size runs); else fixed to the example's.
        opset_version: ONNX opset (default: the exporter's).

    Returns:
        the path written. The graph's input is ``"images"``; outputs are ``"output"`` (one tensor),
        the fields of an output NamedTuple (a VAE's ``reconstruction``, ``features`` ...), or
        ``"output_0"``, ``"output_1"`` ... (a list, e.g. a feature pyramid).

    Raises:
        ImportError: ``onnx``/``onnxscript`` are not installed.
    """
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise ImportError(f"ONNX export needs onnx and onnxscript ({err}): pip install 'patchvae[onnx]'") from err
    if model.training:
        raise ValueError("export a model in eval mode (model.eval()): training-mode BatchNorm/dropout would be baked in")
    x = _example_input(model, 2) if example_input is None else example_input
    if x.ndim != 4:
        raise ValueError(f"example_input must be images (B, C, H, W), got shape {tuple(x.shape)}")
    with torch.no_grad():
        reference = model(x)
    if isinstance(reference, torch.Tensor):
        outputs = ["output"]
    elif isinstance(reference, (list, tuple)) and all(isinstance(t, torch.Tensor) for t in reference):
        fields = getattr(reference, "_fields", None)  # a model's output NamedTuple: its field names
        outputs = list(fields) if fields else [f"output_{i}" for i in range(len(reference))]
    else:
        raise ValueError(
            f"{type(model).__name__}.forward returns {type(reference).__name__}, not tensors: export a module "
            "that returns a tensor or a tuple of tensors (e.g. its φ, patchvae.models.create_backbone(...))"
        )
    dynamic_shapes = ({0: torch.export.Dim("batch", min=1)},) if dynamic_batch else None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model, (x,), str(path), dynamo=True, input_names=["images"], output_names=outputs,
        dynamic_shapes=dynamic_shapes, opset_version=opset_version, verbose=False,
    )
    log.info("exported %s to %s", type(model).__name__, path)
    return path
