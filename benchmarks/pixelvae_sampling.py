"""Autoregressive sampling of the PixelVAE decoders: the fast samplers vs the naive one (issue 10 item 4).

Both draw x ~ p(x | z) for the same z and the same pre-drawn pixel noise, from the same conditioning map
(computed once, outside the timing): the naive sampler runs the whole PixelCNN head over the whole image
for every pixel in raster order; the fast one evaluates, for a local head (VAE h=0, LPVAE h=1, 2), only
each pixel's (2h+1)×(2h+1) window, batching the pixels of a wavefront (h+1)·i + j = t (h = 0: one pass),
and for the full head only the crop its receptive field covers. The samples must be identical; the
speed-up is naive time / fast time (target ≥ 5× for h ≤ 2 at 32×32). Random-init models in eval mode,
float32, ``--threads`` CPU threads (default 1); results go to ``benchmarks/results/pixelvae_sampling_cpu.json``.

    python benchmarks/pixelvae_sampling.py                       # CIFAR-10 CPU-size heads, B=8, 32×32
    python benchmarks/pixelvae_sampling.py --batch 32 --heads h1 h2 --no-full
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

import patchvae.models as zoo
from patchvae.models.pixelvae import autoregressive_sample

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _time(fn) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="resnet", choices=["resnet", "mlp"], help="CIFAR-10 (32×32×3) or MNIST (28×28×1) networks")
    parser.add_argument("--size", default="small", choices=["small", "ref"], help="CPU size (default) or the paper's")
    parser.add_argument("--heads", nargs="+", default=["h0", "h1", "h2"], choices=["h0", "h1", "h2", "full"])
    parser.add_argument("--no-full", dest="full", action="store_false", help="skip the full (FPVAE) head")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "pixelvae_sampling_cpu.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    heads = list(dict.fromkeys(args.heads + (["full"] if args.full else [])))
    rows = []
    print(f"{'model':<28} {'fast s':>8} {'naive s':>8} {'speed-up':>9}  identical")
    for head in heads:
        name = f"pixelvae_{args.arch}_{head}" + ("_small" if args.size == "small" else "")
        torch.manual_seed(args.seed)
        model = zoo.create(name).eval()
        dec = model.decoder
        with torch.no_grad():
            cond = dec.condition(torch.randn(args.batch, model.latent_dim))
            _, _, height, width = cond.shape
            noise = dec.likelihood.sample_noise(args.batch, height, width, generator=torch.Generator().manual_seed(1))
            fast_s, fast = _time(lambda: autoregressive_sample(dec.head, dec.likelihood, cond, noise, method="fast"))
            naive_s, naive = _time(lambda: autoregressive_sample(dec.head, dec.likelihood, cond, noise, method="naive"))
        same = torch.equal(fast, naive)
        rows.append({"model": name, "batch": args.batch, "height": height, "width": width, "fast_s": fast_s,
                     "naive_s": naive_s, "speedup": naive_s / fast_s, "identical": same})
        print(f"{name:<28} {fast_s:8.3f} {naive_s:8.3f} {naive_s / fast_s:8.1f}x  {same}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
                                    "threads": args.threads, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
