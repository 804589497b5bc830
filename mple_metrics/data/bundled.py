"""The corpus shipped inside the package: Spanish (Reina-Valera 1909) -> English (King James), with
the World English Bible and the American Standard Version as second and third references for every
valid/test sentence.  All public domain; sources, filters and counts in ``bundled/README.md``;
rebuilt by ``tools/build_bundled_corpus.py``."""

from __future__ import annotations

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
