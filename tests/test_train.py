"""Trainer: config, schedule, loss, checkpoints (round trip, atomicity, error cases, averaging),
exact resume (in process and after SIGKILL), and validation outputs."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mple_metrics.data import Split, write_dataset
from mple_metrics.models import ModelConfig, build_model
from mple_metrics.train import (CheckpointError, TrainConfig, Trainer, average_state_dicts,
                                inverse_sqrt_lr, load_checkpoint, load_model, load_state_dicts,
                                save_checkpoint, smoothed_token_loss)

# Tiny models run fastest on one thread, above all on a loaded machine (no OpenMP spinning).
pytestmark = pytest.mark.usefixtures("one_thread")


WORDS = "alpha beta gamma delta eps zeta eta theta iota kappa".split()
TINY_MODEL = {"d_model": 16, "ffn_dim": 32, "n_heads": 2, "encoder_layers": 1, "decoder_layers": 1}


def tiny_dataset(directory: Path, n_train: int = 48, n_valid: int = 8) -> Path:
    """A toy task: the target is the source reversed, words renamed (word tokenizer, fast)."""
    g = torch.Generator().manual_seed(0)

    def pairs(n: int) -> tuple[list[str], list[str]]:
        src, tgt = [], []
        for _ in range(n):
            words = [WORDS[int(i)] for i in torch.randint(0, 10, (int(torch.randint(2, 7, (1,), generator=g)),), generator=g)]
            src.append(" ".join(words))
            tgt.append(" ".join(w.upper() for w in reversed(words)))
        return src, tgt

    train, valid, test = pairs(n_train), pairs(n_valid), pairs(n_valid)
    write_dataset(directory, {"train": Split("train", *train), "valid": Split("valid", *valid),
                              "test": Split("test", test[0], test[1], [[t, t.lower()] for t in test[1]])})
    return directory


def tiny_config(data: Path, out: Path, **changes) -> TrainConfig:
    values = dict(data=str(data), out=str(out), model="at", tokenizer_kind="word", model_overrides=TINY_MODEL,
                  max_tokens=64, lr=3e-3, warmup_steps=4, max_steps=6, log_every=1, quiet=True, dropout=0.1,
                  keep_best=2, valid_every_steps=3, patience=0)
    values.update(changes)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tiny_dataset(tmp_path_factory.mktemp("tiny_data"))


def test_config_validation_and_json_round_trip(tmp_path):
    config = TrainConfig(model="nat", lr=1e-3, model_overrides={"d_model": 32})
    config.save_json(tmp_path / "c.json")
    assert TrainConfig.load_json(tmp_path / "c.json") == config
    with pytest.raises(ValueError, match="model must be one of"):
        TrainConfig(model="rnn")
    with pytest.raises(ValueError, match="--label-smoothing must lie in"):
        TrainConfig(label_smoothing=1.0)
    with pytest.raises(ValueError, match="unknown training config field"):
        TrainConfig.from_dict({"learning_rate": 1})
    with pytest.raises(ValueError, match="amp='bf16' needs device cuda"):
        Trainer(TrainConfig(amp="bf16", out=str(tmp_path / "x")))


def test_inverse_sqrt_schedule():
    assert inverse_sqrt_lr(1, 1e-3, 10, 0.0) == pytest.approx(1e-4)
    assert inverse_sqrt_lr(10, 1e-3, 10) == pytest.approx(1e-3)
    assert inverse_sqrt_lr(40, 1e-3, 10) == pytest.approx(1e-3 * 0.5)
    with pytest.raises(ValueError, match="step must be >= 1"):
        inverse_sqrt_lr(0, 1e-3, 10)


def test_label_smoothed_loss_matches_float64_formula():
    logits = torch.randn(3, 5, 11, dtype=torch.float64)
    target = torch.randint(6, 11, (3, 5))
    target[0, 3:] = 0
    eps = 0.1
    logp = F.log_softmax(logits, -1)
    keep = target != 0
    nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    expected = (((1 - eps) * nll - eps * logp.mean(-1)) * keep).sum()
    assert smoothed_token_loss(logits, target, eps).item() == pytest.approx(expected.item(), rel=1e-6)


def _params(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def test_training_writes_checkpoints_logs_and_averages(data_dir, tmp_path):
    summary = Trainer(tiny_config(data_dir, tmp_path / "run")).train()
    run = tmp_path / "run"
    for name in ("config.json", "last.pt", "best.pt", "average.pt", "train.jsonl", "valid.jsonl",
                 "summary.json", "tokenizer"):
        assert (run / name).exists(), name
    valid = [json.loads(line) for line in (run / "valid.jsonl").read_text().splitlines()]
    assert [v["step"] for v in valid] == [3, 6]
    assert all(v["bleu_signature"].startswith("BLEU|nrefs:1") and v["nll_bits_per_token"] > 0 for v in valid)
    assert summary["steps"] == 6 and summary["best_nll_bits_per_token"] == min(v["nll_bits_per_token"] for v in valid)
    assert [json.loads(line)["step"] for line in (run / "train.jsonl").read_text().splitlines()] == list(range(1, 7))
    tops = [run / f"step{v['step']}.pt" for v in valid]
    mean = average_state_dicts([_params(p) for p in tops])
    for key, value in _params(run / "average.pt").items():
        torch.testing.assert_close(value, mean[key])
    assert not list(run.glob(".*.tmp")), "temporary checkpoint files left behind"
    # The saved config is the one used: as given, with the schedule values it left open (here the
    # first update early stopping may stop at) filled in and recorded.
    saved = TrainConfig.load_json(run / "config.json")
    assert saved.min_updates == 2 * saved.warmup_steps and saved.schedule_derivation["derived"] == {"min_updates": 8}
    assert dataclasses.replace(saved, min_updates=None, schedule_derivation=None) == tiny_config(data_dir, run)
    with pytest.raises(ValueError, match="already holds a run"):
        Trainer(tiny_config(data_dir, run))


def test_checkpoint_round_trip_and_clear_errors(data_dir, tmp_path):
    Trainer(tiny_config(data_dir, tmp_path / "run", max_steps=2, valid_every_steps=0)).train()
    model, tokenizers, payload = load_model(tmp_path / "run")
    assert payload["path"].endswith("best.pt")
    fresh = build_model(ModelConfig.from_dict(payload["model_config"]))
    fresh.load_state_dict(payload["model"])
    fresh.eval()
    src = torch.tensor([tokenizers.src.encode("alpha beta gamma")])
    lengths = torch.tensor([3])
    torch.testing.assert_close(model(src, lengths, src, lengths), fresh(src, lengths, src, lengths))

    good = (tmp_path / "run" / "last.pt").read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="truncated.pt is corrupted or truncated"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(os.urandom(1000))
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not an mple_metrics checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    payload = load_checkpoint(tmp_path / "run" / "last.pt")
    payload.pop("path")
    payload["model"]["decoder_norm.weight"] = torch.ones(3)
    save_checkpoint(tmp_path / "shape.pt", payload)
    with pytest.raises(CheckpointError, match=r"decoder_norm.weight: checkpoint \(3,\) vs model \(16,\)"):
        load_model(tmp_path / "shape.pt")
    payload = load_checkpoint(tmp_path / "run" / "last.pt")
    payload.pop("path")
    payload["model_config"]["d_model"] = 32
    save_checkpoint(tmp_path / "wide.pt", payload)
    with pytest.raises(CheckpointError, match="different architectures: d_model: 16 != 32"):
        load_state_dicts([tmp_path / "run" / "last.pt", tmp_path / "wide.pt"])
    config, states = load_state_dicts([tmp_path / "run" / "last.pt", tmp_path / "run" / "best.pt"])
    assert config.d_model == 16 and len(states) == 2


def test_resume_in_process_equals_uninterrupted(data_dir, tmp_path):
    straight = Trainer(tiny_config(data_dir, tmp_path / "a", max_steps=7))
    straight.train()
    Trainer(tiny_config(data_dir, tmp_path / "b", max_steps=4)).train()
    resumed = Trainer(tiny_config(data_dir, tmp_path / "b", max_steps=7, resume=True))
    resumed.train()
    for key, value in _params(tmp_path / "a" / "last.pt").items():
        assert torch.equal(value, _params(tmp_path / "b" / "last.pt")[key]), key
    log_a = (tmp_path / "a" / "train.jsonl").read_text().splitlines()
    log_b = (tmp_path / "b" / "train.jsonl").read_text().splitlines()
    assert [json.loads(x)["loss_bits_per_token"] for x in log_a] == [json.loads(x)["loss_bits_per_token"] for x in log_b]
    with pytest.raises(CheckpointError, match="lr: run has 0.003, now 0.001"):
        Trainer(tiny_config(data_dir, tmp_path / "b", lr=1e-3, resume=True))
    with pytest.raises(FileNotFoundError, match="no .* to resume from"):
        Trainer(tiny_config(data_dir, tmp_path / "c", resume=True))


def test_resume_after_sigkill_equals_uninterrupted(data_dir, tmp_path):
    """Kill a training process mid-run; the resumed run's updates match an uninterrupted run."""
    run = tmp_path / "killed"
    args = [sys.executable, "-m", "mple_metrics.cli", "train", "--data", str(data_dir), "--model", "nat",
            "--out", str(run), "--tokenizer-kind", "word", "--max-tokens", "64", "--lr", "0.003",
            "--warmup-steps", "4", "--log-every", "1", "--quiet", "--keep-best", "2",
            "--valid-every-steps", "0", "--patience", "0", "--save-every-steps", "1", "--max-epochs", "100"]
    args += [a for k, v in TINY_MODEL.items() for a in ("--model-arg", f"{k}={v}")]
    process = subprocess.Popen(args + ["--max-steps", "100000"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.time() + 120
        step = 0
        while time.time() < deadline and step < 3:
            time.sleep(0.2)
            if (run / "last.pt").exists():
                try:
                    step = load_checkpoint(run / "last.pt")["progress"]["step"]
                except CheckpointError:  # never expected: writes are atomic
                    raise
        assert step >= 3, process.stderr.read().decode() if process.poll() is not None else "too slow"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    killed_at = load_checkpoint(run / "last.pt")["progress"]["step"]
    target = killed_at + 3
    resumed = subprocess.run(args + ["--max-steps", str(target), "--resume"], capture_output=True, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert resumed.returncode == 0, resumed.stderr
    # The uninterrupted run, in this process on one thread like the subprocesses.
    from mple_metrics.cli import build_parser
    from mple_metrics.commands.train import config_from_args
    straight_args = [a.replace(str(run), str(tmp_path / "straight")) for a in args[3:]] + ["--max-steps", str(target)]
    Trainer(config_from_args(build_parser().parse_args(straight_args))).train()
    a, b = _params(run / "last.pt"), _params(tmp_path / "straight" / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    losses = [[json.loads(x)["loss_bits_per_token"] for x in (d / "train.jsonl").read_text().splitlines()]
              for d in (run, tmp_path / "straight")]
    assert losses[0] == losses[1] and len(losses[0]) == target


needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU available")


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("amp", ["none", "bf16", "fp16"])
@pytest.mark.parametrize("model", ["at", "nat"])
def test_cuda_training_with_mixed_precision(data_dir, tmp_path, amp, model):
    summary = Trainer(tiny_config(data_dir, tmp_path / "run", model=model, device="cuda", amp=amp,
                                  max_steps=4, valid_every_steps=0)).train()
    losses = [json.loads(x)["loss_bits_per_token"] for x in (tmp_path / "run" / "train.jsonl").read_text().splitlines()]
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))
    assert summary["last_validation"]["nll_bits_per_token"] > 0
    model_, _, _ = load_model(tmp_path / "run" / "last.pt", device="cuda")
    assert next(model_.parameters()).is_cuda
    # The CUDA run resumes too.
    Trainer(tiny_config(data_dir, tmp_path / "run", model=model, device="cuda", amp=amp, max_steps=6,
                        valid_every_steps=0, resume=True)).train()
    assert load_checkpoint(tmp_path / "run" / "last.pt")["progress"]["step"] == 6


@pytest.mark.cuda
@needs_gpu
def test_cuda_decoding_matches_cpu_decoding():
    from mple_metrics.decode import beam_search, greedy_search, nat_argmax

    torch.manual_seed(0)
    for kind in ("at", "nat"):
        config = ModelConfig.preset("tiny", kind=kind, src_vocab_size=40, tgt_vocab_size=40, dropout=0.0)
        cpu = build_model(config).double().eval()
        gpu = build_model(config).double().eval().cuda()
        gpu.load_state_dict(cpu.state_dict())
        src = torch.randint(6, 40, (5, 7))
        lengths = torch.tensor([7, 6, 5, 3, 1])
        if kind == "at":
            for fn in (lambda m, s, l: greedy_search(m, s, l), lambda m, s, l: beam_search(m, s, l, beam=4)):
                a, b = fn(cpu, src, lengths), fn(gpu, src.cuda(), lengths.cuda())
                assert a.tokens == b.tokens
                torch.testing.assert_close(a.scores, b.scores.cpu())
        else:
            a = nat_argmax(cpu, src, lengths, length_beam=3)
            b = nat_argmax(gpu, src.cuda(), lengths.cuda(), length_beam=3)
            assert a.tokens == b.tokens


def _logged(run: Path, key: str = "step") -> list:
    return [json.loads(line)[key] for line in (run / "train.jsonl").read_text().splitlines()]


def test_run_killed_before_its_first_checkpoint_resumes_or_reruns_without_duplicate_logs(data_dir, tmp_path,
                                                                                        monkeypatch):
    """4 updates per epoch, the first checkpoint at the end of the first epoch: a kill before
    update 4 leaves config.json and three log lines but no last.pt."""
    settings = dict(max_steps=6, valid_every_steps=0)
    Trainer(tiny_config(data_dir, tmp_path / "straight", **settings)).train()
    real_step = Trainer.train_step

    def killed_at_update_4(self, batches):
        if self.progress.step == 3:
            raise KeyboardInterrupt
        return real_step(self, batches)

    for how in ("resume", "rerun"):
        run = tmp_path / how
        with monkeypatch.context() as patch:
            patch.setattr(Trainer, "train_step", killed_at_update_4)
            with pytest.raises(KeyboardInterrupt):
                Trainer(tiny_config(data_dir, run, **settings)).train()
        assert not (run / "last.pt").exists() and _logged(run) == [1, 2, 3]
        with open(run / "train.jsonl", "a") as log:
            log.write('{"step": 4, "epo')  # a line the kill cut short
        if how == "resume":
            with pytest.raises(ValueError, match="started with other settings: lr: run has 0.003, now 0.001"):
                Trainer(tiny_config(data_dir, run, resume=True, **{**settings, "lr": 1e-3}))
        Trainer(tiny_config(data_dir, run, resume=how == "resume", **settings)).train()
        assert _logged(run) == list(range(1, 7))
        assert _logged(run, "loss_bits_per_token") == _logged(tmp_path / "straight", "loss_bits_per_token")
        assert [json.loads(x)["step"] for x in (run / "valid.jsonl").read_text().splitlines()] == [4, 6]
        a, b = _params(run / "last.pt"), _params(tmp_path / "straight" / "last.pt")
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_moved_or_copied_run_directory_resumes_where_it_is(data_dir, tmp_path):
    Trainer(tiny_config(data_dir, tmp_path / "straight", max_steps=7)).train()
    Trainer(tiny_config(data_dir, tmp_path / "first", max_steps=4)).train()
    shutil.copytree(tmp_path / "first", tmp_path / "copy")
    shutil.move(tmp_path / "first", tmp_path / "moved")
    for name in ("copy", "moved"):
        run = tmp_path / name
        Trainer(tiny_config(data_dir, run, max_steps=7, resume=True)).train()
        a, b = _params(run / "last.pt"), _params(tmp_path / "straight" / "last.pt")
        assert all(torch.equal(a[k], b[k]) for k in a), name
        assert TrainConfig.load_json(run / "config.json").out == str(run)
        assert load_checkpoint(run / "last.pt")["train_config"]["out"] == str(run)
    assert _logged(tmp_path / "copy") == _logged(tmp_path / "straight") == list(range(1, 8))


def test_resume_removes_temporary_files_left_by_killed_writes(data_dir, tmp_path):
    run = tmp_path / "run"
    Trainer(tiny_config(data_dir, run, max_steps=3)).train()
    tokenizer_dir = next(p for p in (run / "tokenizer").iterdir() if p.is_dir())
    orphans = [run / ".last.pt.k3j_a9zq.tmp", run / ".train.jsonl.abcdefgh.tmp",
               tokenizer_dir / ".tokenizer.json.0123abcd.tmp"]
    others = [run / "notes.tmp", run / ".hidden.tmp", run / "my.last.pt.abcdefgh.tmp"]  # not atomic-write names
    for path in orphans + others:
        path.write_bytes(b"x" * 1000)
    Trainer(tiny_config(data_dir, run, max_steps=4, resume=True)).train()
    assert [p for p in orphans if p.exists()] == []
    assert all(p.exists() for p in others)
    assert not list(run.rglob(".*.????????.tmp"))
