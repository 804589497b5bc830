"""Resuming `mple distill`: chunks carry the teacher checkpoint's hash, the decoding options and the
chunk size that produced them; a rerun with other ones is refused naming the difference (nothing
stale is mixed in), and --overwrite starts over."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import mple_metrics.decode.distill as distill_module
from mple_metrics.cli import main
from mple_metrics.data import load_dataset
from mple_metrics.decode import DecodeOptions
from mple_metrics.decode.distill import DistillMismatchError, distill, file_sha256
from mple_metrics.train import Trainer, load_checkpoint, save_checkpoint
from test_train import tiny_config, tiny_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("distill")
    data = tiny_dataset(root / "data", n_train=24)
    Trainer(tiny_config(data, root / "at", max_steps=12, valid_every_steps=0, log_every=10)).train()
    return data, root / "at" / "best.pt"


class Counter:
    """Counts translate_encoded calls (one per chunk decoded); interrupts the call number ``fail``."""

    def __init__(self, monkeypatch, fail: int | None = None) -> None:
        self.calls, self.fail, self.real = 0, fail, distill_module.translate_encoded
        monkeypatch.setattr(distill_module, "translate_encoded", self)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.fail:
            raise KeyboardInterrupt
        return self.real(*args, **kwargs)


def _interrupted(teacher, data, out, monkeypatch, beam=2):
    """A run killed in its third chunk: two chunks of train are written."""
    with monkeypatch.context() as patch:
        Counter(patch, fail=3)
        with pytest.raises(KeyboardInterrupt):
            distill(teacher, data, out, options=DecodeOptions(beam=beam), chunk_size=5, quiet=True)
    assert len(list((out / ".kd_parts").glob("*.txt"))) == 2


def test_resume_with_other_decoding_options_is_refused_then_overwrite_starts_over(trained, tmp_path, monkeypatch):
    teacher, data = trained[1], trained[0]
    kd = tmp_path / "kd"
    _interrupted(teacher, data, kd, monkeypatch, beam=2)
    counter = Counter(monkeypatch)
    with pytest.raises(DistillMismatchError, match=r"--beam: the chunks already written used 2, this run 1"):
        distill(teacher, data, kd, options=DecodeOptions(beam=1), chunk_size=5, quiet=True)
    with pytest.raises(DistillMismatchError, match=r"--chunk-size: the chunks already written used 5, this run 4"):
        distill(teacher, data, kd, options=DecodeOptions(beam=2), chunk_size=4, quiet=True)
    assert counter.calls == 0  # refused before decoding anything
    assert len(list((kd / ".kd_parts").glob("*.txt"))) == 2
    clean = distill(teacher, data, tmp_path / "clean", options=DecodeOptions(beam=1), chunk_size=5, quiet=True)
    counter.calls = 0
    manifest = distill(teacher, data, kd, options=DecodeOptions(beam=1), chunk_size=5, quiet=True, overwrite=True)
    chunks = sum(-(-n // 5) for n in (24, 8, 8))
    assert counter.calls == chunks  # everything decoded again, with the new options
    assert manifest["decode"]["beam"] == 1 and manifest["teacher_sha256"] == file_sha256(teacher)
    for name in ("train", "valid", "test"):
        assert load_dataset(kd)[name].tgt == load_dataset(tmp_path / "clean")[name].tgt
    assert manifest["splits"] == clean["splits"]


def test_resume_with_the_same_options_reuses_chunks_even_from_a_moved_teacher(trained, tmp_path, monkeypatch):
    teacher, data = trained[1], trained[0]
    kd = tmp_path / "kd"
    _interrupted(teacher, data, kd, monkeypatch)
    moved = tmp_path / "elsewhere" / "teacher.pt"
    moved.parent.mkdir()
    shutil.copy(teacher, moved)  # same bytes, another path
    counter = Counter(monkeypatch)
    manifest = distill(moved, data, kd, options=DecodeOptions(beam=2), chunk_size=5, quiet=True)
    assert counter.calls == sum(-(-n // 5) for n in (24, 8, 8)) - 2
    assert manifest["teacher"] == str(moved) and manifest["decode"]["beam"] == 2


def test_resume_with_another_teacher_checkpoint_is_refused(trained, tmp_path, monkeypatch):
    teacher, data = trained[1], trained[0]
    kd = tmp_path / "kd"
    _interrupted(teacher, data, kd, monkeypatch)
    payload = load_checkpoint(teacher)
    payload.pop("path")
    payload["model"]["decoder_norm.weight"] += 1.0
    other = tmp_path / "other.pt"
    save_checkpoint(other, payload)
    with pytest.raises(DistillMismatchError, match=r"teacher: the chunks already written came from checkpoint "
                                                   r".*best\.pt \(sha256 [0-9a-f]{12}\), this run's is .*other\.pt"):
        distill(other, data, kd, options=DecodeOptions(beam=2), chunk_size=5, quiet=True)


def test_resume_on_changed_data_is_refused(trained, tmp_path, monkeypatch):
    teacher, data = trained[1], trained[0]
    changed = tmp_path / "data"
    shutil.copytree(data, changed)
    lines = (changed / "train.src").read_text().split("\n")
    lines[3] = "kappa kappa kappa"
    (changed / "train.src").write_text("\n".join(lines))
    kd = tmp_path / "kd"
    _interrupted(teacher, data, kd, monkeypatch)
    with pytest.raises(DistillMismatchError, match=r"train\.000000\.txt was decoded from other source sentences "
                                                   r"than sentences 1-5 of the train split"):
        distill(teacher, changed, kd, options=DecodeOptions(beam=2), chunk_size=5, quiet=True)


def test_chunks_without_recorded_options_are_refused(trained, tmp_path):
    teacher, data = trained[1], trained[0]
    parts = tmp_path / "kd" / ".kd_parts"
    parts.mkdir(parents=True)
    (parts / "train.000000.txt").write_text("".join(f"line {i}\n" for i in range(5)))  # the old format
    with pytest.raises(DistillMismatchError, match=r"train\.000000\.txt records no teacher or decoding options"):
        distill(teacher, data, tmp_path / "kd", options=DecodeOptions(beam=2), chunk_size=5, quiet=True)


def test_finished_kd_dataset_with_other_options_is_refused(trained, tmp_path):
    teacher, data = trained[1], trained[0]
    kd = tmp_path / "kd"
    distill(teacher, data, kd, options=DecodeOptions(beam=2), chunk_size=50, quiet=True, splits=["valid"])
    assert json.loads((kd / "kd.json").read_text())["teacher_sha256"] == file_sha256(teacher)
    with pytest.raises(DistillMismatchError, match=r"holds a KD dataset made with other settings: --beam: the KD "
                                                   r"dataset there used 2, this run 1"):
        distill(teacher, data, kd, options=DecodeOptions(beam=1), chunk_size=50, quiet=True, splits=["valid"])
    # The same options (any chunk size) are fine: the dataset is made again.
    distill(teacher, data, kd, options=DecodeOptions(beam=2), chunk_size=3, quiet=True, splits=["valid"])


def test_distill_command_refuses_other_options_and_overwrites_on_request(trained, tmp_path, monkeypatch, capsys):
    teacher, data = trained[1], trained[0]
    kd = tmp_path / "kd"
    _interrupted(teacher, data, kd, monkeypatch, beam=2)
    base = ["distill", "--teacher", str(teacher), "--data", str(data), "--out", str(kd), "--chunk-size", "5",
            "--quiet"]
    assert main(base + ["--beam", "1"]) != 0
    err = capsys.readouterr().err
    assert "--beam: the chunks already written used 2, this run 1" in err and "--overwrite" in err
    assert "Traceback" not in err
    assert main(base + ["--beam", "1", "--overwrite"]) == 0
    assert json.loads((kd / "kd.json").read_text())["decode"]["beam"] == 1
    assert not (kd / ".kd_parts").exists()


def test_finished_kd_dataset_from_other_data_is_refused_unless_overwrite(trained, tmp_path, monkeypatch, capsys):
    teacher, data = trained[1], trained[0]
    other = tmp_path / "other"
    shutil.copytree(data, other)
    lines = (other / "valid.tgt").read_text().split("\n")
    lines[1] = "KAPPA KAPPA"  # same sources, another target: the kept raw data would be replaced
    (other / "valid.tgt").write_text("\n".join(lines))
    kd = tmp_path / "kd"
    distill(teacher, data, kd, options=DecodeOptions(beam=2), chunk_size=50, quiet=True)
    before = {path.name: path.read_bytes() for path in kd.iterdir() if path.is_file()}
    assert "test.raw.ref1" in before
    counter = Counter(monkeypatch)
    with pytest.raises(DistillMismatchError, match=r"--out .*kd holds a finished KD dataset made from other data "
                                                   r".*valid\.raw\.tgt differs from the valid split of --data"):
        distill(teacher, other, kd, options=DecodeOptions(beam=2), chunk_size=50, quiet=True)
    # Data without the extra references of the test split: its raw.ref files would vanish.
    without_refs = tmp_path / "without-refs"
    shutil.copytree(data, without_refs)
    for path in without_refs.glob("test.ref*"):
        path.unlink()
    with pytest.raises(DistillMismatchError, match=r"test\.raw\.ref1 differs from the test split"):
        distill(teacher, without_refs, kd, options=DecodeOptions(beam=2), chunk_size=50, quiet=True)
    command = ["distill", "--teacher", str(teacher), "--data", str(without_refs), "--out", str(kd), "--beam", "2",
               "--chunk-size", "50", "--quiet"]
    assert main(command) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--out" in err and "--overwrite" in err
    assert counter.calls == 0  # refused before decoding anything
    assert {path.name: path.read_bytes() for path in kd.iterdir() if path.is_file()} == before
    # The same job again (a moved copy of the same data) is a rerun, not a refusal.
    moved = tmp_path / "moved"
    shutil.copytree(data, moved)
    assert distill(teacher, moved, kd, options=DecodeOptions(beam=2), chunk_size=50, quiet=True)["splits"]
    assert {path.name: path.read_bytes() for path in kd.iterdir() if path.is_file() and path.name != "kd.json"} \
        == {name: content for name, content in before.items() if name != "kd.json"}
    assert main(command + ["--overwrite"]) == 0
    assert not (kd / "test.raw.ref1").exists()
    assert (kd / "test.raw.tgt").read_text() == (without_refs / "test.tgt").read_text()
