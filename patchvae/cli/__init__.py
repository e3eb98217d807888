"""``patchvae`` command line: one sub-command per task, defined in the modules of this package.

Each module exposes ``add_commands(subparsers)`` and imports heavy dependencies only inside its
command functions, so ``patchvae --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from ..version import __version__

__all__ = ["main"]

_COMMAND_MODULES = ("zoo", "training", "evaluation")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="patchvae", description="PatchVAE model zoo: models, pretrained weights, training recipes, evaluation."
    )
    parser.add_argument("--version", action="version", version=f"patchvae {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    level = logging.WARNING - 10 * min(args.verbose, 2) if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, OSError, RuntimeError) as err:
        if args.verbose >= 2:
            raise
        print(f"patchvae {args.command}: error: {err}", file=sys.stderr)
        return 1
