"""Import cost of ``import patchvae`` on top of ``import torch`` (fresh interpreters, best of N).

    python benchmarks/import_time.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def best_of(code: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", f"import time; t=time.perf_counter(); {code}; print(time.perf_counter()-t)"],
            capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        times.append(float(out.stdout.strip()))
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    rows = {
        "import torch": best_of("import torch", args.repeat),
        "import torch, patchvae": best_of("import torch; import patchvae", args.repeat),
        "import patchvae": best_of("import patchvae", args.repeat),
        "import patchvae.models (registry, timm, torchvision)": best_of("import patchvae.models", args.repeat),
    }
    print(f"{'statement':<55} {'seconds (best of %d)' % args.repeat:>22}")
    for name, t in rows.items():
        print(f"{name:<55} {t:>22.3f}")
    extra = rows["import torch, patchvae"] - rows["import torch"]
    print(f"\n'import patchvae' adds {extra:.3f} s over 'import torch' (target: <= 0.3 s)")
    out = ROOT / "benchmarks" / "results" / "import_time.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**rows, "patchvae_over_torch": extra}, indent=2))


if __name__ == "__main__":
    main()
