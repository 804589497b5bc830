"""`mple distill` with several teachers: a KD candidate directory (kd0/, kd1/, ... and
candidates.json) whose members equal single-teacher runs byte for byte, grown one teacher after
another, reusing the teachers already listed, with names, per-candidate resumption and clear errors;
and the same output from 2 processes under torch.distributed (gloo) as from one."""

from __future__ import annotations

import json
import os
import shutil
import socket
import traceback
from functools import partial
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import mple_metrics.decode.distill as distill_module
from mple_metrics.cli import main
from mple_metrics.data import Split, kd_dataset_dirs, load_dataset, read_candidates_manifest, write_dataset
from mple_metrics.decode import DecodeOptions
from mple_metrics.decode.distill import DistillMismatchError, distill, file_sha256
from mple_metrics.train import Trainer, load_checkpoint, save_checkpoint
from gloo_workers import exit_now
from test_distill_resume import Counter
from test_train import tiny_config, tiny_dataset

pytestmark = pytest.mark.usefixtures("one_thread")

BEAM = DecodeOptions(beam=2)
CHUNKS = sum(-(-n // 5) for n in (24, 8, 8))  # chunks of 5 sentences per teacher: 5 + 2 + 2
OTHER_MODEL = {"d_model": 24, "ffn_dim": 48, "n_heads": 2, "encoder_layers": 1, "decoder_layers": 2}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """Tiny data and AT teachers: A; B, larger and with another target vocabulary (lower case and
    one more word; trained on the same sources); C and D, A with other weights."""
    root = tmp_path_factory.mktemp("candidates")
    data = tiny_dataset(root / "data", n_train=24)
    Trainer(tiny_config(data, root / "a", max_steps=12, valid_every_steps=0, log_every=10)).train()
    raw = load_dataset(data)
    lower = {name: Split(name, raw[name].src, [t.lower() + " end" for t in raw[name].tgt])
             for name in ("train", "valid", "test")}
    write_dataset(root / "data-lower", lower)
    Trainer(tiny_config(root / "data-lower", root / "b", model_overrides=OTHER_MODEL, max_steps=12,
                        valid_every_steps=0, log_every=10)).train()
    for name, shift in (("C", 0.5), ("D", 0.25)):
        payload = load_checkpoint(root / "a" / "best.pt")
        payload.pop("path")
        payload["model"]["decoder_norm.weight"] += shift
        save_checkpoint(root / f"{name.lower()}.pt", payload)
    return {"data": data, "A": root / "a" / "best.pt", "B": root / "b" / "best.pt", "C": root / "c.pt",
            "D": root / "d.pt", "root": root}


@pytest.fixture(scope="module")
def single(trained) -> dict[str, Path]:
    """Each teacher's KD dataset made alone (plain KD dataset directories)."""
    out = {}
    for teacher in ("A", "B", "C"):
        out[teacher] = trained["root"] / f"plain-{teacher}"
        distill(trained[teacher], trained["data"], out[teacher], options=BEAM, chunk_size=5, quiet=True)
    return out


def _command(trained, out: Path, *teachers: str) -> list[str]:
    args = ["distill", "--data", str(trained["data"]), "--out", str(out), "--chunk-size", "5", "--beam", "2",
            "--quiet"]
    for teacher in teachers:
        args += ["--teacher", str(trained[teacher])]
    return args


@pytest.fixture(scope="module")
def candidate_dir(trained) -> Path:
    """Teachers A and B into one candidate directory, by the command in one process."""
    out = trained["root"] / "cand-AB"
    assert main(_command(trained, out, "A", "B")) == 0
    return out


def _files(directory: Path) -> dict[str, bytes]:
    return {str(path.relative_to(directory)): path.read_bytes() for path in sorted(directory.rglob("*"))
            if path.is_file()}


def test_several_teachers_make_a_candidate_directory_of_single_teacher_datasets(trained, single, candidate_dir,
                                                                                  capsys):
    manifest = read_candidates_manifest(candidate_dir)
    assert sorted(path.name for path in candidate_dir.iterdir()) == ["candidates.json", "kd0", "kd1"]
    assert kd_dataset_dirs(candidate_dir) == [candidate_dir / "kd0", candidate_dir / "kd1"]
    for entry, teacher in zip(manifest["candidates"], ("A", "B"), strict=True):
        assert entry["name"] == entry["dir"]
        assert entry["teacher"] == str(trained[teacher])
        assert entry["teacher_sha256"] == file_sha256(trained[teacher])
        assert entry["teacher_model_config"] == load_checkpoint(trained[teacher])["model_config"]
        assert entry["splits"] == json.loads((single[teacher] / "kd.json").read_text())["splits"]
        assert _files(candidate_dir / entry["dir"]) == _files(single[teacher])  # every file, byte for byte
    configs = [entry["teacher_model_config"] for entry in manifest["candidates"]]
    assert configs[0]["d_model"] != configs[1]["d_model"]  # teachers of other sizes and vocabularies
    assert configs[0]["tgt_vocab_size"] != configs[1]["tgt_vocab_size"]
    # The command prints each candidate's split counts.
    assert main(_command(trained, trained["root"] / "printed", "A", "B")) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == {entry["name"]: entry["splits"] for entry in manifest["candidates"]}


def test_one_teacher_still_makes_a_plain_kd_dataset(trained, single, tmp_path):
    assert main(_command(trained, tmp_path / "kd", "A")) == 0
    assert _files(tmp_path / "kd") == _files(single["A"])
    assert not (tmp_path / "kd" / "candidates.json").exists()


def test_teachers_appended_one_after_another_and_listed_ones_reused(trained, single, tmp_path, monkeypatch):
    cand = tmp_path / "cand"
    one = distill(trained["A"], trained["data"], cand, options=BEAM, chunk_size=5, quiet=True, candidates=True)
    assert [entry["dir"] for entry in one["candidates"]] == ["kd0"]
    assert _files(cand / "kd0") == _files(single["A"])
    # An --out that is a candidate directory takes one more teacher as the next kdK.
    distill(trained["B"], trained["data"], cand, options=BEAM, chunk_size=5, quiet=True)
    counter = Counter(monkeypatch)
    moved = tmp_path / "elsewhere" / "a.pt"
    moved.parent.mkdir()
    shutil.copy(trained["A"], moved)  # the same bytes at another path: the same teacher
    manifest = distill([moved, trained["C"], trained["B"]], trained["data"], cand, options=BEAM, chunk_size=5,
                       quiet=True)
    assert counter.calls == CHUNKS  # only C was decoded; A and B were reused
    assert [(entry["dir"], entry["teacher_sha256"]) for entry in manifest["candidates"]] == \
        [(f"kd{k}", file_sha256(trained[t])) for k, t in enumerate("ABC")]
    for k, teacher in enumerate("ABC"):
        assert _files(cand / f"kd{k}") == _files(single[teacher])
    # The directory equals the one made by all three teachers at once.
    together = distill([trained[t] for t in "ABC"], trained["data"], tmp_path / "together", options=BEAM,
                       chunk_size=5, quiet=True)
    assert together == manifest and _files(tmp_path / "together") == _files(cand)
    # Asking a finished candidate for a split it lacks makes its dataset again.
    counter.calls = 0
    part = tmp_path / "part"
    distill([trained["A"], trained["B"]], trained["data"], part, options=BEAM, chunk_size=5, quiet=True,
            splits=["valid"])
    distill([trained["A"], trained["B"]], trained["data"], part, options=BEAM, chunk_size=5, quiet=True,
            splits=["valid"])
    assert counter.calls == 2 * 2  # valid (2 chunks) per teacher, once
    distill(trained["A"], trained["data"], part, options=BEAM, chunk_size=5, quiet=True, splits=["valid", "test"])
    assert counter.calls == 2 * 2 + 4


def test_names_are_recorded_and_checked(trained, tmp_path):
    cand = tmp_path / "cand"
    manifest = distill([trained["A"], trained["B"]], trained["data"], cand, options=BEAM, chunk_size=50,
                       quiet=True, splits=["valid"], names=["small", "large"])
    assert [(e["name"], e["dir"]) for e in manifest["candidates"]] == [("small", "kd0"), ("large", "kd1")]
    kwargs = dict(options=BEAM, chunk_size=50, quiet=True, splits=["valid"])
    manifest = distill(trained["C"], trained["data"], cand, **kwargs)
    assert manifest["candidates"][2]["name"] == "kd2"
    distill([trained["A"], trained["C"]], trained["data"], cand, names=["small", "kd2"], **kwargs)  # the same names
    with pytest.raises(ValueError, match=r"--name 'other': teacher .*best\.pt is already listed .* as 'small'"):
        distill(trained["A"], trained["data"], cand, names=["other"], **kwargs)
    with pytest.raises(ValueError, match=r"--name 'large' is already the name of another candidate"):
        distill(trained["D"], trained["data"], cand, names=["large"], **kwargs)
    with pytest.raises(ValueError, match=r"--name \(names\) is given 1 time\(s\) and --teacher 2"):
        distill([trained["A"], trained["B"]], trained["data"], tmp_path / "x", names=["one"], **kwargs)
    with pytest.raises(ValueError, match=r"--name \(names\) gives one name to several teachers"):
        distill([trained["A"], trained["B"]], trained["data"], tmp_path / "x", names=["one", "one"], **kwargs)
    with pytest.raises(ValueError, match=r"--name '' must be a non-empty"):
        distill(trained["A"], trained["data"], tmp_path / "x", names=[""], candidates=True, **kwargs)
    assert not (tmp_path / "x").exists()  # refused before anything was written
    assert [e["name"] for e in read_candidates_manifest(cand)["candidates"]] == ["small", "large", "kd2"]


def test_an_interrupted_candidate_run_resumes_each_candidate_and_keeps_the_mismatch_checks(trained, candidate_dir,
                                                                                         tmp_path, monkeypatch):
    cand = tmp_path / "cand"
    with monkeypatch.context() as patch:
        Counter(patch, fail=CHUNKS + 3)  # A finished, B interrupted in its third chunk
        with pytest.raises(KeyboardInterrupt):
            distill([trained["A"], trained["B"]], trained["data"], cand, options=BEAM, chunk_size=5, quiet=True)
    assert [e["dir"] for e in read_candidates_manifest(cand)["candidates"]] == ["kd0", "kd1"]
    assert len(list((cand / "kd1" / ".kd_parts").glob("*.txt"))) == 2
    with pytest.raises(FileNotFoundError, match=r"kd1 listed in .* is not a finished KD dataset"):
        kd_dataset_dirs(cand)
    counter = Counter(monkeypatch)
    with pytest.raises(DistillMismatchError, match=r"kd0 holds a KD dataset made with other settings: --beam: "
                                                   r"the KD dataset there used 2, this run 1"):
        distill([trained["A"], trained["B"]], trained["data"], cand, options=DecodeOptions(beam=1), chunk_size=5,
                quiet=True)
    with pytest.raises(DistillMismatchError, match=r"kd1 holds KD chunks made with other settings: --chunk-size"):
        distill(trained["B"], trained["data"], cand, options=BEAM, chunk_size=4, quiet=True)
    assert counter.calls == 0  # refused before decoding anything
    # Resumed by the command (the names as printed by the first run are the defaults).
    assert main(_command(trained, cand, "A", "B")) == 0
    assert counter.calls == CHUNKS - 2
    assert _files(cand) == _files(candidate_dir)


def test_a_candidate_directory_keeps_one_corpus(trained, candidate_dir, tmp_path):
    changed = tmp_path / "data"
    shutil.copytree(trained["data"], changed)
    lines = (changed / "valid.src").read_text().split("\n")
    lines[2] = "kappa kappa kappa"
    (changed / "valid.src").write_text("\n".join(lines))
    cand = tmp_path / "cand"
    shutil.copytree(candidate_dir, cand)
    with pytest.raises(ValueError, match=r"--data .*: the valid source sentences differ from those of candidate "
                                         r"'kd0'"):
        distill(trained["C"], changed, cand, options=BEAM, chunk_size=5, quiet=True)
    assert len(read_candidates_manifest(cand)["candidates"]) == 2


@pytest.mark.parametrize("case, extra, option", [
    ("names-count", ["--teacher", "{B}", "--name", "x"], "--name"),
    ("name-for-a-plain-dataset", ["--name", "x"], "--name"),
    ("same-teacher-twice", ["--teacher", "{A}"], "--teacher"),
    ("several-teachers-into-a-plain-dataset", ["--teacher", "{B}", "--out", "{plain}"], "--out"),
    ("candidates-into-a-plain-dataset", ["--candidates", "--out", "{plain}"], "--out"),
])
def test_command_errors_exit_2_with_one_line_naming_the_option(trained, single, tmp_path, capsys, case, extra,
                                                               option):
    plain = tmp_path / "plain"
    shutil.copytree(single["A"], plain)
    values = {"A": str(trained["A"]), "B": str(trained["B"]), "plain": str(plain)}
    args = _command(trained, tmp_path / "new", "A") + [value.format(**values) for value in extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("mple distill: error: ") and err.count("\n") == 1 and option in err, err
    assert not (tmp_path / "new").exists() and _files(plain) == _files(single["A"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun_worker(rank: int, world_size: int, port: int, call, expected, chunks: list[int]) -> None:
    """One rank as torchrun starts it: the environment names the group (set up by the command, or by
    distill itself).  ``call()`` must return (an exit status, or a manifest's splits) or raise (the
    exception's type name) ``expected`` after the rank decoded ``chunks[rank]`` chunks."""
    torch.set_num_threads(1)
    os.environ.update({"WORLD_SIZE": str(world_size), "RANK": str(rank), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    decoded, real = [], distill_module.translate_encoded
    distill_module.translate_encoded = lambda *a, **k: decoded.append(1) or real(*a, **k)
    status = 1
    try:
        try:
            outcome = call()
        except Exception as error:
            outcome = type(error).__name__
        outcome = outcome["splits"] if isinstance(outcome, dict) else outcome
        assert outcome == expected, (rank, outcome)
        assert len(decoded) == chunks[rank], (rank, len(decoded))
        status = 0
    except BaseException:
        traceback.print_exc()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    exit_now(status)  # see gloo_workers: no interpreter teardown with gloo threads alive


def _torchrun(call, expected, chunks: list[int]) -> None:
    mp.spawn(_torchrun_worker, args=(2, _free_port(), call, expected, chunks), nprocs=2, join=True)


def test_two_processes_write_what_one_process_writes(trained, candidate_dir, tmp_path):
    out = tmp_path / "ddp"
    # Per teacher, rank 0 decodes train chunks 0, 2, 4 and the first chunk of valid and test; rank 1 the rest.
    _torchrun(partial(main, _command(trained, out, "A", "B")), 0, [2 * (3 + 1 + 1), 2 * (2 + 1 + 1)])
    assert _files(out) == _files(candidate_dir)


def test_two_processes_resume_one_process_chunks_and_stop_together_on_a_mismatch(trained, single, tmp_path,
                                                                                 monkeypatch):
    out = tmp_path / "kd"
    with monkeypatch.context() as patch:
        Counter(patch, fail=3)  # train chunks 0 and 1 written by one process
        with pytest.raises(KeyboardInterrupt):
            distill(trained["A"], trained["data"], out, options=BEAM, chunk_size=5, quiet=True)
    # Refused on both ranks (neither waits for the other): by the command, then by distill().
    _torchrun(partial(main, _command(trained, out, "A") + ["--beam", "1"]), 2, [0, 0])
    run = partial(distill, trained["A"], trained["data"], out, chunk_size=5, quiet=True)
    _torchrun(partial(run, options=DecodeOptions(beam=1)), "DistillMismatchError", [0, 0])
    splits = json.loads((single["A"] / "kd.json").read_text())["splits"]
    _torchrun(partial(run, options=BEAM), splits, [2 + 1 + 1, 1 + 1 + 1])
    assert _files(out) == _files(single["A"])
