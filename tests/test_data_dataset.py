"""The dataset directory format: reading, writing, and the errors for malformed directories."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from mple_metrics.data import Split, load_dataset, read_tsv, write_dataset


def _write(directory: Path, files: dict[str, str | bytes]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        if name.endswith(".gz"):
            data = gzip.compress(data)
        (directory / name).write_bytes(data)
    return directory


def _minimal(directory: Path, **overrides: str | bytes) -> Path:
    files: dict[str, str | bytes] = {}
    for split in ("train", "valid", "test"):
        files[f"{split}.src"] = "a b\nc d\n"
        files[f"{split}.tgt"] = "A B\nC D\n"
    files.update(overrides)
    return _write(directory, {k: v for k, v in files.items() if v is not None})


def test_loads_splits_with_references(tmp_path):
    _minimal(tmp_path, **{"valid.ref1": "A2 B2\n\n", "valid.ref2": "A3\nC3\n"})
    data = load_dataset(tmp_path)
    assert list(data) == ["train", "valid", "test"]
    assert data.train.src == ["a b", "c d"] and data.train.tgt == ["A B", "C D"]
    assert data.train.refs == [["A B"], ["C D"]]
    # The empty ref1 line means no reference from ref1 for the second sentence.
    assert data.valid.refs == [["A B", "A2 B2", "A3"], ["C D", "C3"]]
    assert data.valid.refs_per_sentence() == [3, 2]
    assert data.valid.extra_refs == [["A2 B2", "A3"], ["C3"]]


def test_gzip_crlf_bom_and_missing_final_newline(tmp_path):
    _minimal(tmp_path, **{"train.src": None, "train.src.gz": "\ufeffx y\r\nz\r\n",
                          "train.tgt": "X Y\nZ"})
    data = load_dataset(tmp_path)
    assert data.train.src == ["x y", "z"]
    assert data.train.tgt == ["X Y", "Z"]


def test_write_then_load_round_trip(tmp_path):
    splits = {"train": Split("train", ["s1", "s2"], ["t1", "t2"], [["t1", "r1"], ["t2"]]),
              "valid": Split("valid", ["v"], ["w"]),
              "test": Split("test", ["x"], ["y"], [["y", "y2", "y3"]])}
    write_dataset(tmp_path, splits)
    assert (tmp_path / "train.ref1").read_text() == "r1\n\n"
    data = load_dataset(tmp_path)
    for name, split in splits.items():
        assert data[name] == split
    # Rewriting with fewer references removes the stale reference files.
    write_dataset(tmp_path, {"test": Split("test", ["x"], ["y"])})
    assert not (tmp_path / "test.ref1").exists() and load_dataset(tmp_path).test.refs == [["y"]]


def test_tsv_file_and_tsv_splits(tmp_path):
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("a\tA\tA2\t\nb\tB\n", encoding="utf-8")
    split = read_tsv(tsv)
    assert split.name == "pairs" and split.src == ["a", "b"] and split.refs == [["A", "A2"], ["B"]]
    assert load_dataset(tsv)["pairs"] == split
    d = tmp_path / "d"
    _write(d, {f"{s}.tsv": "x\tX\n" for s in ("train", "valid", "test")})
    assert load_dataset(d).test.tgt == ["X"]


def test_missing_directory_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset(tmp_path / "nope")
    _minimal(tmp_path, **{"valid.tgt": None})
    with pytest.raises(FileNotFoundError, match=r"split 'valid': missing .*valid\.tgt"):
        load_dataset(tmp_path)


def test_misaligned_lines_name_both_files_and_counts(tmp_path):
    _minimal(tmp_path, **{"test.tgt": "A\nB\nC\n"})
    with pytest.raises(ValueError) as error:
        load_dataset(tmp_path)
    message = str(error.value)
    assert "test.src" in message and "test.tgt" in message and "2 lines" in message and "3 lines" in message


def test_misaligned_reference_file(tmp_path):
    _minimal(tmp_path, **{"valid.ref1": "only one\n"})
    with pytest.raises(ValueError, match=r"valid\.ref1 has 1 lines"):
        load_dataset(tmp_path)


def test_reference_numbering_gap(tmp_path):
    _minimal(tmp_path, **{"valid.ref2": "a\nb\n"})
    with pytest.raises(ValueError, match="without gaps"):
        load_dataset(tmp_path)


def test_non_utf8_names_file_and_line(tmp_path):
    _minimal(tmp_path, **{"train.src": b"ok\ncaf\xe9\n"})
    with pytest.raises(ValueError, match=r"train\.src: not valid UTF-8 at line 2"):
        load_dataset(tmp_path)


def test_corrupt_gzip(tmp_path):
    _minimal(tmp_path, **{"train.src": None})
    (tmp_path / "train.src.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="not a valid gzip file"):
        load_dataset(tmp_path)


def test_empty_split_and_empty_lines(tmp_path):
    _minimal(tmp_path / "a", **{"test.src": "", "test.tgt": ""})
    with pytest.raises(ValueError, match="split 'test' is empty"):
        load_dataset(tmp_path / "a")
    _minimal(tmp_path / "b", **{"train.tgt": "A\n  \n"})
    with pytest.raises(ValueError, match=r"train\.tgt: line 2 is empty"):
        load_dataset(tmp_path / "b")


def test_ambiguous_plain_and_gzip(tmp_path):
    _minimal(tmp_path, **{"train.src.gz": "a b\nc d\n"})
    with pytest.raises(ValueError, match="keep one"):
        load_dataset(tmp_path)


def test_bad_tsv_lines(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tA\nno tab here\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 2 has 1 tab-separated field"):
        read_tsv(bad)
    with pytest.raises(FileNotFoundError):
        read_tsv(tmp_path / "missing.tsv")


def test_split_invariants():
    with pytest.raises(ValueError, match="src has 2 sentences but tgt has 1"):
        Split("x", ["a", "b"], ["A"])
    with pytest.raises(ValueError, match="must start with tgt"):
        Split("x", ["a"], ["A"], [["B"]])
    with pytest.raises(TypeError, match="sequence of split names"):
        load_dataset(".", splits="train")
