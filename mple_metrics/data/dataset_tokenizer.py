"""A dataset directory that carries the tokenizers its text must be read with: ``DIR/tokenizer/``.

Some datasets are written for one tokenizer: the token-level Synthetic A and B store their sources
as the target tokenizer's pieces, which only that tokenizer reads back as the same tokens (a
tokenizer learnt afresh on the pieces would split and merge them differently, and the NAT's
position-by-position copy of the source would no longer line up with the target).  Such a dataset
holds a :class:`TokenizerPair` directory named ``tokenizer`` beside its split files; every command
that would learn a tokenizer on the dataset (``mple train``, ``mple estimate tc``) uses it instead,
and refuses a different ``--tokenizer``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .tokenizer import TokenizerPair

#: Name of the carried tokenizers' directory inside a dataset directory.
DATASET_TOKENIZER_DIR = "tokenizer"


def dataset_tokenizers(path: str | os.PathLike) -> TokenizerPair | None:
    """The tokenizers the dataset at ``path`` carries, or None (no ``tokenizer/``, or a .tsv file)."""
    directory = Path(path) / DATASET_TOKENIZER_DIR
    if not Path(path).is_dir() or not directory.is_dir():
        return None
    return TokenizerPair.load(directory)


def save_dataset_tokenizers(path: str | os.PathLike, tokenizers: TokenizerPair | None) -> None:
    """Make ``path/tokenizer`` hold ``tokenizers`` (None: remove it, the text is plain text).  Written
    to a temporary folder and renamed, so a kill never leaves half of it."""
    path = Path(path)
    target = path / DATASET_TOKENIZER_DIR
    if target.is_dir():
        shutil.rmtree(target)
    if tokenizers is not None:
        save_tokenizers_whole(tokenizers, target)


def save_tokenizers_whole(tokenizers: TokenizerPair, target: str | os.PathLike) -> None:
    """Save ``tokenizers`` as the folder ``target`` (which must not exist yet), written to a
    temporary folder beside it and renamed, so a kill never leaves half of it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".tokenizer.", dir=target.parent))
    try:
        tokenizers.save(scratch)
        os.replace(scratch, target)
    finally:
        if scratch.exists():
            shutil.rmtree(scratch)


def _files(tokenizers: TokenizerPair) -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        tokenizers.save(tmp)
        return {str(p.relative_to(tmp)): p.read_bytes() for p in sorted(Path(tmp).rglob("*")) if p.is_file()}


def same_tokenizers(a: TokenizerPair, b: TokenizerPair) -> bool:
    """Whether ``a`` and ``b`` save to the same files (same kinds, vocabularies and models)."""
    return _files(a) == _files(b)


def check_dataset_tokenizers(data: str | os.PathLike, tokenizers: TokenizerPair, option: str,
                             name: str) -> None:
    """Refuse ``tokenizers`` (given by ``option`` as ``name``) for a dataset that carries others."""
    carried = dataset_tokenizers(data)
    if carried is not None and not same_tokenizers(carried, tokenizers):
        raise ValueError(f"{option} {name} differs from the tokenizer {Path(data) / DATASET_TOKENIZER_DIR} "
                         f"that the dataset is written for; its text reads as the intended tokens only "
                         f"with that one (drop {option})")
