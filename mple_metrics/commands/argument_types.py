"""Argument types shared by every ``mple`` command, so that an option is checked the same way
wherever it appears.

Each is an ``argparse`` ``type=`` function: a bad value raises ``argparse.ArgumentTypeError`` and
argparse refuses it with exit status 2 and one line naming the option, e.g.
``mple train: error: argument --seed: must be an integer in [0, 9223372036854775807], got ...``.
Paths are checked without being opened, so ``/dev/stdin``, FIFOs and process substitution
(``<(...)``) are accepted as inputs.  Output paths are checked up front by creating and removing a
temporary file where they will be written, so an unwritable destination is refused before any work.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path

#: Seeds are stored as int64 (torch generators, JSON configs): ``0 <= seed <= SEED_MAX``.
SEED_MAX = 2**63 - 1


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def bootstrap_resamples(text: str) -> int:
    """A number of bootstrap resamples: an integer >= ``estimators.bootstrap.MIN_RESAMPLES``."""
    from ..estimators.bootstrap import check_resamples  # imported when the option is given

    try:
        return check_resamples(_int(text))
    except ValueError as error:  # reworded without the library's argument name
        raise argparse.ArgumentTypeError(str(error).removeprefix("n_resamples ")) from None


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {value}")
    return value


def seed(text: str) -> int:
    """A random seed: an integer in ``[0, SEED_MAX]``."""
    value = _int(text)
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, {SEED_MAX}] (2**63 - 1), got {value}")
    return value


def finite_float(text: str) -> float:
    """A finite number (no nan or inf)."""
    return _float(text)


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {value:g}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {value:g}")
    return value


def probability(text: str) -> float:
    """A number in [0, 1]."""
    value = _float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a probability in [0, 1], got {value:g}")
    return value


def device(text: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N``, refused when CUDA (or that GPU) is not available."""
    import torch

    if text == "cpu":
        return text
    kind, _, index = text.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise argparse.ArgumentTypeError(f"must be 'cpu', 'cuda' or 'cuda:N', got {text!r}")
    if not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text!r} was asked for but CUDA is not available (torch "
                                         f"{torch.__version__}, CUDA build: {torch.version.cuda})")
    if index and int(index) >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{text!r} does not exist ({torch.cuda.device_count()} CUDA "
                                         f"device(s): cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    return text


def existing_path(text: str) -> Path:
    """An existing file or directory (e.g. a checkpoint or a run directory), checked early so a
    typo is reported before any work starts."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text} does not exist")
    return path


def input_file(text: str) -> Path:
    """An existing, readable path that is not a directory (a file, ``/dev/stdin``, a FIFO...)."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"file not found: {text}")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory; expected a file")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text} is not readable (permission denied)")
    return path


def input_file_or_stdin(text: str) -> str | Path:
    """``-`` (standard input) or an :func:`input_file`."""
    return "-" if text == "-" else input_file(text)


def _probe_writable(directory: Path, text: str) -> None:
    """Create and remove a temporary file in ``directory``: ``os.access`` alone says yes to root
    everywhere, and to anyone on a file system that refuses writes anyway (/proc, a read-only
    mount), which would only show after all the work, when the result is written."""
    try:
        handle, name = tempfile.mkstemp(prefix=".mple-write-check-", dir=directory)
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot write {text}: {directory} is not writable "
                                         f"({error.strerror or error})") from None
    os.close(handle)
    try:
        os.unlink(name)
    except OSError:
        pass


def _check_writable_location(path: Path, text: str) -> None:
    """``path`` can be written: its nearest existing ancestor directory (the parent, or where the
    missing parents will be created) is a directory that accepts a new file."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise argparse.ArgumentTypeError(f"cannot create {text}: {parent} is not a directory")
    if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot create {text}: {parent} is not writable")
    _probe_writable(parent, text)


def output_file(text: str) -> Path:
    """A file to write (atomically, so it is replaced, never written through): absent or a regular
    file, not a directory nor a device or FIFO, in a directory that accepts new files (checked by
    creating one); missing parent directories are created."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory; expected a file name")
    if path.exists() and not path.is_file():
        raise argparse.ArgumentTypeError(f"{text} is not a regular file (files are written to a "
                                         f"temporary file and renamed over the target)")
    _check_writable_location(path, text)
    return path


def output_file_or_stdout(text: str) -> str | Path:
    """``-`` (standard output) or an :func:`output_file`."""
    return "-" if text == "-" else output_file(text)


def output_dir(text: str) -> Path:
    """A directory to write into: absent (created, in a writable place) or an existing, writable
    directory, not a file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} exists and is not a directory")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise argparse.ArgumentTypeError(f"cannot write into {text}: it is not writable")
        _probe_writable(path, text)
    else:
        _check_writable_location(path, text)
    return path
