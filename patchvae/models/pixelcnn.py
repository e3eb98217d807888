"""Masked convolutions and the PixelCNN heads of Zhang et al. (2022), LPVAE / FPVAE (spec §2.2-2.3).

::

    x (B, C_x, H, W) in [-1, 1] ─MaskedConv2d 'A' k×k─► (B, width/2, H, W) ─┐
                                                                          concat ─ReLU─► y (B, width, H, W)
    c = Dec(z) (B, C_cond, H, W) ─Conv 1×1─────────► (B, width/2, H, W) ─┘
    y ─num_blocks × [y + ReLU∘conv ∘ ReLU∘conv ∘ ReLU∘conv (y)]─ReLU∘Conv 1×1─Conv 1×1─► (B, out_chans, H, W)

* :class:`LocalPixelCNNHead` (LPVAE, horizon h): k = 2h+1, residual convs 1×1. Pixel (i, j) sees exactly the
  2h(h+1) pixels x_[i-h:i-1, j-h:j+h] and x_[i, j-h:j-1] (eq. 8; zero padding at the image border), all
  of their channels. h = 0 is the conditionally independent VAE: the 1×1 mask-A kernel is all zero.
* :class:`FullPixelCNNHead` (FPVAE, [REF] variant): k = 7, residual convs 3×3 mask 'B'; the receptive field
  is causal in raster order (with the usual blind spot of stacked masked convs, spec §2.2).

Conditioning (spec §2.3, binding): c enters once, through a bias-free 1×1 conv concatenated with the masked
input conv; no per-layer conditioning, no BatchNorm (BN-free PixelCNNs do not collapse, spec §2.2). The
output feeds :class:`~patchvae.models.likelihoods.DiscretizedLogisticMixture` (``out_chans =
likelihood.param_channels``).

Masks are spatial only (spec §2.3 "Masks are not channel-aware"): mask 'A' hides the current pixel with all
its channels, so the RGB dependence within a pixel comes only from the DMOL's linear autoregression (§2.6).

Sixt's block-local PixelCNN (spec §1.2.5, §3.2) reuses the local head by space-to-batch: with i×i blocks,
``params = batch_to_blocks(head(blocks_to_batch(x, i), blocks_to_batch(c, i)), i, H, W)`` for a
``LocalPixelCNNHead(horizon=i - 1)``: the (2i-1)×(2i-1) mask-A kernel covers every earlier pixel of the
block, and the zero padding at each block's border keeps context from crossing into other blocks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "FullPixelCNNHead",
    "LocalPixelCNNHead",
    "MaskedConv2d",
    "PixelCNNHead",
    "batch_to_blocks",
    "blocks_to_batch",
    "causal_mask",
    "local_context_size",
]


def _pair(kernel_size: int | tuple[int, int]) -> tuple[int, int]:
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    if kh < 1 or kw < 1 or kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"masked conv kernels must have odd sizes (the centre is the current pixel), got {kh}x{kw}")
    return kh, kw


def causal_mask(kernel_size: int | tuple[int, int], mask_type: str) -> torch.Tensor:
    """The (kh, kw) 0/1 float mask of a raster-order masked conv; the centre tap is the current pixel.

    Mask 'A' keeps the rows above the centre and the taps left of it in the centre row; mask 'B' also keeps
    the centre. Spatial only: the same mask applies to every (in, out) channel pair.
    """
    kh, kw = _pair(kernel_size)
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' (excludes the current pixel) or 'B' (includes it), got {mask_type!r}")
    mask = torch.zeros(kh, kw)
    mask[: kh // 2] = 1.0
    mask[kh // 2, : kw // 2 + (mask_type == "B")] = 1.0
    return mask


def local_context_size(horizon: int) -> int:
    """Number of context pixels of an LPVAE(h) pixel away from the border: h(2h+1) + h = 2h(h+1)."""
    return 2 * horizon * (horizon + 1)


class MaskedConv2d(nn.Conv2d):
    """Conv2d whose kernel is multiplied by a raster-order :func:`causal_mask` ('A' or 'B').

    Stride 1 with zero "same" padding (k//2), so output pixel (i, j) is computed at input pixel (i, j) and
    only sees pixels before it in raster order ('A') or up to and including it ('B'). Other padding modes
    would leak later pixels into earlier ones and are refused. Masked taps are zeroed at construction and
    always get zero gradient. Shapes: (B, in_chans, H, W) -> (B, out_chans, H, W).
    """

    def __init__(
        self,
        in_chans: int,
        out_chans: int,
        kernel_size: int | tuple[int, int],
        mask_type: str = "B",
        *,
        bias: bool = True,
        dilation: int = 1,
    ) -> None:
        kh, kw = _pair(kernel_size)
        mask = causal_mask((kh, kw), mask_type)
        super().__init__(in_chans, out_chans, (kh, kw), padding=(dilation * (kh // 2), dilation * (kw // 2)),
                         dilation=dilation, bias=bias)
        self.mask_type = mask_type
        self.register_buffer("mask", mask[None, None], persistent=False)
        with torch.no_grad():
            self.weight.mul_(self.mask)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mask_type={self.mask_type!r}"

    def masked_weight(self) -> torch.Tensor:
        """The effective kernel, weight · mask: (out_chans, in_chans, kh, kw)."""
        return self.weight * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.masked_weight(), self.bias, self.stride, self.padding, self.dilation, self.groups)


class _ResidualBlock(nn.Module):
    """y + ReLU(conv(ReLU(conv(ReLU(conv(y)))))) with 1×1 (local) or masked 3×3 'B' (full) convs (spec §2.3)."""

    def __init__(self, width: int, kernel_size: int, num_convs: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(width, width, 1) if kernel_size == 1 else MaskedConv2d(width, width, kernel_size, "B")
            for _ in range(num_convs)
        )

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        t = y
        for conv in self.convs:
            t = F.relu(conv(t), inplace=True)
        return y + t


class PixelCNNHead(nn.Module):
    """PixelCNN decoder head p(x_ij | context, z) of spec §2.3, conditioned on a decoder feature map.

    Args:
        in_chans: image channels C_x (1 or 3).
        cond_chans: channels C_cond of the decoder feature map c = Dec(z) (32 MNIST, 100 CIFAR in the paper).
        out_chans: likelihood parameters per pixel (``DiscretizedLogisticMixture.param_channels``).
        first_kernel: size of the mask-'A' input conv (2h+1 local, 7 full).
        block_kernel: 1 (1×1 convs, local head) or an odd size for masked 'B' convs (3, full head).
        width: channels of the trunk (256 in [REF]); half come from x, half from c. Must be even.
        num_blocks: residual blocks (5 in the paper); convs_per_block: convs per block (3 in [REF]).

    ``forward(x, cond)``: x (B, C_x, H, W) in [-1, 1] (the image itself: masking makes it causal),
    cond (B, C_cond, H, W) -> (B, out_chans, H, W). Works in channels_last (``model.to(memory_format=...)``).
    """

    def __init__(
        self,
        in_chans: int,
        cond_chans: int,
        out_chans: int,
        *,
        first_kernel: int,
        block_kernel: int,
        width: int = 256,
        num_blocks: int = 5,
        convs_per_block: int = 3,
    ) -> None:
        super().__init__()
        if width < 2 or width % 2:
            raise ValueError(f"width must be even (half the channels come from x, half from cond), got {width}")
        if num_blocks < 0 or convs_per_block < 1:
            raise ValueError(f"need num_blocks >= 0 and convs_per_block >= 1, got {num_blocks} and {convs_per_block}")
        self.in_chans, self.cond_chans, self.out_chans = in_chans, cond_chans, out_chans
        self.input_conv = MaskedConv2d(in_chans, width // 2, first_kernel, "A", bias=False)
        self.cond_conv = nn.Conv2d(cond_chans, width // 2, 1, bias=False)
        self.blocks = nn.Sequential(*[_ResidualBlock(width, block_kernel, convs_per_block) for _ in range(num_blocks)])
        self.out_hidden = nn.Conv2d(width, width, 1)
        self.out = nn.Conv2d(width, out_chans, 1)

    def _check(self, x: torch.Tensor, cond: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"expected images of shape (B, {self.in_chans}, H, W), got {tuple(x.shape)}")
        if cond.ndim != 4 or cond.shape[1] != self.cond_chans:
            raise ValueError(
                f"expected a conditioning map of shape (B, {self.cond_chans}, H, W), got {tuple(cond.shape)}"
            )
        if x.shape[0] != cond.shape[0] or x.shape[2:] != cond.shape[2:]:
            raise ValueError(
                f"the conditioning map {tuple(cond.shape)} must have the images' batch and spatial size "
                f"{tuple(x.shape)}; decode z to full resolution first"
            )

    def _trunk(self, x_feat: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        y = F.relu(torch.cat([x_feat, self.cond_conv(cond)], dim=1), inplace=True)
        return self._likelihood_params(F.relu(self.out_hidden(self.blocks(y)), inplace=True))

    def _likelihood_params(self, hidden: torch.Tensor) -> torch.Tensor:
        """The last 1×1 conv, in the weights' precision even under autocast: (B, width, H, W) -> (B, out_chans, H, W).

        Under bf16 autocast the trunk runs in bf16 (AMX/tensor cores), but bf16 DMOL means near ±1 are spaced
        2^-7 apart, the width of one 8-bit bin; computing the parameters in float32 keeps them exact to the
        bin while the rest of the head keeps the bf16 speed.
        """
        if torch.is_autocast_enabled(hidden.device.type):
            with torch.autocast(hidden.device.type, enabled=False):
                return self.out(hidden.to(self.out.weight.dtype))
        return self.out(hidden)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        self._check(x, cond)
        return self._trunk(self.input_conv(x), cond)


class LocalPixelCNNHead(PixelCNNHead):
    """LPVAE(h) head (spec §2.2 implementation (i), §2.3): (2h+1)×(2h+1) mask-'A' conv, then 1×1 convs only.

    Pixel (i, j)'s output depends on the 2h(h+1) context pixels (all channels) and on cond[:, :, i, j] only.
    So sampling needs only a pixel's (2h+1)×(2h+1) neighbourhood: :meth:`forward_window` computes the
    parameters of window centres, which is all an incremental sampler needs (O(1) per pixel, not a full
    pass per pixel). Stacking h masked 3×3 convs (spec §2.2 option (ii)) is not offered: its receptive
    field has the stacked-mask blind spot, so it is not the eq. 8 context for h >= 2.
    """

    def __init__(
        self,
        in_chans: int,
        cond_chans: int,
        out_chans: int,
        horizon: int = 1,
        *,
        width: int = 256,
        num_blocks: int = 5,
        convs_per_block: int = 3,
    ) -> None:
        if horizon < 0:
            raise ValueError(f"horizon h must be >= 0 (0 = conditionally independent VAE), got {horizon}")
        super().__init__(in_chans, cond_chans, out_chans, first_kernel=2 * horizon + 1, block_kernel=1,
                         width=width, num_blocks=num_blocks, convs_per_block=convs_per_block)
        self.horizon = horizon

    @property
    def context_size(self) -> int:
        """2h(h+1): context pixels of an interior pixel."""
        return local_context_size(self.horizon)

    def forward_window(self, x_windows: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Parameters at the centre pixels of (2h+1)×(2h+1) windows: the incremental-sampling entry point.

        Args:
            x_windows: (N, C_x, 2h+1, 2h+1), the image around each pixel to predict (zeros outside the
                image; the centre and later pixels are ignored by the mask, so they may hold anything).
            cond: (N, C_cond) or (N, C_cond, 1, 1), the conditioning features at those pixels.
        Returns:
            (N, out_chans), equal to ``forward(x, c)[:, :, i, j]`` for the window centred at (i, j).
        """
        k = 2 * self.horizon + 1
        if x_windows.ndim != 4 or x_windows.shape[1:] != (self.in_chans, k, k):
            raise ValueError(f"expected windows of shape (N, {self.in_chans}, {k}, {k}), got {tuple(x_windows.shape)}")
        if cond.ndim == 2:
            cond = cond[:, :, None, None]
        if cond.shape != (x_windows.shape[0], self.cond_chans, 1, 1):
            raise ValueError(f"expected cond of shape (N, {self.cond_chans}) for N = {x_windows.shape[0]} windows, "
                             f"got {tuple(cond.shape)}")
        x_feat = F.conv2d(x_windows, self.input_conv.masked_weight())  # valid conv: one output per window
        return self._trunk(x_feat, cond).flatten(1)


class FullPixelCNNHead(PixelCNNHead):
    """FPVAE head, the [REF] variant (spec §2.2-2.3): 7×7 mask 'A', then residual blocks of 3×3 mask-'B' convs.

    Causal in raster order (no pixel at or after (i, j) reaches (i, j)); its receptive field is finite
    (first_kernel//2 + num_blocks·convs_per_block rows up: 18 for the paper's 7 and 5·3) and has the
    stacked-mask blind spot, as in the reference code.
    """

    def __init__(
        self,
        in_chans: int,
        cond_chans: int,
        out_chans: int,
        *,
        first_kernel: int = 7,
        width: int = 256,
        num_blocks: int = 5,
        convs_per_block: int = 3,
    ) -> None:
        super().__init__(in_chans, cond_chans, out_chans, first_kernel=first_kernel, block_kernel=3,
                         width=width, num_blocks=num_blocks, convs_per_block=convs_per_block)


def blocks_to_batch(x: torch.Tensor, block: int) -> torch.Tensor:
    """Space-to-batch: (B, C, H, W) -> (B·(H/i)·(W/i), C, i, i), blocks in raster order within each image.

    For Sixt's block-local PixelCNN (spec §3.2): run a :class:`LocalPixelCNNHead` with ``horizon=block - 1``
    on the blocks (image and conditioning map alike), then :func:`batch_to_blocks` the output.
    """
    batch, chans, height, width = x.shape
    if block < 1 or height % block or width % block:
        raise ValueError(f"block size {block} must divide the spatial size {height}x{width}; crop or pad the input")
    nh, nw = height // block, width // block
    return (x.reshape(batch, chans, nh, block, nw, block).permute(0, 2, 4, 1, 3, 5)
            .reshape(batch * nh * nw, chans, block, block))


def batch_to_blocks(y: torch.Tensor, block: int, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`blocks_to_batch`: (B·(H/i)·(W/i), C, i, i) -> (B, C, H, W)."""
    if height % block or width % block or y.shape[-2:] != (block, block):
        raise ValueError(f"expected (N, C, {block}, {block}) blocks of a {height}x{width} image, got {tuple(y.shape)}")
    nh, nw = height // block, width // block
    if y.shape[0] % (nh * nw):
        raise ValueError(
            f"{y.shape[0]} blocks are not a whole number of {height}x{width} images ({nh * nw} blocks each)"
        )
    batch, chans = y.shape[0] // (nh * nw), y.shape[1]
    return y.reshape(batch, nh, nw, chans, block, block).permute(0, 3, 1, 4, 2, 5).reshape(batch, chans, height, width)
