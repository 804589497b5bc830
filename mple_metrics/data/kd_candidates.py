"""KD candidate directories: several sequence-level KD datasets of one corpus, one per AT teacher,
in a fixed order (dynamic KD's candidate set Γ without the raw target, which every KD dataset keeps
as ``{split}.raw.tgt``).

Layout::

    CAND/candidates.json   {"format": "mple_metrics.kd_candidates", "version": 1,
                            "candidates": [{"name": "kd0", "dir": "kd0", "teacher": ...,
                                            "teacher_sha256": ..., "teacher_model_config": {...},
                                            "splits": {...}}, ...]}
    CAND/kd0/              an ordinary KD dataset directory (``mple distill`` with one teacher)
    CAND/kd1/              ...

``mple distill --teacher A --teacher B --out CAND`` writes one (``mple_metrics.decode.distill``):
``name`` is ``--name`` or the ``dir``; ``splits`` (the split counts of the member's ``kd.json``)
appears once the member is finished.  A plain KD dataset directory (it has ``kd.json``) is a
candidate set of one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..atomic_write import atomic_write_text

CANDIDATES_FILE = "candidates.json"
CANDIDATES_FORMAT = "mple_metrics.kd_candidates"
KD_MANIFEST = "kd.json"


def is_candidate_dir(path: str | Path) -> bool:
    return (Path(path) / CANDIDATES_FILE).is_file()


def read_candidates_manifest(path: str | Path) -> dict[str, Any]:
    """The parsed ``candidates.json`` of a candidate directory (ValueError if malformed)."""
    manifest_path = Path(path) / CANDIDATES_FILE
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{manifest_path} is not valid JSON ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != CANDIDATES_FORMAT \
            or not isinstance(manifest.get("candidates"), list):
        raise ValueError(f"{manifest_path} is not a KD candidate manifest (format {CANDIDATES_FORMAT!r} "
                         f"with a list of candidates)")
    for i, entry in enumerate(manifest["candidates"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("dir"), str) or "/" in entry["dir"]:
            raise ValueError(f"{manifest_path}: candidate {i} has no valid 'dir' entry")
    return manifest


def write_candidates_manifest(path: str | Path, candidates: list[dict[str, Any]]) -> None:
    """Write ``candidates.json`` atomically (entries need at least ``name`` and ``dir``)."""
    manifest = {"format": CANDIDATES_FORMAT, "version": 1, "candidates": candidates}
    atomic_write_text(Path(path) / CANDIDATES_FILE, json.dumps(manifest, indent=1) + "\n")


def kd_dataset_dirs(path: str | Path) -> list[Path]:
    """The KD dataset directories ``path`` stands for, in order: the members of a candidate
    directory, or ``[path]`` for a plain KD dataset directory.

    Raises:
        FileNotFoundError: ``path`` is not a directory, or a listed member is missing.
        ValueError: ``path`` is neither a KD dataset (no ``kd.json``) nor a candidate directory.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"KD directory {path} does not exist")
    if is_candidate_dir(path):
        members = [path / entry["dir"] for entry in read_candidates_manifest(path)["candidates"]]
        for member in members:
            if not (member / KD_MANIFEST).is_file():
                raise FileNotFoundError(f"candidate {member} listed in {path / CANDIDATES_FILE} is not a "
                                        f"finished KD dataset (no {KD_MANIFEST}); rerun mple distill")
        return members
    if (path / KD_MANIFEST).is_file():
        return [path]
    raise ValueError(f"{path} is not a KD dataset directory (no {KD_MANIFEST}) nor a KD candidate "
                     f"directory (no {CANDIDATES_FILE}); make one with mple distill")
