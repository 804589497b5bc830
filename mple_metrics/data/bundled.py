"""The corpus shipped inside the package: Spanish (Reina-Valera 1909) -> English (World English
Bible), with three extra references for every valid/test sentence (``ref1`` Bible in Basic English,
``ref2`` Darby, ``ref3`` Young's Literal Translation), each from a translation lineage of its own, so
that no two of target and references score a corpus BLEU above 45 against each other.  All public
domain; sources, filters, counts and the references' BLEU matrix in ``bundled/README.md``; rebuilt
by ``tools/build_bundled_corpus.py``.  The split loader reads every ``{split}.refN.gz`` present."""

from __future__ import annotations

import os
from pathlib import Path

from .dataset import Dataset, load_dataset

#: Directory name of the bundled corpus inside the package; also accepted by commands as a DIR.
BUNDLED_NAME = "bundled"


def bundled_corpus() -> Path:
    """Directory of the bundled corpus (dataset directory format, gzip'd files)."""
    path = Path(__file__).resolve().parent / BUNDLED_NAME
    if not (path / "train.src.gz").is_file():
        raise FileNotFoundError(f"the bundled corpus is missing from {path}; reinstall mple_metrics "
                                f"or rebuild it with tools/build_bundled_corpus.py")
    return path


def load_bundled() -> Dataset:
    """The bundled corpus' train/valid/test splits."""
    return load_dataset(bundled_corpus())


def resolve_dataset_path(path: str | Path) -> Path:
    """``"bundled"`` means :func:`bundled_corpus`; anything else is a path."""
    return bundled_corpus() if str(path) == BUNDLED_NAME else Path(path)


def dataset_location(path: str | Path) -> str:
    """The directory a ``--data`` value names, as one absolute path with symlinks resolved
    (``bundled`` and its directory are one), for comparing where numbers came from."""
    return os.path.realpath(resolve_dataset_path(path))
