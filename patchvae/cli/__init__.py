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
    _add_verbosity(parser, default=0)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").add_commands(sub)
    for command in sub.choices.values():  # also after the command: patchvae train ... -v
        _add_verbosity(command, default=argparse.SUPPRESS)
    return parser


def _add_verbosity(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=default,
                        help="more logging: -v debug messages, -vv also the traceback of an error")
    parser.add_argument("-q", "--quiet", action="count", default=default,
                        help="less logging: -q warnings and errors only, -qq errors only")


def log_level(verbose: int, quiet: int) -> int:
    """The logging level of ``-v``/``-q`` counts: INFO by default (progress, what was loaded), -v DEBUG,
    -q WARNING, -qq ERROR."""
    return min(max(logging.INFO - 10 * verbose + 10 * quiet, logging.DEBUG), logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    args.verbose, args.quiet = getattr(args, "verbose", 0) or 0, getattr(args, "quiet", 0) or 0
    level = log_level(args.verbose, args.quiet)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if level <= logging.DEBUG:  # our debug messages, not every library's
        logging.getLogger().setLevel(logging.INFO)
        logging.getLogger("patchvae").setLevel(logging.DEBUG)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if args.verbose >= 2:
            raise
        print(f"patchvae {args.command}: interrupted", file=sys.stderr)
        return 130
    except _user_errors() as err:
        if args.verbose >= 2:
            raise
        print(f"patchvae {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 1


def _user_errors() -> tuple[type[BaseException], ...]:
    """What a command reports as one line (``-vv`` shows the traceback): bad input, files, data, and the
    errors of the libraries that read them (an image over PIL's decompression-bomb limit, a damaged
    safetensors file), whichever of those libraries the command imported."""
    errors: list[type[BaseException]] = [ValueError, TypeError, OSError, RuntimeError, MemoryError]
    pil = sys.modules.get("PIL.Image")
    if pil is not None:
        errors.append(pil.DecompressionBombError)
    safetensors = sys.modules.get("safetensors")
    if safetensors is not None and hasattr(safetensors, "SafetensorError"):
        errors.append(safetensors.SafetensorError)
    return tuple(errors)


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if not isinstance(err, MemoryError) else f"out of memory: {text}"
