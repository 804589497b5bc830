"""Atomic file writes: a temporary file in the target's folder, fsync, then a rename, so a reader (or a
job resumed after a kill) sees either the old file or the whole new one, never half of it.

The file gets the permissions a plain ``open(path, "w")`` would give it (``0o666`` less the umask).
A process killed while writing leaves its temporary file (``.NAME.XXXXXXXX.tmp``) behind; a job that
resumes in that folder removes such leftovers with :func:`remove_orphan_temporaries`.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

_TEMP_SUFFIX = ".tmp"
#: The names ``tempfile.mkstemp(prefix=".NAME.", suffix=".tmp")`` gives: 8 random characters.
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}" + re.escape(_TEMP_SUFFIX) + "$")
_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's file mode creation mask, read without changing it where the system allows
    (``/proc/self/status`` on Linux); elsewhere it is set and restored under a lock."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Calls ``write(handle)`` on a binary temporary file, then renames it to ``path``.

    The parent folder is created if needed; on any error the temporary file is removed and ``path``
    is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_TEMP_SUFFIX)
    try:
        try:  # mkstemp creates the file 0600; give it open()'s mode
            os.fchmod(fd, 0o666 & ~current_umask())
        except (AttributeError, OSError):  # no fchmod (Windows) or a file system without modes
            pass
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` as UTF-8 (line endings as given) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def remove_orphan_temporaries(directory: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Delete the temporary files that :func:`atomic_write` calls killed mid-write left in
    ``directory`` (and its sub-folders when ``recursive``); returns the removed paths.  Call it
    only where no other process is writing at the same time."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    candidates = directory.rglob(f"*{_TEMP_SUFFIX}") if recursive else directory.glob(f"*{_TEMP_SUFFIX}")
    removed = []
    for path in sorted(candidates):
        if _TEMP_NAME.match(path.name) and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
