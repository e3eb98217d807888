"""Masked convs and the LPVAE / FPVAE heads: masks, exact receptive fields, conditioning, channels_last, blocks."""

from __future__ import annotations

import pytest
import torch

from patchvae.models.likelihoods import DiscretizedLogisticMixture
from patchvae.models.pixelcnn import (
    FullPixelCNNHead,
    LocalPixelCNNHead,
    MaskedConv2d,
    batch_to_blocks,
    blocks_to_batch,
    causal_mask,
    local_context_size,
)

LIK = DiscretizedLogisticMixture(3, 2)


def _images(batch: int, height: int, width: int) -> torch.Tensor:
    return torch.randint(0, 256, (batch, 3, height, width)).double() / 127.5 - 1.0


def _dependence(head, height: int, width: int, wrt: str) -> dict[tuple[int, int], set]:
    """For every pixel: the set of input pixels (of the image or of the conditioning map) that the
    pixel's DMOL log-likelihood has a non-zero gradient for (target values held fixed).

    log p(x_ij) depends on the head output at (i, j) only, so its gradient is the DMOL gradient at (i, j)
    pulled back through the head; one batched backward pass does all pixels at once.
    """
    x = _images(2, height, width).requires_grad_()
    cond = torch.randn(2, 4, height, width, dtype=torch.float64, requires_grad=True)
    params = head(x, cond)
    lp = LIK.log_prob(params, x.detach(), per_pixel=True)  # (B, H, W)
    (dlp,) = torch.autograd.grad(lp.sum(), params, retain_graph=True)  # d log p(x_ij) / d params[:, :, i, j]
    one_hot = torch.eye(height * width, dtype=dlp.dtype).view(-1, 1, 1, height, width)
    src = x if wrt == "x" else cond
    (jac,) = torch.autograd.grad(params, src, dlp * one_hot, is_grads_batched=True)  # (H·W, B, C, H, W)
    nz = jac.abs().sum((1, 2)) > 0
    return {divmod(p, width): {tuple(ij) for ij in nz[p].nonzero().tolist()} for p in range(height * width)}


def _local_context(i: int, j: int, h: int, height: int, width: int) -> set:
    """Eq. 8: x_[i-h:i-1, j-h:j+h] and x_[i, j-h:j-1], clipped to the image."""
    rows = {(r, c) for r in range(i - h, i) for c in range(j - h, j + h + 1)}
    left = {(i, c) for c in range(j - h, j)}
    return {(r, c) for r, c in rows | left if 0 <= r < height and 0 <= c < width}


def test_masks():
    a3, b3 = causal_mask(3, "A"), causal_mask(3, "B")
    assert a3.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert b3.tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    a5 = causal_mask(5, "A")
    assert a5.sum() == local_context_size(2) == 12 and a5[2, 2] == 0 and a5[3:].sum() == 0
    assert causal_mask(1, "A").sum() == 0 and causal_mask(1, "B").sum() == 1
    assert causal_mask((3, 5), "A").tolist() == [[1] * 5, [1, 1, 0, 0, 0], [0] * 5]
    with pytest.raises(ValueError, match="odd"):
        causal_mask(4, "A")
    with pytest.raises(ValueError, match="'A'"):
        MaskedConv2d(3, 8, 3, "C")
    conv = MaskedConv2d(3, 8, 5, "A")
    assert conv.mask.shape == (1, 1, 5, 5)
    assert (conv.weight * (1 - conv.mask) == 0).all()  # masked taps are zero ...
    conv(torch.randn(1, 3, 6, 6)).sum().backward()
    assert (conv.weight.grad * (1 - conv.mask) == 0).all()  # ... and stay zero
    assert "mask" not in conv.state_dict()  # derived from mask_type, not stored


def test_masked_conv_is_causal_per_pixel():
    conv = MaskedConv2d(1, 1, 3, "B").double()
    x = torch.randn(1, 1, 5, 5, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(conv(x)[0, 0, 2, 2], x)
    assert {tuple(ij) for ij in grad[0, 0].nonzero().tolist()} == {(1, 1), (1, 2), (1, 3), (2, 1), (2, 2)}


@pytest.mark.parametrize("h", [0, 1, 2])
def test_local_head_sees_exactly_its_2h_h_plus_1_context_pixels(h):
    torch.manual_seed(h)
    head = LocalPixelCNNHead(3, 4, LIK.param_channels, horizon=h, width=32, num_blocks=2).double()
    height, width = 6, 7
    deps = _dependence(head, height, width, "x")
    for (i, j), got in deps.items():
        assert got == _local_context(i, j, h, height, width), (i, j)
    interior = deps[(3, 3)]
    assert len(interior) == local_context_size(h) == {0: 0, 1: 4, 2: 12}[h]
    # the conditioning map acts only at the pixel itself
    for (i, j), got in _dependence(head, height, width, "cond").items():
        assert got == {(i, j)}


def test_full_head_is_causal_in_raster_order():
    torch.manual_seed(0)
    head = FullPixelCNNHead(3, 4, LIK.param_channels, width=16, num_blocks=1).double()
    height, width = 6, 6
    for (i, j), got in _dependence(head, height, width, "x").items():
        assert all(r * width + c < i * width + j for r, c in got), (i, j)  # nothing at or after (i, j)
        if (i, j) != (0, 0):
            assert (i, j - 1) in got or (i - 1, j) in got  # the previous pixels do matter
    assert len(_dependence(head, height, width, "x")[(5, 3)]) > 12  # wider than any local head tested above
    for (i, j), got in _dependence(head, height, width, "cond").items():
        assert (i, j) in got and all(r * width + c <= i * width + j for r, c in got)


def test_forward_window_equals_the_full_pass():
    torch.manual_seed(0)
    h = 2
    head = LocalPixelCNNHead(3, 4, LIK.param_channels, horizon=h, width=16, num_blocks=1)
    x, cond = torch.rand(2, 3, 5, 6) * 2 - 1, torch.randn(2, 4, 5, 6)
    full = head(x, cond)
    padded = torch.nn.functional.pad(x, (h, h, h, h))
    for i, j in [(0, 0), (2, 3), (4, 5)]:
        windows = padded[:, :, i:i + 2 * h + 1, j:j + 2 * h + 1].clone()
        windows[:, :, h, h:] = 123.0  # the current and later pixels are masked out
        windows[:, :, h + 1:] = -77.0
        torch.testing.assert_close(head.forward_window(windows, cond[:, :, i, j]), full[:, :, i, j])
    with pytest.raises(ValueError, match="windows of shape"):
        head.forward_window(torch.zeros(2, 3, 3, 3), cond[:, :, 0, 0])


@pytest.mark.parametrize("cls", [LocalPixelCNNHead, FullPixelCNNHead])
def test_heads_work_in_channels_last(cls):
    torch.manual_seed(0)
    head = cls(3, 4, LIK.param_channels, width=16, num_blocks=1)
    x, cond = torch.rand(2, 3, 8, 8) * 2 - 1, torch.randn(2, 4, 8, 8)
    ref = head(x, cond)
    head = head.to(memory_format=torch.channels_last)
    out = head(x.contiguous(memory_format=torch.channels_last), cond.contiguous(memory_format=torch.channels_last))
    assert out.shape == (2, LIK.param_channels, 8, 8)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    target = ((x + 1) * 127.5).round() / 127.5 - 1
    LIK.log_prob(out, target).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters() if p.grad is not None)


def test_head_shapes_and_errors():
    head = LocalPixelCNNHead(1, 32, DiscretizedLogisticMixture(1, 10).param_channels, horizon=1)  # paper size
    assert head.context_size == 4
    assert head(torch.zeros(2, 1, 8, 8), torch.zeros(2, 32, 8, 8)).shape == (2, 30, 8, 8)
    with pytest.raises(ValueError, match="full resolution"):
        head(torch.zeros(2, 1, 8, 8), torch.zeros(2, 32, 4, 4))
    with pytest.raises(ValueError, match="horizon"):
        LocalPixelCNNHead(1, 32, 30, horizon=-1)
    with pytest.raises(ValueError, match="even"):
        FullPixelCNNHead(1, 32, 30, width=15)


def test_blocks_round_trip_and_block_local_context():
    x = torch.randn(2, 3, 6, 9)
    blocks = blocks_to_batch(x, 3)
    assert blocks.shape == (12, 3, 3, 3)
    assert torch.equal(blocks[7], x[1, :, 0:3, 3:6])  # image 1 (6 blocks per image), block row 0, column 1
    assert torch.equal(batch_to_blocks(blocks, 3, 6, 9), x)
    with pytest.raises(ValueError, match="divide"):
        blocks_to_batch(x, 4)
    # Sixt's p|i decoder: LocalPixelCNNHead(horizon=i-1) on the blocks sees exactly the earlier pixels of the
    # pixel's own i×i block
    torch.manual_seed(0)
    i = 3
    head = LocalPixelCNNHead(3, 4, LIK.param_channels, horizon=i - 1, width=16, num_blocks=1).double()

    def block_head(img: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return batch_to_blocks(head(blocks_to_batch(img, i), blocks_to_batch(cond, i)), i, *img.shape[2:])

    for (r, c), got in _dependence(block_head, 6, 6, "x").items():
        r0, c0 = r - r % i, c - c % i
        want = {(rr, cc) for rr in range(r0, r0 + i) for cc in range(c0, c0 + i) if (rr, cc) < (r, c)}
        assert got == want, (r, c)
