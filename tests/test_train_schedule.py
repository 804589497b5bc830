"""The schedule derived from the training data (``--schedule auto``, the default of ``mple train``
and of the C estimator): its arithmetic against an independent count, what ``mple train`` records
in config.json, explicit options and ``--schedule fixed`` overriding it, exact resume keeping the
stored schedule, and early stopping that waits for ``min_updates``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from mple_metrics.cli import main
from mple_metrics.data import EncodedSplit, TokenizerPair, load_dataset
from mple_metrics.train import DEFAULT_LR, FIXED_SCHEDULE, Trainer, derive_schedule, load_checkpoint
from mple_metrics.train import trainer as trainer_module
from test_train import TINY_MODEL, tiny_config, tiny_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tiny_dataset(tmp_path_factory.mktemp("schedule_data"), n_train=300)


def _split(lengths: list[tuple[int, int]]) -> EncodedSplit:
    return EncodedSplit([[5] * s for s, _ in lengths], [[6] * t for _, t in lengths])


def _batches_by_hand(lengths: list[tuple[int, int]], max_tokens: int) -> int:
    """Batches of a token budget counted by hand for pairs that all have one length: as many
    pairs per batch as fit ``max_tokens`` padded tokens (the batcher pads to the longer side)."""
    width = max(max(s, t) for s, t in lengths)
    per_batch = max(1, max_tokens // width)
    return -(-len(lengths) // per_batch)


@pytest.mark.parametrize("n, length, expected_tokens", [
    (300, 6, 256),        # 2,100 padded tokens: 14 per batch would be absurd; the floor holds
    (6000, 9, 400),       # 60,000 / 150
    (200000, 30, 4096),   # 6.2M / 150 is above the ceiling
])
def test_batch_size_warmup_lr_and_minimum_follow_the_data(n, length, expected_tokens):
    lengths = [(length, length)] * n
    padded = n * (length + 1)  # independent: every pair is as long as the AT's target with </s>
    assert expected_tokens == min(4096, max(256, padded // 150))
    schedule = derive_schedule(_split(lengths), "tiny", max_epochs=20, patience=5)
    assert schedule.padded_train_tokens == padded
    assert schedule.max_tokens == expected_tokens
    assert schedule.updates_per_epoch == _batches_by_hand(lengths, expected_tokens)
    assert schedule.planned_updates == 20 * schedule.updates_per_epoch
    assert schedule.warmup_steps == max(1, min(1000, schedule.planned_updates // 10))
    assert schedule.min_updates == 2 * schedule.warmup_steps
    assert schedule.lr == 2e-3 and schedule.label_smoothing == 0.0 and schedule.patience == 5


def test_given_values_are_kept_and_max_steps_caps_the_plan():
    lengths = [(4, 4)] * 1000
    given = derive_schedule(_split(lengths), "small", max_epochs=50, max_steps=40, lr=1e-4, max_tokens=100,
                            warmup_steps=7, min_updates=3, update_freq=2)
    assert (given.lr, given.max_tokens, given.warmup_steps, given.min_updates) == (1e-4, 100, 7, 3)
    assert given.updates_per_epoch == -(-_batches_by_hand(lengths, 100) // 2)  # two batches an update
    assert given.planned_updates == 40
    derived = derive_schedule(_split(lengths), "small", max_epochs=50, max_steps=40)
    assert derived.warmup_steps == 4 and derived.lr == DEFAULT_LR["small"] == 1e-3
    assert derive_schedule(_split(lengths), "base", max_epochs=1).lr == 5e-4


def _train_args(data: Path, out: Path, *extra: str) -> list[str]:
    args = ["train", "--data", str(data), "--model", "at", "--out", str(out), "--tokenizer-kind", "word",
            "--no-valid-bleu", "--quiet", "--max-epochs", "3", "--log-every", "1", *extra]
    return args + [a for k, v in TINY_MODEL.items() for a in ("--model-arg", f"{k}={v}")]


def _independent_plan(data: Path, run: Path, max_epochs: int) -> tuple[int, int]:
    """(padded tokens, updates per epoch at 256 tokens) counted from the dataset files and the
    run's tokenizer, without the schedule module."""
    train = load_dataset(data, splits=("train",)).train
    tokenizers = TokenizerPair.load(run / "tokenizer")
    src = [len(tokenizers.src.encode(s)) for s in train.src]
    tgt = [len(tokenizers.tgt.encode(t)) for t in train.tgt]
    padded = sum(max(s, t + 1) for s, t in zip(src, tgt))
    # the batcher sorts by length and fills each batch up to the budget of padded tokens
    widths = sorted(max(s, t) for s, t in zip(src, tgt))
    batches, count, longest = 0, 0, 0
    for w in widths:
        if count and max(longest, w) * (count + 1) > 256:
            batches, count, longest = batches + 1, 0, 0
        count, longest = count + 1, max(longest, w)
    return padded, batches + (count > 0)


def test_train_without_schedule_options_records_the_derived_schedule(data_dir, tmp_path):
    run = tmp_path / "auto"
    assert main(_train_args(data_dir, run, "--max-steps", "2")) == 0
    config = json.loads((run / "config.json").read_text())
    padded, per_epoch = _independent_plan(data_dir, run, 3)
    assert padded // 150 < 256 and config["max_tokens"] == 256
    assert config["lr"] == DEFAULT_LR["tiny"] and config["schedule"] == "auto"
    record = config["schedule_derivation"]
    assert record["padded_train_tokens"] == padded and record["updates_per_epoch"] == per_epoch
    assert record["planned_updates"] == 2  # --max-steps caps the 3 epochs
    assert config["warmup_steps"] == max(1, 2 // 10) and config["min_updates"] == 2 * config["warmup_steps"]
    assert record["derived"] == {k: config[k] for k in ("lr", "warmup_steps", "max_tokens", "min_updates")}
    assert record["given"] == {} and set(record["why"]) == set(record["derived"])
    assert config["label_smoothing"] == 0.1  # the trainer's default; the C estimator trains with 0
    # The checkpoints hold the same resolved settings.
    assert load_checkpoint(run / "last.pt")["train_config"] == config


def test_explicit_options_and_fixed_schedule_override_the_derivation(data_dir, tmp_path):
    run = tmp_path / "given"
    assert main(_train_args(data_dir, run, "--max-steps", "1", "--lr", "1e-3", "--max-tokens", "64")) == 0
    config = json.loads((run / "config.json").read_text())
    record = config["schedule_derivation"]
    assert (config["lr"], config["max_tokens"]) == (1e-3, 64)
    assert record["given"] == {"lr": 1e-3, "max_tokens": 64}
    assert set(record["derived"]) == {"warmup_steps", "min_updates"}
    fixed = tmp_path / "fixed"
    assert main(_train_args(data_dir, fixed, "--max-steps", "1", "--schedule", "fixed", "--warmup-steps", "3")) == 0
    config = json.loads((fixed / "config.json").read_text())
    assert {k: config[k] for k in ("lr", "max_tokens", "min_updates")} == {
        k: FIXED_SCHEDULE[k] for k in ("lr", "max_tokens", "min_updates")}
    assert config["warmup_steps"] == 3 and config["schedule_derivation"]["given"] == {"warmup_steps": 3}


def test_resume_keeps_the_stored_schedule_and_equals_the_uninterrupted_run(data_dir, tmp_path):
    resumed, straight = tmp_path / "resumed", tmp_path / "straight"
    assert main(_train_args(data_dir, resumed, "--max-steps", "10", "--max-epochs", "10")) == 0
    stored = json.loads((resumed / "config.json").read_text())
    assert stored["warmup_steps"] == 1  # 10 planned updates
    # Resumed to 20 updates: derived afresh the warmup would be 2 (20 planned), so a run that
    # derived again would not continue the one it resumes.  It keeps the stored schedule.
    assert main(_train_args(data_dir, resumed, "--max-steps", "20", "--max-epochs", "10", "--resume")) == 0
    after = json.loads((resumed / "config.json").read_text())
    assert after == {**stored, "max_steps": 20, "resume": True}
    fresh = tmp_path / "fresh"
    assert main(_train_args(data_dir, fresh, "--max-steps", "20", "--max-epochs", "10")) == 0
    assert json.loads((fresh / "config.json").read_text())["warmup_steps"] == 2
    # The uninterrupted run with the stored schedule given explicitly makes the same updates.
    given = [f"--{k.replace('_', '-')}={stored[k]}" for k in ("lr", "warmup_steps", "max_tokens", "min_updates")]
    assert main(_train_args(data_dir, straight, "--max-steps", "20", "--max-epochs", "10", *given)) == 0
    a, b = (load_checkpoint(d / "last.pt")["model"] for d in (straight, resumed))
    assert all(torch.equal(a[k], b[k]) for k in a)
    losses = [[json.loads(x)["loss_bits_per_token"] for x in (d / "train.jsonl").read_text().splitlines()]
              for d in (straight, resumed)]
    assert losses[0] == losses[1] and len(losses[0]) == 20


def test_early_stopping_waits_for_min_updates(data_dir, tmp_path, monkeypatch):
    """Validation NLLs that only get worse: patience 1 would stop at the second validation; with
    ``min_updates`` the run goes on to the first validation at or after that update."""
    real_validate = trainer_module.validate
    calls = []

    def worsening(*args, **kwargs):
        metrics = real_validate(*args, **kwargs)
        calls.append(1)
        metrics["nll_bits_per_token"] = float(len(calls))
        return metrics

    monkeypatch.setattr(trainer_module, "validate", worsening)
    config = tiny_config(data_dir, tmp_path / "wait", max_steps=40, valid_every_steps=2, patience=1,
                         min_updates=9, valid_bleu=False)
    summary = Trainer(config).train()
    assert summary["stopped_early"] and summary["steps"] == 10  # validations at 2, 4, ..., the first >= 9
    calls.clear()
    summary = Trainer(dataclasses.replace(config, out=str(tmp_path / "nowait"), min_updates=0)).train()
    assert summary["stopped_early"] and summary["steps"] == 4


def test_min_delta_stops_a_run_whose_gains_are_below_it(data_dir, tmp_path, monkeypatch):
    """Validation NLLs 10, 9.9995, 9.999, ... keep improving by 0.0005 bits/token: patience 2 never
    stops them with min_delta 0, stops them at the third validation with min_delta 0.001 (two
    validations that do not better 10 by more than 0.001), and best.pt still holds the lowest NLL."""
    real_validate = trainer_module.validate
    calls = []

    def creeping(*args, **kwargs):
        metrics = real_validate(*args, **kwargs)
        metrics["nll_bits_per_token"] = 10.0 - 0.0005 * len(calls)
        calls.append(1)
        return metrics

    monkeypatch.setattr(trainer_module, "validate", creeping)
    config = tiny_config(data_dir, tmp_path / "plain", max_steps=12, valid_every_steps=2, patience=2,
                         min_updates=0, valid_bleu=False)
    summary = Trainer(config).train()
    assert not summary["stopped_early"] and summary["steps"] == 12
    calls.clear()
    out = tmp_path / "delta"
    summary = Trainer(dataclasses.replace(config, out=str(out), min_delta=0.001)).train()
    assert summary["stopped_early"] and summary["steps"] == 6  # validations at 2 (counted), 4, 6
    best = load_checkpoint(out / "best.pt")
    assert best["progress"]["step"] == 6 and best["best"]["nll"] == pytest.approx(10.0 - 0.001)
    calls.clear()
    # A gain above min_delta resets the patience: 0.0015 per validation never stops.
    monkeypatch.setattr(trainer_module, "validate", lambda *a, **k: {**real_validate(*a, **k),
                        "nll_bits_per_token": 10.0 - 0.0015 * len(calls.append(1) or calls)})
    summary = Trainer(dataclasses.replace(config, out=str(tmp_path / "gaining"), min_delta=0.001)).train()
    assert not summary["stopped_early"]
