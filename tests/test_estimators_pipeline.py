"""The C estimator end to end: scoring under both length conventions, the convergence record,
training both models on a tiny known-C set through ``mple estimate tc`` (sign and rough size,
outputs, reuse, resume), and the given-models and given-scores forms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import sacrebleu

from mple_metrics.cli import main
from mple_metrics.data import EncodedSplit, load_dataset, write_known_c
from mple_metrics.estimators.scoring import ModelScorer, score_encoded
from mple_metrics.estimators.tc_training import (CONVERGENCE_WINDOW, TCTrainingSettings, convergence,
                                                 derive_schedule, shared_tokenizer)
from mple_metrics.models import score_targets
from mple_metrics.train import derive_schedule as derive_train_schedule
from mple_metrics.train import load_model

pytestmark = pytest.mark.usefixtures("one_thread")

# Known-C truth is per word: these sets are meant for the word tokenizer (the default is spm).
TRAIN_ARGS = ["--tokenizer-kind", "word", "--max-epochs", "6", "--patience", "2", "--max-tokens", "64",
              "--resamples", "200", "--at-beam", "1", "--quiet"]


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
    # Both architectures and the tokenizer, read from the checkpoints: tiny = d64, 4 heads, ffn 256, 2+2.
    vocab = load_model(estimate_dir / "seed1" / "at" / "best.pt")[1].tgt.vocab_size
    assert report["signature"].startswith("C|V:nat-d64-h4-ffn256-l2+2-uniform/at-d64-h4-ffn256-l2+2|"
                                          f"tok:word{vocab}|len:include|seeds:1|n:80|")
    assert report["target_unk"] == {"rate": 0.0, "unk_tokens": 0, "tokens": 240}
    assert all("has not converged" in w for w in report["warnings"])
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
    # The same models carry the same signature whichever form scored them.
    assert given["signature"] == trained["signature"]


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
    settings = TCTrainingSettings(data=str(data), out=str(tmp_path / "s"), max_epochs=10, tokenizer_kind="word")
    schedule = derive_schedule(settings, shared_tokenizer(settings))
    # 600 sentences of 4 tokens with </s>: the batch shrinks to its floor and warmup to 10% of the plan.
    assert schedule.max_tokens == 256
    assert schedule.planned_updates == schedule.updates_per_epoch * 10
    assert schedule.warmup_steps == max(1, schedule.planned_updates // 10)
    assert schedule.lr == 2e-3 and schedule.label_smoothing == 0.0
    assert schedule.min_updates == 2 * schedule.warmup_steps  # no early stop before two warmups
    # One derivation: the trainer's (``mple train --schedule auto``), here with plain MLE.
    encoded = EncodedSplit.encode(load_dataset(data, splits=("train",)).train, shared_tokenizer(settings))
    assert schedule == derive_train_schedule(encoded, "tiny", max_epochs=10, patience=settings.patience)


def test_several_seeds_pool_per_sentence_and_report_their_spread(known_c, tmp_path):
    data, _ = known_c
    out = tmp_path / "seeds"
    args = [a if a != "6" else "3" for a in TRAIN_ARGS]  # three epochs: only the bookkeeping is tested
    beam = args.index("--at-beam")
    del args[beam:beam + 2]  # with --no-bleu nothing is decoded, so --at-beam would be refused
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


# Given checkpoints that break Ĉ's premises: tiny runs of two updates on the toy task of test_train.

@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """A plain-MLE NAT and AT of one family and tokenizer, and variants that break a premise."""
    from test_train import TINY_MODEL, tiny_config, tiny_dataset

    from mple_metrics.train import Trainer

    root = tmp_path_factory.mktemp("tiny_runs")
    data = tiny_dataset(root / "data")

    def run(name: str, **changes) -> Path:
        values = {"max_steps": 2, "valid_every_steps": 0, "keep_best": 1, "label_smoothing": 0.0, **changes}
        Trainer(tiny_config(data, root / name, **values)).train()
        return root / name

    return data, {
        "nat": run("nat", model="nat"),
        "at": run("at"),
        "nat-smoothed-glat": run("nat-smoothed-glat", model="nat", label_smoothing=0.1, input="glat"),
        "nat-deeper": run("nat-deeper", model="nat", model_overrides={**TINY_MODEL, "decoder_layers": 2}),
        "at-5-words": run("at-5-words", vocab_size=5),
        "nat-5-words": run("nat-5-words", model="nat", vocab_size=5),
    }


def _given(tiny_runs, nat: str, at: str, out: Path, capsys, *extra: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``mple estimate tc --nat NAT --at AT`` on the toy data."""
    data, runs = tiny_runs
    code = main(["estimate", "tc", "--nat", str(runs[nat]), "--at", str(runs[at]), "--data", str(data),
                 "--out", str(out), "--resamples", "100", "--no-bleu", *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_given_models_of_two_families_are_refused(tiny_runs, tmp_path, capsys):
    code, _, err = _given(tiny_runs, "nat-deeper", "at", tmp_path / "deeper", capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "not of one model family: decoder_layers 2 (NAT) != 1 (AT)" in err
    assert "nat-deeper" in err and not (tmp_path / "deeper" / "tc.json").exists()


def test_given_models_with_two_tokenizers_are_refused(tiny_runs, tmp_path, capsys):
    # Both word tokenizers, learnt on the same text, one cut to 5 words.
    code, _, err = _given(tiny_runs, "nat", "at-5-words", tmp_path / "tok", capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "different tokenizers" in err and "(NAT) != word" in err


def test_given_models_off_plain_mle_are_named_in_warnings(tiny_runs, tmp_path, capsys):
    code, _, err = _given(tiny_runs, "nat-smoothed-glat", "at", tmp_path / "glat", capsys)
    assert code == 0
    report = json.loads((tmp_path / "glat" / "tc.json").read_text())
    smoothing = [w for w in report["warnings"] if "label_smoothing=0.1" in w]
    inputs = [w for w in report["warnings"] if "input='glat'" in w]
    assert len(smoothing) == 1 and smoothing[0].startswith("--nat ") and "the NAT" in smoothing[0]
    assert len(inputs) == 1
    for warning in report["warnings"]:
        assert f"warning: {warning}" in err
    # The signature names both architectures (test_train's TINY_MODEL: d16, 2 heads, ffn 32, 1+1 layers).
    assert report["signature"].startswith("C|V:nat-d16-h2-ffn32-l1+1-uniform/at-d16-h2-ffn32-l1+1|tok:word")
    # The plain pair draws no premise warning.
    code, _, err = _given(tiny_runs, "nat", "at", tmp_path / "plain", capsys)
    assert code == 0
    from mple_metrics.estimators.bootstrap import interval_warning
    plain = json.loads((tmp_path / "plain" / "tc.json").read_text())
    assert [w for w in plain["warnings"] if w != interval_warning(plain["n_sentences"])] == []


def test_a_proxy_target_is_named_in_a_warning():
    from mple_metrics.estimators.tc_pipeline import premise_warnings
    (warning,) = premise_warnings("NAT", "run/kd", {"label_smoothing": 0.0, "target": "kd", "input": "vanilla"})
    assert warning.startswith("--nat run/kd:") and "target='kd'" in warning
    assert premise_warnings("AT", "run/at", {"label_smoothing": 0.0, "target": "raw", "input": "vanilla"}) == []


def test_the_early_stopping_split_is_named_in_a_warning(tiny_runs, tmp_path, capsys):
    code, _, err = _given(tiny_runs, "nat", "at", tmp_path / "valid", capsys, "--split", "valid")
    assert code == 0
    from mple_metrics.estimators.bootstrap import interval_warning
    report = json.loads((tmp_path / "valid" / "tc.json").read_text())
    (warning,) = [w for w in report["warnings"] if w != interval_warning(report["n_sentences"])]
    assert warning.startswith("--split valid is the early-stopping (validation) split of the NAT and the AT")
    assert f"warning: {warning}" in err


def test_the_training_form_warns_on_its_early_stopping_split(estimate_dir, known_c, tmp_path, capsys):
    import shutil
    data, _ = known_c
    copy = tmp_path / "tc"
    shutil.copytree(estimate_dir, copy)  # the models are reused; only the valid split is scored
    assert main(["estimate", "tc", "--data", str(data), "--out", str(copy), "--split", "valid", *TRAIN_ARGS]) == 0
    warnings = json.loads((copy / "tc.json").read_text())["warnings"]
    assert any(w.startswith("--split valid is the early-stopping (validation) split") for w in warnings)
    assert "warning: --split valid is the early-stopping" in capsys.readouterr().err


def test_unk_targets_are_counted_and_warned_about(tiny_runs, tmp_path, capsys):
    data, runs = tiny_runs
    code, out, err = _given(tiny_runs, "nat-5-words", "at-5-words", tmp_path / "unk", capsys)
    assert code == 0
    report = json.loads((tmp_path / "unk" / "tc.json").read_text())
    # Independently: the test targets' words that are not in the checkpoint's vocabulary.
    tokenizer = load_model(runs["at-5-words"])[1].tgt
    vocabulary = {tokenizer.id_to_token(i) for i in range(tokenizer.vocab_size)}
    words = [w for t in load_dataset(data, splits=("test",)).test.tgt for w in t.split()]
    unknown = sum(w not in vocabulary for w in words)
    assert unknown > 0.01 * len(words)
    assert report["target_unk"] == {"rate": unknown / len(words), "unk_tokens": unknown, "tokens": len(words)}
    assert any(f"of the test targets' tokens are <unk> ({unknown} of {len(words)} tokens" in w
               for w in report["warnings"])
    assert "warning: " in err and "<unk>" in err
    assert f"<unk> share of the target tokens: {unknown / len(words):.2%} ({unknown} of {len(words)})" in out
