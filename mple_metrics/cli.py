"""The ``mple`` command line.  Each subcommand lives in its own module under
``mple_metrics.commands`` and adds itself to the parser through ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__

#: Modules that define subcommands, in the order ``mple --help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "mple_metrics.commands.bleu",
    "mple_metrics.commands.data",
    "mple_metrics.commands.demo",
    "mple_metrics.commands.train",
    "mple_metrics.commands.translate",
    "mple_metrics.commands.distill",
    "mple_metrics.commands.evaluate",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mple",
        description="Analysis of non-autoregressive translation learning (Huang et al., ICML 2022): "
                    "exact kernels (BLEU on token ids, AXE, OaXE), datasets, and a compact AT/NAT "
                    "trainer.",
    )
    parser.add_argument("--version", action="version", version=f"mple_metrics {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, UnicodeDecodeError) as error:
        print(f"mple {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
