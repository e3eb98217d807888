"""Feature-extraction throughput on CPU, and the peak memory of ``patchvae extract`` over a large folder.

    python benchmarks/extract_throughput.py                  # 32×32 throughput + RSS over 10,000 PNGs
    python benchmarks/extract_throughput.py --images 1000 --skip-rss

Measures, for the default architecture (``patchvae_resnet9``: ResNet-9 φ, N=16, d_p=6; randomly
initialised weights: speed and memory do not depend on the values):

* in-memory throughput (images/s) of ``patchvae.extract_features`` on uint8 32×32 images, for the
  default layer (``pooled``) and for all PatchVAE layers;
* wall time and peak RSS of ``patchvae extract FOLDER --out feats.npy`` (a subprocess) over folders
  of generated 32×32 PNGs (1,000 and ``--folder-images``, default 10,000), showing that memory does
  not grow with the number of images.

Prints a summary and writes JSON to ``benchmarks/results/extract_throughput-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import patchvae  # noqa: E402
from patchvae.models import create, save_pretrained  # noqa: E402

ALL_LAYERS = ["stem", "layer1", "layer2", "features", "pooled", "visibility", "appearance", "patch_code"]


def _best_rate(run, count: int, repeats: int) -> float:
    run()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return count / best


def throughput(model: torch.nn.Module, images: torch.Tensor, layer: list[str], batch_size: int, repeats: int,
               amp: str | None = "auto") -> float:
    """images/s of ``extract_features`` (preprocessing included) at the given autocast precision."""
    return _best_rate(lambda: patchvae.extract_features(model, images, layer=layer, batch_size=batch_size,
                                                        progress=False, amp=amp), len(images), repeats)


def eager_fp32_baseline(model: torch.nn.Module, images: torch.Tensor, batch_size: int, repeats: int) -> float:
    """images/s of a plain loop: batched preprocessing, then the float32 eager encoder (pooled φ features)."""
    from patchvae.data import BatchPreprocess

    prep = BatchPreprocess(model.data_config)

    @torch.no_grad()
    def run() -> None:
        for start in range(0, len(images), batch_size):
            model.backbone.forward_features(prep(images[start : start + batch_size])).mean((2, 3))

    return _best_rate(run, len(images), repeats)


def make_folder(path: Path, count: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        sub = path / f"{i // 1000:02d}"
        sub.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)).save(sub / f"{i:05d}.png")
    return path


_RSS_WRAPPER = (
    "import resource, subprocess, sys, time; t = time.perf_counter(); "
    "rc = subprocess.run(sys.argv[1:]).returncode; t = time.perf_counter() - t; "
    "print(rc, t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def run_with_peak_rss(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of ``command`` in its own process."""
    out = subprocess.run([sys.executable, "-c", _RSS_WRAPPER, *command], capture_output=True, text=True, env=env, check=True)
    rc, seconds, rss_kib = out.stdout.strip().splitlines()[-1].split()
    if int(rc) != 0:
        raise RuntimeError(f"{' '.join(command)} failed with exit code {rc}")
    return float(seconds), int(rss_kib) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2048, help="images of the in-memory throughput run")
    parser.add_argument("--folder-images", type=int, default=10_000, help="PNG files of the large folder")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (best is reported)")
    parser.add_argument("--skip-rss", action="store_true", help="only the in-memory throughput")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create("patchvae_resnet9").eval()
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, size=(args.images, 3, 32, 32), dtype=np.uint8))
    result: dict = {
        "model": "patchvae_resnet9 (N=16, d_p=6, random weights)",
        "input": "uint8 3x32x32",
        "batch_size": args.batch_size,
        "threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_before": os.getloadavg(),
        "torch": torch.__version__,
        "patchvae": patchvae.__version__,
    }
    base = result["images_per_s_eager_fp32_baseline"] = eager_fp32_baseline(model, images, args.batch_size, args.repeats)
    result["images_per_s_pooled_fp32"] = throughput(model, images, ["pooled"], args.batch_size, args.repeats, amp=None)
    result["images_per_s_pooled"] = throughput(model, images, ["pooled"], args.batch_size, args.repeats)
    result["images_per_s_all_layers"] = throughput(model, images, ALL_LAYERS, args.batch_size, args.repeats)
    print(f"feature extraction, {args.images} uint8 images 3x32x32, batch {args.batch_size}, {args.threads} thread(s):")
    print(f"  {'configuration':<52} {'images/s':>9} {'x base':>7}")
    for label, key in (("eager fp32 loop, pooled φ (baseline)", "images_per_s_eager_fp32_baseline"),
                       ("extract_features(amp=None), pooled: fp32 channels_last", "images_per_s_pooled_fp32"),
                       ("extract_features() default, pooled", "images_per_s_pooled"),
                       (f"extract_features() default, {len(ALL_LAYERS)} layers", "images_per_s_all_layers")):
        print(f"  {label:<52} {result[key]:>9.0f} {result[key] / base:>7.2f}")

    if not args.skip_rss:
        with tempfile.TemporaryDirectory(prefix="patchvae-bench-") as tmp:
            tmp = Path(tmp)
            weights = save_pretrained(model, tmp / "weights")
            env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(args.threads)}
            baseline = [sys.executable, "-c", "import patchvae.models as m; m.from_pretrained(__import__('sys').argv[1])", str(weights)]
            _, result["rss_mib_model_only"] = run_with_peak_rss(baseline, env)
            print(f"peak RSS of loading the model alone: {result['rss_mib_model_only']:.0f} MiB")
            for count in sorted({1000, args.folder_images}):
                start = time.perf_counter()
                folder = make_folder(tmp / f"pngs_{count}", count)
                made = time.perf_counter() - start
                command = [sys.executable, "-m", "patchvae", "extract", str(folder), "--model", str(weights),
                           "--out", str(tmp / f"feats_{count}.npy"), "--batch-size", str(args.batch_size), "--no-progress"]
                seconds, rss = run_with_peak_rss(command, env)
                shape = np.load(tmp / f"feats_{count}.npy", mmap_mode="r").shape
                assert shape == (count, 128), shape
                result[f"cli_{count}"] = {"seconds": seconds, "images_per_s": count / seconds, "peak_rss_mib": rss, "png_seconds": made}
                print(f"patchvae extract over {count} PNGs: {seconds:6.1f} s ({count / seconds:6.1f} images/s end to end, "
                      f"process start and model load included), peak RSS {rss:.0f} MiB")

    result["load_average_after"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"extract_throughput-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
