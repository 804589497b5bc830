"""Checkpoint loading edge cases (empty files, NaN/inf weights) through the library, the commands
and --resume, and the file mode of atomic writes."""

from __future__ import annotations

import os
import stat
import warnings

import pytest
import torch

from mple_metrics.atomic_write import atomic_write_bytes, atomic_write_text, current_umask
from mple_metrics.cli import main
from mple_metrics.train import (CheckpointError, NonFiniteCheckpointWarning, Trainer, load_checkpoint,
                                load_model, load_state_dicts, save_checkpoint)
from test_train import tiny_config, tiny_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoint")
    data = tiny_dataset(root / "data")
    Trainer(tiny_config(data, root / "run", max_steps=2, valid_every_steps=0)).train()
    return data, root / "run"


def _nan_checkpoint(run, path, value=float("nan")):
    payload = load_checkpoint(run / "last.pt")
    payload.pop("path")
    payload["model"]["decoder_norm.weight"][0] = value
    save_checkpoint(path, payload)
    return path


def test_empty_checkpoint_is_a_checkpoint_error_naming_the_file(trained, tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    for load in (load_checkpoint, load_model, lambda p: load_state_dicts([p])):
        with pytest.raises(CheckpointError, match=r"checkpoint .*empty\.pt is empty \(0 bytes\)"):
            load(empty)


@pytest.mark.parametrize("content", [b"P", b"PK\x03\x04", b"\x80"])
def test_tiny_damaged_checkpoints_are_checkpoint_errors(tmp_path, content):
    path = tmp_path / "tiny.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"tiny\.pt is corrupted or truncated"):
        load_checkpoint(path)


def test_commands_and_resume_report_an_empty_checkpoint_in_one_line(trained, tmp_path, capsys):
    data, run = trained
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    source = tmp_path / "in.txt"
    source.write_text("alpha beta\n")
    for argv in (["translate", "--ckpt", str(empty), "--input", str(source), "--quiet"],
                 ["evaluate", "--ckpt", str(empty), "--data", str(data), "--quiet"]):
        assert main(argv) != 0
        err = capsys.readouterr().err
        assert "empty.pt is empty (0 bytes)" in err and "Traceback" not in err and "IndexError" not in err
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    (resumed / "last.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"last\.pt is empty \(0 bytes\)"):
        Trainer(tiny_config(data, resumed, max_steps=4, resume=True))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_load_with_a_warning_and_refuse_to_resume(trained, tmp_path, value):
    data, run = trained
    bad = _nan_checkpoint(run, tmp_path / "bad.pt", value)
    with pytest.warns(NonFiniteCheckpointWarning, match=r"bad\.pt has NaN or infinite weights in 1 tensor\(s\) "
                                                        r"\(decoder_norm\.weight\)"):
        load_model(bad)
    with pytest.warns(NonFiniteCheckpointWarning):
        load_state_dicts([bad])
    with pytest.raises(CheckpointError, match="NaN or infinite weights"):
        load_checkpoint(bad, nonfinite="error")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_checkpoint(bad, nonfinite="ignore")
        load_model(run / "last.pt")  # finite weights: no warning
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    (resumed / "last.pt").write_bytes(bad.read_bytes())
    with pytest.raises(CheckpointError, match=r"last\.pt has NaN or infinite weights"):
        Trainer(tiny_config(data, resumed, max_steps=4, resume=True))


def test_translate_warns_about_non_finite_weights(trained, tmp_path, capsys):
    _, run = trained
    bad = _nan_checkpoint(run, tmp_path / "bad.pt")
    source = tmp_path / "in.txt"
    source.write_text("alpha beta\n")
    with pytest.warns(NonFiniteCheckpointWarning, match="bad.pt has NaN or infinite weights"):
        main(["translate", "--ckpt", str(bad), "--input", str(source), "--quiet"])


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002, 0o000])
def test_atomic_writes_get_the_mode_open_would_give(tmp_path, umask):
    previous = os.umask(umask)
    try:
        assert current_umask() == umask
        atomic_write_text(tmp_path / "atomic.txt", "x\n")
        atomic_write_bytes(tmp_path / "sub" / "atomic.bin", b"x")
        with open(tmp_path / "plain.txt", "w") as handle:
            handle.write("x\n")
    finally:
        os.umask(previous)
    expected = stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    assert expected == 0o666 & ~umask
    for path in (tmp_path / "atomic.txt", tmp_path / "sub" / "atomic.bin"):
        assert stat.S_IMODE(path.stat().st_mode) == expected, oct(stat.S_IMODE(path.stat().st_mode))


def test_checkpoints_get_the_mode_open_would_give(trained, tmp_path):
    _, run = trained
    previous = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "c.pt", torch.load(run / "last.pt", weights_only=True))
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "c.pt").stat().st_mode) == 0o644
    assert stat.S_IMODE((run / "last.pt").stat().st_mode) == 0o666 & ~current_umask()
