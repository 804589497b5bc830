"""Training settings: every numeric setting is checked (finite, in range) with an error naming the
option; model overrides may not contradict named options; a diverging run stops with an error
naming the update instead of writing NaN checkpoints."""

from __future__ import annotations

import math

import pytest
import torch

from mple_metrics.cli import main
from mple_metrics.models import ModelConfig
from mple_metrics.train import TrainConfig, Trainer, TrainingDivergedError, load_checkpoint
from test_train import TINY_MODEL, tiny_config, tiny_dataset

pytestmark = pytest.mark.usefixtures("one_thread")

INF, NAN = math.inf, math.nan


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.mktemp("config_data"))


@pytest.mark.parametrize("name, value, message", [
    ("lr", INF, r"--lr must be a finite number > 0, got inf"),
    ("lr", NAN, r"--lr must be a finite number > 0, got nan"),
    ("lr", 0.0, r"--lr must be a finite number > 0, got 0.0"),
    ("lr", -1e-3, r"--lr must be a finite number > 0"),
    ("length_loss_weight", NAN, r"--length-loss-weight must be a finite number >= 0, got nan"),
    ("length_loss_weight", INF, r"--length-loss-weight must be a finite number >= 0, got inf"),
    ("clip_norm", NAN, r"--clip-norm must be a finite number >= 0, got nan"),
    ("clip_norm", INF, r"--clip-norm must be a finite number >= 0, got inf"),
    ("weight_decay", NAN, r"--weight-decay must be a finite number >= 0"),
    ("weight_decay", -0.1, r"--weight-decay must be a finite number >= 0"),
    ("warmup_init_lr", NAN, r"warmup_init_lr must be a finite number >= 0"),
    ("adam_eps", 0.0, r"adam_eps must be a finite number > 0"),
    ("adam_eps", INF, r"adam_eps must be a finite number > 0"),
    ("label_smoothing", NAN, r"--label-smoothing must lie in \[0, 1\), got nan"),
    ("label_smoothing", 1.0, r"--label-smoothing must lie in \[0, 1\)"),
    ("dropout", NAN, r"--dropout must lie in \[0, 1\), got nan"),
    ("dropout", -0.1, r"--dropout must lie in \[0, 1\)"),
    ("betas", (NAN, 0.98), r"betas must be two numbers in \[0, 1\)"),
    ("betas", (0.9, 1.0), r"betas must be two numbers in \[0, 1\)"),
    ("betas", (0.9,), r"betas must be two numbers in \[0, 1\)"),
    ("max_tokens", 0, r"--max-tokens must be an integer >= 1, got 0"),
    ("max_tokens", 2.5, r"--max-tokens must be an integer >= 1, got 2.5"),
    ("update_freq", True, r"--update-freq must be an integer >= 1, got True"),
    ("warmup_steps", -1, r"--warmup-steps must be an integer >= 0"),
    ("max_positions", 1, r"--max-positions must be an integer >= 2"),
    ("vocab_size", 0, r"--vocab-size must be an integer >= 1"),
    ("max_sentences", 0, r"--max-sentences must be an integer >= 1"),
    ("seed", -1, r"--seed must be an integer in \[0, 2\*\*63\), got -1"),
    ("seed", 2 ** 70, r"--seed must be an integer in \[0, 2\*\*63\)"),
    ("tokenizer_kind", "chars", r"--tokenizer-kind must be one of"),
    ("model", "rnn", r"--model must be one of"),
])
def test_nonsense_settings_are_refused_naming_the_option(name, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{name: value})


def test_sensible_edge_settings_are_accepted():
    TrainConfig(clip_norm=0.0, length_loss_weight=0.0, weight_decay=0.0, warmup_steps=0, label_smoothing=0.0,
                dropout=0.0, seed=2 ** 63 - 1, lr=1, max_sentences=1, betas=[0.0, 0.5])


@pytest.mark.parametrize("overrides, message", [
    ({"kind": "at"}, r"--model-arg kind='at' contradicts --model 'nat'"),
    ({"dropout": 0.3}, r"--model-arg dropout=0.3 contradicts --dropout 0.1"),
    ({"nat_input": "soft"}, r"--model-arg nat_input='soft' contradicts --nat-input 'uniform'"),
    ({"max_positions": 64}, r"--model-arg max_positions=64 contradicts --max-positions 256"),
    ({"src_vocab_size": 10}, r"--model-arg src_vocab_size cannot be set"),
    ({"d_modle": 32}, r"--model-arg: unknown model config field\(s\): d_modle"),
    ({"d_model": 30, "n_heads": 4}, r"--model-arg: d_model \(30\) must be divisible by n_heads \(4\)"),
    ({"soft_copy_tau": NAN}, r"soft_copy_tau must be a finite number > 0, got nan"),
    ({"attention_dropout": NAN}, r"attention_dropout must lie in \[0, 1\)"),
    ({"encoder_layers": True}, r"encoder_layers must be a positive integer, got True"),
])
def test_model_overrides_must_agree_with_named_options(overrides, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(model="nat", model_overrides=overrides)


def test_model_overrides_equal_to_named_options_are_accepted():
    config = TrainConfig(model="nat", model_overrides={"kind": "nat", "dropout": 0.1, "d_model": 32})
    assert config.model_overrides["d_model"] == 32


def test_model_config_rejects_non_finite_and_non_bool_values():
    with pytest.raises(ValueError, match="soft_copy_tau must be a finite number > 0, got inf"):
        ModelConfig(soft_copy_tau=INF)
    with pytest.raises(ValueError, match="share_embeddings must be True or False"):
        ModelConfig(share_embeddings="no")
    with pytest.raises(ValueError, match="dropout must lie in"):
        ModelConfig(dropout=NAN)


def test_train_command_refuses_nonsense_settings(data_dir, tmp_path, capsys):
    base = ["train", "--data", str(data_dir), "--out", str(tmp_path / "run"), "--tokenizer-kind", "word",
            "--max-steps", "1", "--quiet"]
    for extra, message in ((["--model", "at", "--lr", "inf"], "--lr must be a finite number > 0, got inf"),
                           (["--model", "nat", "--clip-norm", "nan"], "--clip-norm must be a finite number >= 0"),
                           (["--model", "nat", "--length-loss-weight", "nan"], "--length-loss-weight must be"),
                           (["--model", "nat", "--model-arg", "kind=at"],
                            "--model-arg kind='at' contradicts --model 'nat'")):
        assert main(base + extra) != 0
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing was trained


def test_diverging_training_stops_naming_the_update_without_nan_checkpoints(data_dir, tmp_path):
    """A huge (finite) learning rate: the first update blows the weights up, the second update's
    loss is NaN; training stops there and every checkpoint written holds finite weights."""
    run = tmp_path / "run"
    trainer = Trainer(tiny_config(data_dir, run, lr=1e30, warmup_steps=0, clip_norm=0.0, max_steps=6,
                                  save_every_steps=1, valid_every_steps=0))
    with pytest.raises(TrainingDivergedError, match=r"training diverged at update 2: its loss is nan") as caught:
        trainer.train()
    assert isinstance(caught.value, ValueError)
    payload = load_checkpoint(run / "last.pt", nonfinite="error")  # the last finite state
    assert payload["progress"]["step"] == 1
    for path in run.glob("*.pt"):
        assert all(torch.isfinite(v).all() for v in load_checkpoint(path, nonfinite="ignore")["model"].values()
                   if v.is_floating_point()), path


def test_non_finite_gradient_norm_stops_training(data_dir, tmp_path, monkeypatch):
    """The clipping norm is checked too (a finite loss whose gradients overflow)."""
    trainer = Trainer(tiny_config(data_dir, tmp_path / "run", model="nat", max_steps=4, valid_every_steps=0,
                                  model_overrides=TINY_MODEL))
    real = torch.nn.utils.clip_grad_norm_
    calls = {"n": 0}

    def overflowing(parameters, max_norm, *args, **kwargs):
        calls["n"] += 1
        norm = real(parameters, max_norm, *args, **kwargs)
        return norm * INF if calls["n"] == 3 else norm

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", overflowing)
    with pytest.raises(TrainingDivergedError, match="at update 3: its gradient norm is inf"):
        trainer.train()


def test_dynamic_kd_refuses_a_kd_directory_named_twice_and_negative_gamma(tmp_path, capsys):
    kd = tmp_path / "kd"
    kd.mkdir()
    base = dict(model="nat", target="dynamic-kd")
    with pytest.raises(ValueError, match=r"--kd .*kd is named twice; each teacher's outputs can be only one"):
        TrainConfig(**base, kd=[str(kd), str(kd)])
    with pytest.raises(ValueError, match=r"--kd .*is named twice \(also as .*kd\)"):
        TrainConfig(**base, kd=[str(kd), str(tmp_path / "." / "kd" / ".." / "kd")])  # the same directory
    with pytest.raises(ValueError, match=r"--gamma must be finite numbers >= 0, one per candidate, got \[-1"):
        TrainConfig(**base, kd=[str(kd)], gamma=[-1.0, 1.0])
    TrainConfig(**base, kd=[str(kd)], gamma=[0.0, 2.5])  # zero weights are legal
    for extra, message in ((["--kd", str(kd), "--kd", str(kd)], "is named twice"),
                           (["--kd", str(kd), "--gamma", "-1", "1"], "--gamma must be finite numbers >= 0")):
        code = main(["train", "--data", "bundled", "--model", "nat", "--target", "dynamic-kd",
                     "--out", str(tmp_path / "run"), "--quiet", *extra])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_dynamic_kd_target_refuses_negative_gamma():
    import numpy as np

    from mple_metrics.proxies.dynamic_kd import DynamicKDTarget

    candidates = {"train": [[[4, 5], [4, 6]]]}
    pairwise = {"train": np.full((1, 2, 2), 50.0)}
    assert DynamicKDTarget(candidates, pairwise, gamma=[0.0, 1.0]).gamma == [0.0, 1.0]
    with pytest.raises(ValueError, match=r"--gamma weights must be finite numbers >= 0, got \[1.0, -0.5\]"):
        DynamicKDTarget(candidates, pairwise, gamma=[1.0, -0.5])


def test_output_paths_are_checked_by_writing_there_and_leave_nothing_behind(tmp_path):
    """output_dir/output_file probe the destination with a temporary file: /proc passes os.access
    for root but takes no new file, and the probe is removed where it succeeds."""
    import argparse

    from mple_metrics.commands.argument_types import output_dir, output_file

    existing = tmp_path / "run"
    existing.mkdir()
    assert output_dir(str(existing)) == existing and output_file(str(existing / "a.json")) == existing / "a.json"
    assert output_dir(str(tmp_path / "new" / "deeper")) == tmp_path / "new" / "deeper"
    assert list(tmp_path.rglob("*")) == [existing]  # no probe left, nothing created
    for make, path, message in ((output_dir, "/proc", "/proc is not writable"),
                                (output_dir, "/proc/mple-missing/run", "/proc is not writable"),
                                (output_file, "/proc/mple.json", "/proc is not writable"),
                                (output_file, str(existing), "is a directory"),
                                (output_dir, str(tmp_path / "file" / "run"), "not a directory")):
        (tmp_path / "file").write_text("x")
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            make(path)


def test_resume_differences_compare_paths_by_location(tmp_path, monkeypatch):
    """A run started with absolute paths resumes from a relative spelling of the same places; a
    tokenizer's kind and size only count when neither run loads a tokenizer directory."""
    (tmp_path / "data").mkdir()
    (tmp_path / "tok").mkdir()
    monkeypatch.chdir(tmp_path)
    saved = TrainConfig(data=str(tmp_path / "data"), tokenizer=str(tmp_path / "tok"), vocab_size=400,
                        model="nat", target="kd", kd=[str(tmp_path / "data")])
    assert TrainConfig(data="data", tokenizer="tok", vocab_size=8000, model="nat", target="kd",
                       kd=["./data"]).resume_differences(saved) == []
    assert TrainConfig(data="bundled").resume_differences(TrainConfig(data="bundled")) == []
    moved = TrainConfig(data="elsewhere", tokenizer="tok", vocab_size=400, model="nat", target="kd",
                        kd=["data"]).resume_differences(saved)
    assert len(moved) == 1 and moved[0].startswith("data:")
    learnt = TrainConfig(data="data", vocab_size=8000).resume_differences(TrainConfig(data="data", vocab_size=400))
    assert len(learnt) == 1 and learnt[0].startswith("vocab_size:")
