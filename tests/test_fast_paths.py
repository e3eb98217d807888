"""CPU training fast paths: GEMM weight gradients for small-map transposed convs, the retained heap."""

from __future__ import annotations

import copy
import io
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from patchvae.models import create
from patchvae.recipes import get_recipe
from patchvae.training.distributed import World
from patchvae.training.gemm_grads import (
    MAX_GEMM_POSITIONS,
    GemmGradConvTranspose2d,
    conv_weight_grad_gemm,
    use_gemm_weight_grads,
)
from patchvae.training.tasks import make_task

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    "cin, cout, kernel, stride, padding, size",
    [(5, 7, (3, 3), (1, 1), (1, 1), 6), (4, 6, (4, 4), (2, 2), (1, 1), 8), (3, 8, (7, 7), (2, 2), (3, 3), 9),
     (6, 2, (1, 1), (2, 2), (0, 0), 5), (2, 3, (3, 2), (1, 2), (0, 1), 7)],
)
def test_gemm_weight_grad_equals_the_convolution_backward(cin, cout, kernel, stride, padding, size):
    torch.manual_seed(0)
    x = torch.randn(3, cin, size, size + 1, dtype=torch.float64)
    w = torch.randn(cout, cin, *kernel, dtype=torch.float64)
    grad_out = torch.randn_like(nn.functional.conv2d(x, w, stride=stride, padding=padding))
    expected = torch.ops.aten.convolution_backward(grad_out, x, w, None, stride, padding, [1, 1], False, [0, 0], 1,
                                                   [False, True, False])[1]
    got = conv_weight_grad_gemm(x, grad_out, kernel, stride, padding)
    assert got.shape == w.shape
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def _grads(layer: nn.Module, x: torch.Tensor, grad_out: torch.Tensor | None, autocast: bool):
    layer.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        y = layer(x)
    grad_out = torch.randn_like(y) if grad_out is None else grad_out
    y.backward(grad_out)
    return y, x.grad, layer.weight.grad, None if layer.bias is None else layer.bias.grad, grad_out


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(
    "cin, cout, kernel, stride, padding, size, bias",
    [(64, 32, 4, 2, 1, 4, False),  # PatchVAE's first decoder block, scaled down
     (24, 64, 1, 1, 0, 4, True),  # the decoder stem
     (16, 8, 4, 1, 0, 1, True)],  # the β-VAE/BiGAN bottleneck expansion from 1×1
)
def test_switched_layer_matches_conv_transpose_under_bf16(cin, cout, kernel, stride, padding, size, bias, channels_last):
    torch.manual_seed(0)
    plain = nn.ConvTranspose2d(cin, cout, kernel, stride, padding, bias=bias)
    fast = copy.deepcopy(plain)
    assert use_gemm_weight_grads(fast) == 1 and type(fast) is GemmGradConvTranspose2d
    x = torch.randn(8, cin, size, size)
    if channels_last:
        plain.to(memory_format=torch.channels_last)
        fast.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y0, gx0, gw0, gb0, grad_out = _grads(plain, x, None, autocast=True)
    y1, gx1, gw1, gb1, _ = _grads(fast, x, grad_out, autocast=True)
    assert y1.dtype == y0.dtype == torch.bfloat16
    assert torch.equal(y1, y0) and torch.equal(gx1, gx0)  # forward and input gradient: the same kernels
    assert gw1.dtype == gw0.dtype == torch.float32 and gw1.shape == gw0.shape
    for layout in (torch.contiguous_format, torch.channels_last):  # the parameter's layout, as PyTorch's
        assert gw1.is_contiguous(memory_format=layout) == gw0.is_contiguous(memory_format=layout)
    assert gw1.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    # against the exact (float64) gradient of the bf16-rounded operands: within a bf16 ulp of the largest entry,
    # and no less accurate than PyTorch's own bf16 kernel (which, without AVX-512 BF16, accumulates in bf16 steps
    # and is the less accurate of the two; with it, both round once)
    exact = _exact_weight_grads(plain, x, grad_out)
    for got, theirs, ref in ((gw1, gw0, exact[0]), (gb1, gb0, exact[1]) if bias else (None, None, None)):
        if got is None:
            continue
        scale = float(ref.abs().max())
        err_ours, err_torch = float((got.double() - ref).abs().max()), float((theirs.double() - ref).abs().max())
        assert err_ours <= 2**-8 * scale, (err_ours, scale)
        assert err_ours <= 1.5 * err_torch + 1e-6 * scale, (err_ours, err_torch)


def _exact_weight_grads(layer: nn.ConvTranspose2d, x: torch.Tensor, grad_out: torch.Tensor):
    """(dW, db) in float64 of the layer at the bf16-rounded input, weight and output gradient."""
    ref = copy.deepcopy(layer).double()
    ref.weight.data = layer.weight.detach().bfloat16().double()
    y = ref(x.detach().bfloat16().double())
    y.backward(grad_out.bfloat16().double())
    return ref.weight.grad, None if ref.bias is None else ref.bias.grad


@pytest.mark.parametrize("case", ["fp32", "large map", "no grad", "output_size"])
def test_switched_layer_falls_back_to_pytorch_bitwise(case):
    torch.manual_seed(0)
    plain = nn.ConvTranspose2d(16, 8, 4, 2, 1)
    fast = copy.deepcopy(plain)
    use_gemm_weight_grads(fast)
    side = 4 if case != "large map" else int(MAX_GEMM_POSITIONS**0.5) + 1
    x = torch.randn(4, 16, side, side)
    autocast = case != "fp32"
    if case == "no grad":
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            assert torch.equal(fast(x), plain(x))
        return
    if case == "output_size":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert torch.equal(fast(x, output_size=[9, 9]), plain(x, output_size=[9, 9]))
        return
    results = [_grads(layer, x, grad_out, autocast) for layer, grad_out in ((plain, None),)]
    grad_out = results[0][-1]
    results.append(_grads(fast, x, grad_out, autocast))
    for a, b in zip(results[0][:4], results[1][:4]):
        assert torch.equal(a, b)


def test_switching_a_patchvae_keeps_its_parameters_and_copies():
    model = create("patchvae_resnet9")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert use_gemm_weight_grads(model) == 4  # decoder stem, two blocks, head
    assert use_gemm_weight_grads(model) == 0  # idempotent
    assert isinstance(model.decoder.head, nn.ConvTranspose2d)
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    clone = copy.deepcopy(model)
    with torch.no_grad():
        clone.decoder.head.weight.zero_()
    assert not torch.equal(clone.decoder.head.weight, model.decoder.head.weight)
    buffer = io.BytesIO()
    torch.save(model, buffer)  # the switched class pickles by reference
    buffer.seek(0)
    restored = torch.load(buffer, weights_only=False)
    assert type(restored.decoder.head) is GemmGradConvTranspose2d


@pytest.mark.parametrize("amp, flag, switched", [("bf16", True, True), ("bf16", False, False), ("none", True, False)])
def test_make_task_switches_only_bf16_cpu_training(amp, flag, switched):
    recipe = get_recipe("fmnist_patchvae").with_overrides({"amp": amp, "gemm_weight_grads": flag})
    model = create(recipe.model, **recipe.model_args)
    make_task(model, recipe, CPU, World(), torch.bfloat16 if amp == "bf16" else None)
    assert (type(model.decoder.blocks[0].conv) is GemmGradConvTranspose2d) == switched


def test_training_step_with_gemm_grads_matches_pytorch():
    x = torch.rand(16, 1, 32, 32) * 2 - 1
    params = []
    for flag in (False, True):
        torch.manual_seed(0)
        recipe = get_recipe("fmnist_patchvae").with_overrides({"amp": "bf16", "gemm_weight_grads": flag})
        model = create(recipe.model, **recipe.model_args)
        task = make_task(model, recipe, CPU, World(), torch.bfloat16)
        torch.manual_seed(1)
        parts = task.train_step(x, 0)
        params.append((float(parts["loss"]), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (loss0, g0), (loss1, g1) = params
    assert loss1 == loss0  # same forward
    for name, grad in g0.items():  # the gradients differ by bf16 rounding only
        torch.testing.assert_close(g1[name], grad, rtol=0, atol=2e-2 * float(grad.abs().max()), msg=name)


def _retained(env: dict[str, str]) -> str:
    code = "from patchvae._runtime import retain_freed_memory as r; print(r(), r())"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, **env}).stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_retained_heap_is_on_by_default_and_can_be_switched_off():
    assert _retained({}) == "True True"
    assert _retained({"PATCHVAE_RETAIN_FREED_MEMORY": "0"}) == "False False"


@pytest.mark.parametrize(("machine", "onednn", "avx512_bf16", "amx", "expected"), [
    ("x86_64", True, False, False, None),            # plain AVX-512: oneDNN emulates bf16, 0.36x float32's speed
    ("x86_64", True, True, False, torch.bfloat16),   # AVX512-BF16 (e.g. AMD Zen 4)
    ("x86_64", True, False, True, torch.bfloat16),   # AMX (Intel Sapphire Rapids and later)
    ("x86_64", False, True, True, None),             # no oneDNN bf16 at all
    ("aarch64", True, False, False, torch.bfloat16),  # other architectures keep oneDNN's answer
])
def test_auto_amp_picks_bf16_only_where_the_cpu_has_bf16_instructions(monkeypatch, machine, onednn, avx512_bf16, amx,
                                                                        expected):
    import patchvae._runtime as runtime

    monkeypatch.setattr(runtime.platform, "machine", lambda: machine)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert runtime.resolve_amp("auto", torch.device("cpu")) is expected
    assert runtime.resolve_amp("bf16", torch.device("cpu")) is torch.bfloat16  # asked for explicitly: always honoured
    assert runtime.resolve_amp("none", torch.device("cpu")) is None
