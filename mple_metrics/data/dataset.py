"""The dataset directory format every ``mple`` command reads, and its reader/writer.

A dataset is a directory ``DIR`` holding, for each split (``train``, ``valid``, ``test``):

- ``{split}.src`` and ``{split}.tgt``: line-aligned UTF-8, one sentence per line;
- optionally ``{split}.ref1``, ``{split}.ref2``, ...: extra references, line-aligned with ``.src``;
  an empty line means "no extra reference for this sentence";
- any of these may instead be gzip'd (``{split}.src.gz``), read transparently;
- or, instead of all of the above, one ``{split}.tsv`` with ``src<TAB>tgt[<TAB>ref...]`` per line.

Other files (``truth.json``, ``README.md``, ``{split}.ids.gz``, tokenizers) are ignored.

Errors name the file and what is wrong: missing files (with the paths looked for), line counts
that differ (both files and both counts), bytes that are not UTF-8 (file, line, byte offset),
empty splits, and empty source or target lines (file and line number).
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic_write import atomic_write_text

#: Split names, in the order commands report them.
SPLIT_NAMES: tuple[str, ...] = ("train", "valid", "test")

_REF_SUFFIX = re.compile(r"^ref(\d+)$")


@dataclass(frozen=True)
class Split:
    """One split: aligned lists of source sentences, targets, and all references.

    Attributes:
        name: the split's name (``"train"``, ``"valid"``, ``"test"`` or another).
        src: source sentences, one string per sentence.
        tgt: target sentences (the first reference), ``len(tgt) == len(src)``.
        refs: for each sentence, every reference it has, the target first and then the non-empty
            extra references in file order (``ref1``, ``ref2``, ...); ``refs[i][0] == tgt[i]``.
    """

    name: str
    src: list[str]
    tgt: list[str]
    refs: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.src) != len(self.tgt):
            raise ValueError(f"split {self.name!r}: src has {len(self.src)} sentences but tgt has "
                             f"{len(self.tgt)}")
        if not self.refs:
            object.__setattr__(self, "refs", [[t] for t in self.tgt])
        if len(self.refs) != len(self.src):
            raise ValueError(f"split {self.name!r}: refs has {len(self.refs)} entries but src has "
                             f"{len(self.src)}")
        for i, (target, references) in enumerate(zip(self.tgt, self.refs)):
            if not references or references[0] != target:
                raise ValueError(f"split {self.name!r}: refs[{i}] must start with tgt[{i}]")

    def __len__(self) -> int:
        return len(self.src)

    @property
    def extra_refs(self) -> list[list[str]]:
        """For each sentence, its references other than the target (possibly none)."""
        return [r[1:] for r in self.refs]

    def refs_per_sentence(self) -> list[int]:
        """Number of references (target included) of each sentence."""
        return [len(r) for r in self.refs]


class Dataset(Mapping[str, Split]):
    """The splits of one dataset directory, by name; also ``.train``, ``.valid``, ``.test``."""

    def __init__(self, splits: Mapping[str, Split], path: Path | None = None) -> None:
        self._splits = dict(splits)
        self.path = path

    def __getitem__(self, name: str) -> Split:
        try:
            return self._splits[name]
        except KeyError:
            raise KeyError(f"dataset {self.path or ''} has no split {name!r} "
                           f"(has: {', '.join(self._splits)})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._splits)

    def __len__(self) -> int:
        return len(self._splits)

    @property
    def train(self) -> Split:
        return self["train"]

    @property
    def valid(self) -> Split:
        return self["valid"]

    @property
    def test(self) -> Split:
        return self["test"]

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}={len(split)}" for name, split in self._splits.items())
        return f"Dataset({self.path}, {sizes})"


# ------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------

def _find(directory: Path, stem: str) -> Path | None:
    """``stem`` or ``stem.gz`` inside ``directory``; error if both exist (ambiguous)."""
    plain, gzipped = directory / stem, directory / f"{stem}.gz"
    if plain.is_file() and gzipped.is_file():
        raise ValueError(f"both {plain} and {gzipped} exist; keep one")
    if plain.is_file():
        return plain
    if gzipped.is_file():
        return gzipped
    return None


def read_lines(path: str | os.PathLike) -> list[str]:
    """The lines of a UTF-8 text file (``.gz`` decompressed), without line terminators.

    A final newline does not make an extra empty line; ``\\r\\n`` endings are accepted.  Raises
    ``ValueError`` naming the file, line and byte offset when the bytes are not UTF-8.
    """
    path = Path(path)
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise ValueError(f"{path}: not a valid gzip file ({error})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ValueError(f"{path}: not valid UTF-8 at line {line} (byte offset {error.start}: "
                         f"{error.reason}); convert it to UTF-8, e.g. with iconv") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return split_lines(text)


def split_lines(text: str) -> list[str]:
    """Lines of ``text`` as sacrebleu reads a file: split at ``\\n`` only, one trailing ``\\r``
    stripped from each line, no extra empty line after a final newline.

    Unlike ``str.splitlines()``, U+2028, U+2029, form feed, ``\\x1c``-``\\x1e`` and ``\\x85`` stay
    inside their line, so hypotheses and references never shift against each other.
    """
    if text == "":
        return []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _check_nonempty_lines(path: Path, lines: Sequence[str]) -> None:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise ValueError(f"{path}: line {number} is empty; every source and target line must "
                             f"hold a sentence (only .refN files may have empty lines)")


def read_split_files(directory: str | os.PathLike, name: str) -> Split:
    """Read split ``name`` from ``directory`` (``{name}.src/.tgt[/.refN]`` or ``{name}.tsv``)."""
    directory = Path(directory)
    tsv = _find(directory, f"{name}.tsv")
    src_path, tgt_path = _find(directory, f"{name}.src"), _find(directory, f"{name}.tgt")
    if tsv is not None and (src_path is not None or tgt_path is not None):
        raise ValueError(f"{directory}: split {name!r} has both {tsv.name} and .src/.tgt files; "
                         f"keep one form")
    if tsv is not None:
        return read_tsv(tsv, name=name)
    missing = [f"{directory / (name + ext)}[.gz]" for ext, p in ((".src", src_path), (".tgt", tgt_path))
               if p is None]
    if missing:
        raise FileNotFoundError(f"split {name!r}: missing {' and '.join(missing)} "
                                f"(or {directory / (name + '.tsv')})")
    assert src_path is not None and tgt_path is not None
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    if len(src) != len(tgt):
        raise ValueError(f"misaligned files: {src_path} has {len(src)} lines but {tgt_path} has "
                         f"{len(tgt)} lines")
    if not src:
        raise ValueError(f"split {name!r} is empty: {src_path} and {tgt_path} have no lines")
    _check_nonempty_lines(src_path, src)
    _check_nonempty_lines(tgt_path, tgt)

    ref_paths = _reference_files(directory, name)
    refs = [[t] for t in tgt]
    for ref_path in ref_paths:
        lines = read_lines(ref_path)
        if len(lines) != len(src):
            raise ValueError(f"misaligned files: {src_path} has {len(src)} lines but {ref_path} "
                             f"has {len(lines)} lines")
        for sentence_refs, line in zip(refs, lines):
            if line.strip():
                sentence_refs.append(line)
    return Split(name, src, tgt, refs)


def _numbered_reference_files(directory: Path, name: str) -> dict[int, Path]:
    """``{name}.refN`` / ``{name}.refN.gz`` files by N; both forms of one N is an error."""
    numbers: dict[int, Path] = {}
    for path in directory.glob(f"{name}.ref*"):
        match = _REF_SUFFIX.match(path.name[len(name) + 1:].removesuffix(".gz"))
        if match and path.is_file():
            number = int(match.group(1))
            if number in numbers:
                raise ValueError(f"both {numbers[number]} and {path} exist; keep one")
            numbers[number] = path
    return numbers


def _reference_files(directory: Path, name: str) -> list[Path]:
    """``{name}.ref1``, ``{name}.ref2``, ... in numeric order; a gap (ref1, ref3) is an error."""
    numbers = _numbered_reference_files(directory, name)
    expected = list(range(1, len(numbers) + 1))
    if sorted(numbers) != expected:
        raise ValueError(f"{directory}: reference files of split {name!r} must be numbered "
                         f"{name}.ref1, {name}.ref2, ... without gaps; found "
                         f"{', '.join(numbers[n].name for n in sorted(numbers))}")
    return [numbers[n] for n in expected]


def read_tsv(path: str | os.PathLike, name: str | None = None) -> Split:
    """Read one split from a TSV file: ``src<TAB>tgt[<TAB>ref...]`` per line (UTF-8, or ``.gz``).

    Empty trailing reference fields mean "no reference".  ``name`` defaults to the file stem.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TSV file {path} does not exist")
    if name is None:
        name = path.name.split(".")[0]
    lines = read_lines(path)
    if not lines:
        raise ValueError(f"split {name!r} is empty: {path} has no lines")
    src: list[str] = []
    tgt: list[str] = []
    refs: list[list[str]] = []
    for number, line in enumerate(lines, start=1):
        fields = line.split("\t")
        if len(fields) < 2:
            raise ValueError(f"{path}: line {number} has {len(fields)} tab-separated field(s); "
                             f"expected src<TAB>tgt[<TAB>ref...]")
        if not fields[0].strip() or not fields[1].strip():
            raise ValueError(f"{path}: line {number} has an empty source or target field")
        src.append(fields[0])
        tgt.append(fields[1])
        refs.append([fields[1]] + [f for f in fields[2:] if f.strip()])
    return Split(name, src, tgt, refs)


def load_dataset(path: str | os.PathLike, splits: Sequence[str] = SPLIT_NAMES) -> Dataset:
    """Load the dataset directory ``path`` (see module docstring) with the given splits.

    ``path`` may also be a single ``.tsv`` file, loaded as one split named after its stem.

    Returns:
        a :class:`Dataset` mapping split name -> :class:`Split` (``.src``, ``.tgt``, ``.refs``).

    Raises:
        FileNotFoundError: ``path`` or a split's files do not exist.
        ValueError: misaligned line counts, non-UTF-8 bytes, empty splits or lines.
    """
    path = Path(path)
    if path.is_file():
        if path.name.endswith((".tsv", ".tsv.gz")):
            split = read_tsv(path)
            return Dataset({split.name: split}, path=path)
        raise ValueError(f"{path} is a file; expected a dataset directory or a .tsv file")
    if not path.is_dir():
        raise FileNotFoundError(f"dataset directory {path} does not exist")
    if isinstance(splits, str):
        raise TypeError("splits must be a sequence of split names, not a string")
    return Dataset({name: read_split_files(path, name) for name in splits}, path=path)


# ------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------

def _atomic_write_lines(path: Path, lines: Sequence[str]) -> None:
    for number, line in enumerate(lines, start=1):
        if "\n" in line or "\r" in line:
            raise ValueError(f"{path.name}: sentence {number} contains a line break")
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def write_split(directory: str | os.PathLike, split: Split) -> None:
    """Write ``split`` as ``{name}.src/.tgt`` and, if any sentence has extra references,
    ``{name}.ref1..refN`` (empty lines where a sentence has fewer).  Each file is written
    atomically (temporary file + rename)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _atomic_write_lines(directory / f"{split.name}.src", split.src)
    _atomic_write_lines(directory / f"{split.name}.tgt", split.tgt)
    n_extra = max((len(r) - 1 for r in split.refs), default=0)
    for k in range(1, n_extra + 1):
        column = [r[k] if len(r) > k else "" for r in split.refs]
        _atomic_write_lines(directory / f"{split.name}.ref{k}", column)
    for number, path in _numbered_reference_files(directory, split.name).items():
        if number > n_extra:  # left by an earlier write of this split
            path.unlink()


def write_dataset(directory: str | os.PathLike, dataset: Mapping[str, Split]) -> Path:
    """Write every split of ``dataset`` into ``directory`` in the directory format."""
    directory = Path(directory)
    for split in dataset.values():
        write_split(directory, split)
    return directory
