"""CPU fast path: weight gradients of transposed convolutions on small maps computed by one GEMM.

On CPUs with AVX512-BF16 but no AMX, oneDNN computes bf16 convolution weight gradients with an older
JIT kernel that is slow when the map is tiny. PatchVAE's first decoder block (a 4×4/2 transposed conv
from a 4×4 map, 256 -> 128 channels) spends ~2× its forward time there: 7.5 ms of a ~66 ms step on
two cores. The same gradient as an im2col of the output gradient followed by one bf16 matrix
product takes 3.8 ms (``benchmarks/train_throughput.py``, docs/benchmarks.md).

``use_gemm_weight_grads(model)`` switches the model's ``nn.ConvTranspose2d`` layers to
:class:`GemmGradConvTranspose2d`, a subclass with the same parameters, state dict and forward
output. Only the backward pass changes, and only for bf16 CPU training steps whose input map has at
most :data:`MAX_GEMM_POSITIONS` positions; everything else takes PyTorch's own path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MAX_GEMM_POSITIONS", "GemmGradConvTranspose2d", "conv_weight_grad_gemm", "use_gemm_weight_grads"]

MAX_GEMM_POSITIONS = 16  #: input maps up to 4×4: where the GEMM beat oneDNN's bf16 kernel (measured)


def conv_weight_grad_gemm(x: torch.Tensor, grad_out: torch.Tensor, kernel_size: tuple[int, int],
                          stride: tuple[int, int], padding: tuple[int, int]) -> torch.Tensor:
    """Weight gradient of ``conv2d(x, w, stride, padding)`` (no dilation/groups) by im2col + one GEMM.

    Args:
        x: (B, C_in, H, W), the convolution's input.
        grad_out: (B, C_out, H_out, W_out), the gradient of its output.
    Returns:
        (C_out, C_in, kh, kw), ``Σ_{b,h,w} grad_out[b, :, h, w] ⊗ window(x)[b, :, h, w]``.
    """
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    h_out, w_out = grad_out.shape[-2:]
    padded = F.pad(x, (pw, pw, ph, ph)).permute(0, 2, 3, 1)  # (B, H + 2ph, W + 2pw, C_in)
    taps = [padded[:, i:i + sh * (h_out - 1) + 1:sh, j:j + sw * (w_out - 1) + 1:sw, :] for i in range(kh) for j in range(kw)]
    cols = torch.stack(taps, 3).reshape(-1, kh * kw * x.shape[1])  # (B·H_out·W_out, kh·kw·C_in)
    grads = grad_out.permute(0, 2, 3, 1).reshape(-1, grad_out.shape[1])  # (B·H_out·W_out, C_out)
    return (grads.t() @ cols).view(grad_out.shape[1], kh, kw, x.shape[1]).permute(0, 3, 1, 2)


class _ConvTranspose2dGemmGrad(torch.autograd.Function):
    """conv_transpose2d whose weight gradient is one GEMM (its input gradient stays oneDNN's)."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding):  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.conv = (stride, padding, bias is not None)
        return F.conv_transpose2d(x, weight, bias, stride, padding)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        stride, padding, has_bias = ctx.conv
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad_out, x, weight, None, stride, padding, [1, 1], True, [0, 0], 1, [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            # conv_transpose2d(x, w) is the adjoint of conv2d(·, w): the same sum with x and y swapped,
            # already in the (C_in, C_out, kh, kw) layout of a transposed conv's weight
            # (returned in the weight's own memory layout, as PyTorch's kernel does)
            grad_w = torch.empty_like(weight).copy_(conv_weight_grad_gemm(grad_out, x, weight.shape[-2:], stride, padding))
        if has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None, None


class GemmGradConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` whose bf16 CPU training backward computes the weight gradient by one GEMM.

    Same parameters, state dict and forward output; see the module docstring for when it applies.
    """

    def _gemm_dtype(self, x: torch.Tensor) -> torch.dtype | None:
        if x.device.type != "cpu" or not (torch.is_grad_enabled() and self.weight.requires_grad):
            return None
        if x.shape[-2] * x.shape[-1] > MAX_GEMM_POSITIONS:
            return None
        if torch.is_autocast_enabled("cpu"):
            dtype = torch.get_autocast_dtype("cpu")
        else:
            dtype = x.dtype if x.dtype == self.weight.dtype else None
        return dtype if dtype == torch.bfloat16 else None

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        dtype = self._gemm_dtype(x) if output_size is None else None
        if dtype is None:
            return super().forward(x, output_size)
        bias = None if self.bias is None else self.bias.to(dtype)
        with torch.autocast("cpu", enabled=False):
            return _ConvTranspose2dGemmGrad.apply(x.to(dtype), self.weight.to(dtype), bias, list(self.stride),
                                                  list(self.padding))


def _eligible(m: nn.Module) -> bool:
    return (type(m) is nn.ConvTranspose2d and m.groups == 1 and m.dilation == (1, 1) and m.output_padding == (0, 0)
            and m.padding_mode == "zeros")


def use_gemm_weight_grads(model: nn.Module) -> int:
    """Switch every plain ``nn.ConvTranspose2d`` of ``model`` to :class:`GemmGradConvTranspose2d` in place.

    Returns how many layers were switched. Parameters, buffers and the state dict are untouched.
    """
    switched = 0
    for m in model.modules():
        if _eligible(m):
            m.__class__ = GemmGradConvTranspose2d
            switched += 1
    return switched
