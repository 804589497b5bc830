"""The ``mple`` command line.  Each subcommand lives in its own module under
``mple_metrics.commands`` and adds itself to the parser through ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import NoReturn

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
    "mple_metrics.commands.estimate",
    "mple_metrics.commands.proxies",
    "mple_metrics.commands.landscape",
)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with its errors on one line (``mple bleu: error: argument --device: ...``), exit
    status 2, and the usage left to ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser below ``parser`` (subcommands and their actions, e.g. ``data info``)."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                found += [sub, *_subparsers(sub)]
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="mple",
        description="Analysis of non-autoregressive translation learning (Huang et al., ICML 2022): "
                    "exact kernels (BLEU on token ids, AXE, OaXE), datasets, a compact AT/NAT "
                    "trainer, and the conditional total correlation C of a dataset (mple estimate tc).  "
                    "Bad input exits with status 2 and a one-line message.",
    )
    parser.add_argument("--version", action="version", version=f"mple_metrics {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an error (also accepted after the command)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    for sub in _subparsers(parser):
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="show the Python traceback of an error")
        sub.set_defaults(command_prog=sub.prog)  # the innermost parser's name wins: "mple data info"
    return parser


#: Errors that bad input raises in the library (CheckpointError and UnicodeDecodeError are
#: ValueErrors; OSError covers missing, unreadable and unwritable paths; torch raises RuntimeError).
INPUT_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, OSError, RuntimeError)


def _one_line(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        text = f"{error.filename}: {error.strerror}"
        if error.filename2 is not None:
            text = f"{error.filename} -> {error.filename2}: {error.strerror}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _silence_stdout() -> None:
    """Python's recipe for a closed pipe (``mple bleu ... | head -1``): point stdout at devnull so
    the flush at exit does not raise BrokenPipeError again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout replaced (tests) or already closed
        pass


def _flush_stdout() -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()


def main(argv: list[str] | None = None) -> int:
    """Run ``mple`` with ``argv``; returns the exit status: 0 ok, 2 bad input (argparse raises
    SystemExit(2) for the arguments it refuses), 1 an internal error or a closed output pipe, 130
    interrupted.  Errors are one line on stderr; ``--debug`` shows the traceback instead."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit:  # --help, --version or a usage error: flush here, where a closed pipe is caught
        _flush_stdout()
        raise
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    prog = getattr(args, "command_prog", f"mple {args.command}")
    try:
        status = int(args.run(args) or 0)
        sys.stdout.flush()
        return status
    except BrokenPipeError:  # the reader of our stdout went away: stop quietly
        _silence_stdout()
        return 1
    except KeyboardInterrupt:
        if args.debug:
            raise
        return 130
    except INPUT_ERRORS as error:
        if args.debug:
            raise
        print(f"{prog}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except Exception as error:  # a bug: still no traceback unless asked for
        if args.debug:
            raise
        print(f"{prog}: internal error: {type(error).__name__}: {_one_line(error)} (run 'mple --debug "
              f"{args.command} ...' for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
