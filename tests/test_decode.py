"""Decoding commands end to end on a tiny trained model: translate, evaluate (multi-reference
BLEU with signature, NLL, JSON), resumable distillation, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sacrebleu

import mple_metrics.decode.distill as distill_module
from mple_metrics.cli import main
from mple_metrics.data import load_dataset
from mple_metrics.decode import DecodeOptions, clean_output
from mple_metrics.decode.distill import distill, translate_lines
from mple_metrics.train import Trainer, load_model
from test_train import tiny_config, tiny_dataset


# Tiny models run fastest on one thread, above all on a loaded machine (no OpenMP spinning).
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("decode")
    data = tiny_dataset(root / "data")
    Trainer(tiny_config(data, root / "at", max_steps=30, valid_every_steps=0, log_every=10)).train()
    return data, root / "at"


def test_clean_output_drops_specials_and_dedups():
    assert clean_output([7, 0, 2, 7, 3, 3, 5, 4, 1, 8], dedup=False) == [7, 7, 3, 3, 8]
    assert clean_output([7, 0, 2, 7, 3, 3, 5, 4, 1, 8], dedup=True) == [7, 3, 8]
    with pytest.raises(ValueError, match="beam must be >= 1"):
        DecodeOptions(beam=0)
    with pytest.raises(ValueError, match="length_factor must be > -1"):
        DecodeOptions(length_factor=-1.0)


def test_translate_command_matches_library(trained, tmp_path, capsys):
    data, run = trained
    source = tmp_path / "in.txt"
    lines = load_dataset(data).test.src
    source.write_text("\n".join(lines) + "\n")
    assert main(["translate", "--ckpt", str(run), "--input", str(source), "--output", str(tmp_path / "out.txt"),
                 "--beam", "3", "--quiet"]) == 0
    model, tokenizers, _ = load_model(run / "best.pt")
    expected = translate_lines(model, tokenizers, lines, DecodeOptions(beam=3))
    assert (tmp_path / "out.txt").read_text().splitlines() == expected
    source.write_text("alpha\n\nbeta\n")
    assert main(["translate", "--ckpt", str(run), "--input", str(source), "--quiet"]) == 2
    assert "input line 2 is empty" in capsys.readouterr().err


def test_evaluate_command_reports_multi_reference_bleu_and_nll(trained, tmp_path, capsys):
    data, run = trained
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--ckpt", str(run / "best.pt"), "--data", str(data), "--split", "test", "--beam", "2",
                 "--json", str(out), "--hyps", str(tmp_path / "hyps.txt"), "--quiet"]) == 0
    result = json.loads(out.read_text())
    printed = capsys.readouterr().out
    assert "BLEU|nrefs:2|" in printed and "bits/token" in printed
    assert result["bleu_signature"].startswith("BLEU|nrefs:2|case:mixed|eff:no|tok:13a")
    test = load_dataset(data).test
    hyps = (tmp_path / "hyps.txt").read_text().splitlines()
    reference = sacrebleu.corpus_bleu(hyps, [[r[k] for r in test.refs] for k in range(2)])
    assert result["bleu"] == pytest.approx(reference.score, abs=1e-9)
    assert result["nll_bits_per_token"] > 0 and result["sentences"] == len(test)


def test_distill_is_resumable_and_keeps_raw_targets(trained, tmp_path, monkeypatch):
    data, run = trained
    clean = distill(run, data, tmp_path / "clean", options=DecodeOptions(beam=2), chunk_size=5, quiet=True)
    calls = {"n": 0}
    real = distill_module.translate_encoded

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the run is interrupted in its third chunk
        return real(*args, **kwargs)

    monkeypatch.setattr(distill_module, "translate_encoded", failing)
    with pytest.raises(KeyboardInterrupt):
        distill(run, data, tmp_path / "kd", options=DecodeOptions(beam=2), chunk_size=5, quiet=True)
    assert len(list((tmp_path / "kd" / ".kd_parts").glob("*.txt"))) == 2
    calls["n"] = -100  # no more failures; count the chunks decoded on the second run
    manifest = distill(run, data, tmp_path / "kd", options=DecodeOptions(beam=2), chunk_size=5, quiet=True)
    chunks = sum(-(-n // 5) for n in (48, 8, 8))
    assert calls["n"] + 100 == chunks - 2  # the two finished chunks were not decoded again
    assert manifest["splits"] == clean["splits"]
    kd, raw = load_dataset(tmp_path / "kd"), load_dataset(data)
    for name in ("train", "valid", "test"):
        assert kd[name].tgt == load_dataset(tmp_path / "clean")[name].tgt
        assert kd[name].src == raw[name].src
        assert (tmp_path / "kd" / f"{name}.raw.tgt").read_text().splitlines() == raw[name].tgt
    assert (tmp_path / "kd" / "test.raw.ref1").read_text().splitlines() == [r[1] for r in raw.test.refs]
    assert not (tmp_path / "kd" / ".kd_parts").exists()


def test_commands_report_bad_checkpoints_clearly(trained, tmp_path, capsys):
    data, _ = trained
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    assert main(["evaluate", "--ckpt", str(broken), "--data", str(data), "--quiet"]) == 2
    assert "broken.pt is corrupted or truncated" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # argparse refuses it before anything runs
        main(["distill", "--teacher", str(tmp_path / "nothing"), "--data", str(data), "--out",
              str(tmp_path / "kd"), "--quiet"])
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert "argument --teacher" in err and "does not exist" in err
