"""The C estimator end to end: scoring under both length conventions, the convergence record,
training both models on a tiny known-C set through ``mple estimate tc`` (sign and rough size,
outputs, reuse, resume), and the given-models and given-scores forms."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import sacrebleu
import torch

from mple_metrics.cli import main
from mple_metrics.data import EncodedSplit, load_dataset, write_known_c
from mple_metrics.estimators.scoring import ModelScorer, score_encoded
from mple_metrics.estimators.tc_training import (CONVERGENCE_WINDOW, TCTrainingSettings, convergence,
                                                 derive_schedule, shared_tokenizer)
from mple_metrics.models import score_targets
from mple_metrics.train import load_model

pytestmark = pytest.mark.usefixtures("one_thread")

TRAIN_ARGS = ["--max-epochs", "6", "--patience", "2", "--max-tokens", "64", "--resamples", "200", "--at-beam", "1",
              "--quiet"]


@pytest.fixture(scope="module")
def known_c(tmp_path_factory) -> tuple[Path, dict]:
    """K = 2 modes over M = 3 positions: C = 2 bits per sentence, 2/3 bit per token."""
    root = tmp_path_factory.mktemp("known_c")
    truth = write_known_c(root / "data", "kmodes", m=3, k=2, n_train=600, n_valid=60, n_test=80,
                          n_source_words=6, seed=3)
    return root / "data", truth


@pytest.fixture(scope="module")
def estimate_dir(known_c, tmp_path_factory) -> Path:
    data, _ = known_c
    out = tmp_path_factory.mktemp("estimate") / "tc"
    assert main(["estimate", "tc", "--data", str(data), "--out", str(out), *TRAIN_ARGS]) == 0
    return out


def test_training_form_writes_the_report_with_a_sensible_estimate(estimate_dir, known_c):
    _, truth = known_c
    report = json.loads((estimate_dir / "tc.json").read_text())
    for key in ("c_bits_per_token", "c_bits_per_sentence", "ci95_bits_per_token", "ci95_bits_per_sentence",
                "nll_nat_bits_per_token", "nll_at_bits_per_token", "n_sentences", "n_tokens", "bleu_at",
                "bleu_nat", "delta_bleu", "signature", "converged", "training", "models", "length_terms"):
        assert key in report, key
    assert report["n_sentences"] == 80 and report["n_tokens"] == 240
    assert report["signature"].startswith("C|V:transformer-tiny|tok:word|len:include|seeds:1|n:80|")
    # Six short epochs are far from convergence; the sign and the rough size are known.
    assert 0.0 < report["c_bits_per_sentence"] < 3 * truth["c_bits_per_sentence"]
    low, high = report["ci95_bits_per_sentence"]
    assert low <= report["c_bits_per_sentence"] <= high
    assert report["delta_bleu"] == pytest.approx(report["bleu_at"] - report["bleu_nat"])
    schedule = report["training"]["schedule"]
    assert schedule["label_smoothing"] == 0.0 and 1 <= schedule["warmup_steps"] <= schedule["planned_updates"]
    run = report["training"]["runs"][0]
    assert len(run["c_valid_bits_per_token"]) >= 1
    assert isinstance(report["converged"], bool)
    rows = (estimate_dir / "per_sentence.tsv").read_text().split("\n")
    assert len([r for r in rows if r]) == 81  # header + one row per sentence
    assert (estimate_dir / "c_hist.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Both models were trained without label smoothing and validated without decoding.
    for kind in ("nat", "at"):
        config = json.loads((estimate_dir / "seed1" / kind / "config.json").read_text())
        assert config["label_smoothing"] == 0.0 and config["valid_bleu"] is False
        records = [json.loads(line) for line in
                   (estimate_dir / "seed1" / kind / "valid.jsonl").read_text().split("\n") if line]
        assert records and all("bleu" not in r and r["length_nll_bits_per_sentence"] >= 0 for r in records)


def test_bleu_in_the_report_is_sacrebleus_on_the_written_text(estimate_dir, known_c):
    data, _ = known_c
    test = load_dataset(data, splits=("test",)).test
    model, tokenizers, _ = load_model(estimate_dir / "seed1" / "nat" / "best.pt")
    from mple_metrics.decode import DecodeOptions, translate_encoded
    hyps = translate_encoded(model, EncodedSplit.encode(test, tokenizers).src, DecodeOptions())
    text = [tokenizers.tgt.decode(h) for h in hyps]
    expected = sacrebleu.corpus_bleu(text, [list(r) for r in zip(*test.refs)]).score
    assert json.loads((estimate_dir / "tc.json").read_text())["bleu_nat"] == pytest.approx(expected, abs=1e-9)


def test_a_second_run_reuses_the_models_and_gives_the_same_estimate(estimate_dir, known_c, capsys):
    data, _ = known_c
    before = json.loads((estimate_dir / "tc.json").read_text())
    stamps = {p: p.stat().st_mtime_ns for p in estimate_dir.glob("seed1/*/best.pt")}
    assert main(["estimate", "tc", "--data", str(data), "--out", str(estimate_dir), *TRAIN_ARGS]) == 0
    assert {p: p.stat().st_mtime_ns for p in estimate_dir.glob("seed1/*/best.pt")} == stamps
    after = json.loads((estimate_dir / "tc.json").read_text())
    assert after["c_bits_per_token"] == before["c_bits_per_token"]
    out = capsys.readouterr().out
    assert "bits/token" in out and "bits/sentence" in out


def test_a_run_killed_before_it_finished_resumes_to_the_same_estimate(estimate_dir, known_c, tmp_path):
    # The AT as a kill would leave it: checkpoints but no summary.json, no scores, no report.
    data, _ = known_c
    copy = tmp_path / "tc"
    import shutil
    shutil.copytree(estimate_dir, copy)
    for name in ("tc.json", "per_sentence.tsv", "c_hist.png"):
        (copy / name).unlink()
    (copy / "seed1" / "at" / "summary.json").unlink()
    for scores in (copy / "seed1").glob("scores-*.json"):
        scores.unlink()
    assert main(["estimate", "tc", "--data", str(data), "--out", str(copy), *TRAIN_ARGS]) == 0
    original = json.loads((estimate_dir / "tc.json").read_text())
    resumed = json.loads((copy / "tc.json").read_text())
    assert resumed["c_bits_per_token"] == pytest.approx(original["c_bits_per_token"], abs=1e-12)


def test_given_models_form_equals_the_training_form(estimate_dir, known_c, tmp_path):
    data, _ = known_c
    out = tmp_path / "given"
    assert main(["estimate", "tc", "--nat", str(estimate_dir / "seed1" / "nat"), "--at",
                 str(estimate_dir / "seed1" / "at"), "--data", str(data), "--out", str(out),
                 "--resamples", "200", "--at-beam", "1", "--quiet"]) == 0
    given = json.loads((out / "tc.json").read_text())
    trained = json.loads((estimate_dir / "tc.json").read_text())
    assert given["c_bits_per_token"] == pytest.approx(trained["c_bits_per_token"], abs=1e-12)
    assert given["converged"] is None


def test_given_scores_form_reads_plain_files(tmp_path, known_c):
    data, _ = known_c
    rng = np.random.default_rng(0)
    at = rng.uniform(1, 5, 80)
    nat = at + 2.0
    (tmp_path / "nat.txt").write_text("".join(f"{float(v)!r}\n" for v in nat))
    (tmp_path / "at.txt").write_text("".join(f"{float(v)!r}\n" for v in at))
    out = tmp_path / "scores"
    assert main(["estimate", "tc", "--nat-scores", str(tmp_path / "nat.txt"), "--at-scores",
                 str(tmp_path / "at.txt"), "--data", str(data), "--out", str(out)]) == 0
    report = json.loads((out / "tc.json").read_text())
    assert report["c_bits_per_sentence"] == pytest.approx(2.0)
    assert report["c_bits_per_token"] == pytest.approx(2.0 / 3.0)  # 3 whitespace words per target
    assert report["ci95_bits_per_sentence"] == pytest.approx([2.0, 2.0])


def test_scores_follow_the_length_convention_and_the_input_order(estimate_dir, known_c):
    data, _ = known_c
    test = load_dataset(data, splits=("test",)).test
    for kind in ("nat", "at"):
        model, tokenizers, _ = load_model(estimate_dir / "seed1" / kind / "best.pt")
        encoded = EncodedSplit.encode(test, tokenizers)
        include = score_encoded(model, encoded, "include", max_tokens=64)
        exclude = score_encoded(model, encoded, "exclude", max_tokens=64)
        # Sentence by sentence in float64: independent of batching and order.
        from mple_metrics.data import collate
        for i in (0, 7, 79):
            batch = collate(encoded, [i])
            model.double()
            if kind == "at":
                full = float(score_targets(model, batch, include_eos=True))
                tokens = float(score_targets(model, batch, include_eos=False))
            else:
                full = float(score_targets(model, batch, include_length=True))
                tokens = float(score_targets(model, batch, include_length=False))
            model.float()
            assert include[i] == pytest.approx(full, rel=1e-5)
            assert exclude[i] == pytest.approx(tokens, rel=1e-5)
        assert np.all(include >= exclude - 1e-9)
        scorer = ModelScorer(model, tokenizers, length_terms="exclude", max_tokens=64)
        assert np.allclose(scorer.sentence_nll_bits(test.src, test.tgt), exclude)
        assert scorer.token_counts(test.tgt).tolist() == [3] * 80


def _records(values, tokens=300, sentences=100):
    return [{"nll_bits_per_token": v / 3, "nll_bits_per_sentence": v, "scored_positions": tokens,
             "sentences": sentences, "length_nll_bits_per_sentence": 0.0} for v in values]


def test_convergence_needs_early_stops_and_a_stable_estimate():
    nat = _records([9.0, 8.0, 7.5, 7.5, 7.6])
    at = _records([6.0, 5.0, 5.5, 5.5, 5.6])
    c, converged, note = convergence(nat, at, True, True, "include")
    assert c == pytest.approx([1.0, 1.0, 2.5 / 3, 2.5 / 3, 2.5 / 3]) and converged, note
    _, converged, note = convergence(nat, at, False, True, "include")
    assert not converged and "NAT did not early-stop" in note
    # An AT whose NLL creeps towards 0 on a deterministic target never early-stops, but settles.
    creeping = _records([3.0, 0.3, 0.03, 0.0032, 0.0031, 0.0030, 0.0029])
    flat = _records([3.0, 0.3, 0.03, 0.0032, 0.0031, 0.0030, 0.0029])
    c, converged, note = convergence(creeping, flat, True, False, "include")
    assert converged and c[-1] == pytest.approx(0.0), note
    moving = _records([9.0, 8.0, 7.0, 6.0, 5.5])
    _, converged, note = convergence(moving, at, True, True, "include")
    assert not converged and f"last {CONVERGENCE_WINDOW} validations" in note


def test_schedule_fits_the_data(known_c, tmp_path):
    data, _ = known_c
    settings = TCTrainingSettings(data=str(data), out=str(tmp_path / "s"), max_epochs=10)
    schedule = derive_schedule(settings, shared_tokenizer(settings))
    # 600 sentences of 4 tokens with </s>: the batch shrinks to its floor and warmup to 10% of the plan.
    assert schedule.max_tokens == 256
    assert schedule.planned_updates == schedule.updates_per_epoch * 10
    assert schedule.warmup_steps == max(1, schedule.planned_updates // 10)
    assert schedule.lr == 2e-3 and schedule.label_smoothing == 0.0


def test_several_seeds_pool_per_sentence_and_report_their_spread(known_c, tmp_path):
    data, _ = known_c
    out = tmp_path / "seeds"
    args = [a if a != "6" else "3" for a in TRAIN_ARGS]  # three epochs: only the bookkeeping is tested
    assert main(["estimate", "tc", "--data", str(data), "--out", str(out), "--seeds", "2", "--no-bleu",
                 *args]) == 0
    report = json.loads((out / "tc.json").read_text())
    assert [s["seed"] for s in report["per_seed"]] == [1, 2]
    spread = report["seed_spread"]["c_bits_per_token"]
    values = [s["c_bits_per_token"] for s in report["per_seed"]]
    assert spread["values"] == pytest.approx(values) and spread["min"] == pytest.approx(min(values))
    # The pooled estimate averages the seeds' per-sentence NLLs, so its Ĉ is the mean of theirs.
    assert report["c_bits_per_token"] == pytest.approx(sum(values) / 2)
    assert report["signature"].split("|")[4] == "seeds:2"
    assert report["bleu_at"] is None and report["delta_bleu"] is None
    assert len(report["training"]["runs"]) == 2


def test_any_scorer_objects_give_the_same_estimate_as_the_checkpoints(estimate_dir, known_c, tmp_path):
    from mple_metrics.estimators.tc_pipeline import estimate_tc_with_scorers
    data, _ = known_c
    test = load_dataset(data, splits=("test",)).test
    scorers = []
    for kind in ("nat", "at"):
        model, tokenizers, _ = load_model(estimate_dir / "seed1" / kind / "best.pt")
        scorers.append(ModelScorer(model, tokenizers, length_terms="include"))
    report = estimate_tc_with_scorers(*scorers, test.src, test.tgt, tmp_path / "scorers", n_resamples=200)
    trained = json.loads((estimate_dir / "tc.json").read_text())
    assert report.estimate.c_bits_per_token == pytest.approx(trained["c_bits_per_token"], abs=1e-9)
    with pytest.raises(TypeError, match="must implement SentenceScorer"):
        estimate_tc_with_scorers(object(), scorers[1], test.src, test.tgt, tmp_path / "bad")


def test_a_larger_budget_continues_the_runs_instead_of_reusing_them(known_c, tmp_path):
    # In one folder, as a user would after a "not converged" warning.
    data, _ = known_c
    out = tmp_path / "longer"
    shorter = [a if a != "6" else "3" for a in TRAIN_ARGS]
    assert main(["estimate", "tc", "--data", str(data), "--out", str(out), *shorter]) == 0
    before = json.loads((out / "seed1" / "at" / "summary.json").read_text())
    first = json.loads((out / "tc.json").read_text())
    warmup = json.loads((out / "seed1" / "at" / "config.json").read_text())["warmup_steps"]
    assert main(["estimate", "tc", "--data", str(data), "--out", str(out), *TRAIN_ARGS]) == 0
    after = json.loads((out / "seed1" / "at" / "summary.json").read_text())
    config = json.loads((out / "seed1" / "at" / "config.json").read_text())
    assert config["max_epochs"] == 6 and config["warmup_steps"] == warmup  # the runs' schedule is kept
    assert not before["stopped_early"]
    assert after["steps"] > before["steps"] and after["epochs_completed"] == 6
    # The report is of the models trained further, not of cached scores of the earlier ones.
    assert json.loads((out / "tc.json").read_text())["c_bits_per_token"] != first["c_bits_per_token"]
