"""The C estimate from per-sentence NLLs against known truth; its JSON, TSV, PNG, table outputs."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

import mple_metrics
from mple_metrics.estimators import (PER_SENTENCE_COLUMNS, TCEstimate, combine_seeds,
                                     conditional_tc, format_tc_table, tc_signature,
                                     write_tc_report)


def known_c_scores(rng, n=800, c_per_token=0.75, noise=0.0):
    """NLLs with NLL_NAT = NLL_AT + c_per_token * tokens (+ noise): per-token truth c_per_token.
    NLL_AT >= 10 bits keeps NLL_NAT positive for noise up to a few bits."""
    tokens = rng.integers(3, 25, n)
    at = 10.0 + rng.gamma(2.0, 1.5, n) * tokens
    nat = at + c_per_token * tokens + rng.normal(0.0, noise, n)
    return nat, at, tokens


def test_constant_c_is_recovered_exactly():
    """K = 2 equiprobable modes differing at M = 8 positions: C = (M - 1) log2 K = 7 bits/sentence,
    for every sentence, so every resample gives 7 and the interval collapses on it."""
    rng = np.random.default_rng(0)
    n, m = 500, 8
    at = rng.gamma(2.0, 3.0, n)
    nat = at + 7.0 * math.log2(2)
    estimate = conditional_tc(nat, at, np.full(n, m), n_resamples=200)
    assert estimate.c_bits_per_sentence == pytest.approx(7.0, abs=1e-12)
    assert estimate.c_bits_per_token == pytest.approx(7.0 / m, abs=1e-12)
    assert estimate.ci95_bits_per_sentence == pytest.approx((7.0, 7.0), abs=1e-9)
    assert estimate.ci95_bits_per_token == pytest.approx((7.0 / m, 7.0 / m), abs=1e-9)


def test_noisy_known_c_lies_in_the_interval():
    rng = np.random.default_rng(42)
    nat, at, tokens = known_c_scores(rng, noise=2.0)
    estimate = conditional_tc(nat, at, tokens)
    low, high = estimate.ci95_bits_per_token
    assert low < 0.75 < high
    assert high - low < 0.05
    truth_per_sentence = 0.75 * tokens.mean()  # the population mean of c * tokens, as sampled
    low, high = estimate.ci95_bits_per_sentence
    assert low < truth_per_sentence < high
    np.testing.assert_allclose(estimate.sentence_c_bits, nat - at)


def test_zero_c_is_centred_on_zero():
    """i.i.d. targets (footnote 9): both models reach the same NLL up to noise, so C = 0."""
    rng = np.random.default_rng(3)
    tokens = rng.integers(3, 25, 1000)
    at = 10.0 + rng.gamma(2.0, 1.5, 1000) * tokens
    estimate = conditional_tc(at + rng.normal(0.0, 0.5, 1000), at, tokens)
    assert estimate.ci95_bits_per_token[0] < 0.0 < estimate.ci95_bits_per_token[1]
    assert abs(estimate.c_bits_per_token) < 0.01


def test_per_token_and_per_sentence_values_agree(rng):
    nat, at, tokens = known_c_scores(rng, n=300, noise=1.0)
    e = conditional_tc(nat, at, tokens, n_resamples=300)
    assert e.n_sentences == 300 and e.n_tokens == int(tokens.sum())
    assert e.c_bits_per_token * e.n_tokens == pytest.approx(e.c_bits_per_sentence * e.n_sentences)
    assert e.c_bits_per_sentence == pytest.approx(np.mean(nat - at))
    assert e.c_bits_per_token == pytest.approx(np.sum(nat - at) / tokens.sum())
    assert e.nll_nat_bits_per_token - e.nll_at_bits_per_token == pytest.approx(e.c_bits_per_token)
    assert (e.nll_nat_bits_per_sentence - e.nll_at_bits_per_sentence
            == pytest.approx(e.c_bits_per_sentence))
    assert e.nll_nat_bits_per_sentence == pytest.approx(nat.mean())
    assert e.nll_at_bits_per_token == pytest.approx(at.sum() / tokens.sum())


def test_equal_lengths_make_the_per_token_interval_a_scaled_per_sentence_one(rng):
    """T tokens in every sentence and the same resamples for both: CI_tok = CI_sent / T."""
    at = 20.0 + rng.gamma(2.0, 3.0, 200)
    nat = at + rng.normal(5.0, 2.0, 200)
    e = conditional_tc(nat, at, np.full(200, 10), n_resamples=500, seed=9)
    np.testing.assert_allclose(e.ci95_bits_per_token, np.array(e.ci95_bits_per_sentence) / 10,
                               rtol=1e-12)


def test_deterministic_and_seeded(rng):
    nat, at, tokens = known_c_scores(rng, n=100, noise=1.0)
    a = conditional_tc(nat, at, tokens, seed=5).to_dict()
    assert conditional_tc(nat, at, tokens, seed=5).to_dict() == a
    assert conditional_tc(nat, at, tokens, seed=6).to_dict()["ci95_bits_per_token"] != \
        a["ci95_bits_per_token"]


def test_per_sentence_arrays_are_read_only(rng):
    nat, at, tokens = known_c_scores(rng, n=10)
    e = conditional_tc(nat, at, tokens, n_resamples=5)
    with pytest.raises(ValueError):
        e.sentence_c_bits[0] = 1.0
    assert e.sentence_n_tokens.dtype == np.int64
    nat[0] += 100.0  # the estimate holds its own copies
    assert e.sentence_nll_nat_bits[0] != nat[0]


def test_to_dict_round_trips_through_json_without_nan(rng):
    nat, at, tokens = known_c_scores(rng, n=50, noise=1.0)
    e = conditional_tc(nat, at, tokens, n_resamples=50, family="transformer-tiny",
                       tokenizer="word", length_terms="exclude")
    fields = e.to_dict()
    text = json.dumps(fields, allow_nan=False)
    assert json.loads(text) == fields
    for key in ("c_bits_per_token", "c_bits_per_sentence", "ci95_bits_per_token",
                "ci95_bits_per_sentence", "nll_nat_bits_per_token", "nll_at_bits_per_token",
                "nll_nat_bits_per_sentence", "nll_at_bits_per_sentence", "n_sentences",
                "n_tokens", "length_terms", "unit", "units_note", "bootstrap", "signature"):
        assert key in fields, key
    assert "per_sentence" not in fields
    assert fields["length_terms"] == "exclude" and fields["unit"] == "bits"
    assert fields["bootstrap"] == {"method": "percentile", "confidence": 0.95, "n_resamples": 50,
                                   "seed": 0, "unit": "sentences (paired)"}
    full = e.to_dict(per_sentence=True)
    json.dumps(full, allow_nan=False)
    assert full["per_sentence"]["n_tokens"] == tokens.tolist()
    assert full["per_sentence"]["c_bits"] == pytest.approx((nat - at).tolist())


def test_signature_format():
    signature = tc_signature(family="transformer-tiny", tokenizer="word", length_terms="include",
                             seeds=1, n_sentences=1000)
    assert signature == f"C|V:transformer-tiny|tok:word|len:include|seeds:1|n:1000|version:" \
                        f"{mple_metrics.__version__}"
    assert tc_signature(family=None, tokenizer=None, length_terms="exclude", seeds=3,
                        n_sentences=7).startswith("C|V:unknown|tok:unknown|len:exclude|seeds:3|"
                                                  "n:7|")
    with pytest.raises(ValueError, match="signature field V"):
        tc_signature(family="a|b", tokenizer="word", length_terms="include", seeds=1,
                     n_sentences=1)
    e = conditional_tc([3.0, 4.0], [1.0, 1.0], [2, 2], n_resamples=5, family="transformer-base",
                       tokenizer="spm8000", seeds=3, length_terms="exclude")
    assert re.fullmatch(r"C\|V:transformer-base\|tok:spm8000\|len:exclude\|seeds:3\|n:2\|"
                        r"version:\S+", e.signature)


def test_combine_seeds(rng):
    nat, at, tokens = known_c_scores(rng, n=40, noise=1.0)
    estimates = [conditional_tc(nat + shift, at, tokens, n_resamples=20)
                 for shift in (0.0, 0.5, 2.0)]
    combined = combine_seeds(estimates)
    json.dumps(combined, allow_nan=False)
    per_sentence = [e.c_bits_per_sentence for e in estimates]
    assert combined["n_seeds"] == 3
    assert combined["c_bits_per_sentence"]["values"] == per_sentence
    assert combined["c_bits_per_sentence"]["mean"] == pytest.approx(np.mean(per_sentence))
    assert combined["c_bits_per_sentence"]["std"] == pytest.approx(np.std(per_sentence, ddof=1))
    assert combined["c_bits_per_sentence"]["min"] == min(per_sentence)
    assert combined["c_bits_per_token"]["max"] == max(e.c_bits_per_token for e in estimates)
    assert combine_seeds(estimates[:1])["c_bits_per_token"]["std"] is None


def test_combine_seeds_refuses_mismatched_estimates(rng):
    nat, at, tokens = known_c_scores(rng, n=40)
    e = conditional_tc(nat, at, tokens, n_resamples=5)
    with pytest.raises(ValueError, match="estimates is empty"):
        combine_seeds([])
    with pytest.raises(ValueError, match="same sentences"):
        combine_seeds([e, conditional_tc(nat[:30], at[:30], tokens[:30], n_resamples=5)])
    with pytest.raises(ValueError, match="length_terms"):
        combine_seeds([e, conditional_tc(nat, at, tokens, n_resamples=5, length_terms="exclude")])
    with pytest.raises(TypeError, match=r"estimates\[1\]"):
        combine_seeds([e, {"c_bits_per_token": 1.0}])


def test_write_tc_report(tmp_path, rng):
    n = 30
    nat, at, tokens = known_c_scores(rng, n=n, noise=2.0)
    e = conditional_tc(nat, at, tokens, n_resamples=100, family="transformer-tiny",
                       tokenizer="word")
    sources = [f"quelle {i}" for i in range(n)]
    sources[4] = "tab\there and\nnewline\rreturn"
    references = [f"reference {i}" for i in range(n)]
    extra = {"bleu_at": 27.5, "delta_bleu": float("nan"), "models": {"at": {"steps": 10}}}
    paths = write_tc_report(tmp_path / "out", e, sources=sources, references=references,
                            extra=extra)
    assert set(paths) == {"tc.json", "per_sentence.tsv", "c_hist.png"}
    assert all(path.parent == tmp_path / "out" and path.is_file() for path in paths.values())
    assert not list((tmp_path / "out").glob(".*.tmp"))

    document = json.loads(paths["tc.json"].read_text(encoding="utf-8"))
    assert document["c_bits_per_token"] == pytest.approx(e.c_bits_per_token)
    assert document["signature"] == e.signature
    assert document["bleu_at"] == 27.5 and document["delta_bleu"] is None
    assert document["models"] == {"at": {"steps": 10}}

    lines = paths["per_sentence.tsv"].read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and lines[0].split("\t") == list(PER_SENTENCE_COLUMNS)
    rows = [line.split("\t") for line in lines[1:-1]]
    assert len(rows) == n and all(len(row) == 7 for row in rows)
    c_column = [float(row[1]) for row in rows]
    assert c_column == sorted(c_column, reverse=True)
    assert sorted(int(row[0]) for row in rows) == list(range(n))
    for row in rows:
        i = int(row[0])
        assert float(row[1]) == pytest.approx(nat[i] - at[i], abs=1e-6)
        assert float(row[2]) == pytest.approx(nat[i], abs=1e-6)
        assert float(row[3]) == pytest.approx(at[i], abs=1e-6)
        assert int(row[4]) == tokens[i]
        assert row[6] == references[i]
    row_4 = next(row for row in rows if row[0] == "4")
    assert row_4[5] == "tab here and newline return"

    png = paths["c_hist.png"].read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000


def test_write_tc_report_without_text_and_its_errors(tmp_path):
    e = conditional_tc([3.0, 4.0, 4.0], [1.0, 1.0, 1.0], [2, 2, 3], n_resamples=5)
    paths = write_tc_report(tmp_path, e)
    rows = paths["per_sentence.tsv"].read_text(encoding="utf-8").splitlines()[1:]
    assert [row.split("\t")[0] for row in rows] == ["1", "2", "0"]  # ties keep index order
    assert all(row.endswith("\t\t") for row in rows)
    with pytest.raises(ValueError, match="extra must not redefine"):
        write_tc_report(tmp_path, e, extra={"c_bits_per_token": 0.0})
    with pytest.raises(ValueError, match=r"sources must have one line per sentence \(3\)"):
        write_tc_report(tmp_path, e, sources=["a", "b"])
    with pytest.raises(TypeError, match=r"references\[1\]"):
        write_tc_report(tmp_path, e, references=["a", 2, "c"])
    with pytest.raises(TypeError, match="sources must be a sequence"):
        write_tc_report(tmp_path, e, sources="abc")
    with pytest.raises(TypeError, match="estimate"):
        write_tc_report(tmp_path, e.to_dict())


def test_format_tc_table(rng):
    nat, at, tokens = known_c_scores(rng, n=20)
    e = conditional_tc(nat, at, tokens, n_resamples=10, family="transformer-tiny")
    table = format_tc_table(e, {"BLEU AT": 27.123, "ΔBLEU": 3.0, "nested": {"skipped": 1}})
    for text in ("bits/token", "bits/sentence", "95% CI", "NLL NAT", "NLL AT", e.signature,
                 f"n = 20 sentences, {e.n_tokens} tokens", f"{e.c_bits_per_token:.4f}",
                 "BLEU AT: 27.12", "ΔBLEU: 3"):
        assert text in table, text
    assert "nested" not in table


@pytest.mark.parametrize("args, kwargs, error, name", [
    (([1.0, 2.0], [1.0], [1, 1]), {}, ValueError, "at_nll_bits"),
    (([1.0, 2.0], [1.0, 1.0], [1]), {}, ValueError, "n_tokens"),
    (([], [], []), {}, ValueError, "nat_nll_bits"),
    (([1.0, float("nan")], [1.0, 1.0], [1, 1]), {}, ValueError, "nat_nll_bits"),
    (([1.0, 2.0], [-1.0, 1.0], [1, 1]), {}, ValueError, "at_nll_bits"),
    (([1.0, 2.0], [1.0, 1.0], [0, 1]), {}, ValueError, "n_tokens"),
    (([1.0, 2.0], [1.0, 1.0], [1.5, 1]), {}, ValueError, "n_tokens"),
    ((["a"], [1.0], [1]), {}, TypeError, "nat_nll_bits"),
    (([1.0], [1.0], [1]), {"length_terms": "both"}, ValueError, "length_terms"),
    (([1.0], [1.0], [1]), {"seeds": 0}, ValueError, "seeds"),
    (([1.0], [1.0], [1]), {"seeds": 1.0}, TypeError, "seeds"),
    (([1.0], [1.0], [1]), {"n_resamples": 0}, ValueError, "n_resamples"),
    (([1.0], [1.0], [1]), {"confidence": 95}, ValueError, "confidence"),
])
def test_bad_input_names_the_argument(args, kwargs, error, name):
    with pytest.raises(error, match=rf"^{name}\b"):
        conditional_tc(*args, **kwargs)


def test_estimate_type():
    assert isinstance(conditional_tc([2.0], [1.0], [1], n_resamples=1), TCEstimate)


def test_the_histogram_says_whether_the_estimate_converged(tmp_path, rng):
    from mple_metrics.estimators.total_correlation import c_histogram_figure, c_histogram_png

    nat, at, tokens = known_c_scores(rng, n=40, noise=1.0)
    e = conditional_tc(nat, at, tokens, n_resamples=100)

    def title_and_texts(*args):
        axes = c_histogram_figure(e, *args).axes[0]
        return axes.get_title(), [text.get_text() for text in axes.texts]

    title, texts = title_and_texts(False, "the AT did not early-stop")
    assert "NOT CONVERGED" in title and "the AT did not early-stop" in title and "NOT CONVERGED" in texts
    title, texts = title_and_texts(True, "both models settled")
    assert "converged" in title and "NOT" not in title and texts == []
    title, texts = title_and_texts(None, "models given: training not observed")
    assert "convergence unknown: models given" in title and texts == []
    # The report's picture is that figure, drawn from the report's own convergence fields.
    paths = write_tc_report(tmp_path, e, extra={"converged": False, "convergence_note": "the AT did not early-stop"})
    assert paths["c_hist.png"].read_bytes() == c_histogram_png(e, False, "the AT did not early-stop")
    assert paths["c_hist.png"].read_bytes() != c_histogram_png(e, True, "the AT did not early-stop")


def test_unk_rate_counts_the_unk_id_of_token_sequences():
    import torch

    from mple_metrics.data import UNK_ID, unk_rate, unk_rate_warning

    rng = np.random.default_rng(5)
    sequences = [rng.integers(0, 8, int(n)).tolist() for n in rng.integers(0, 12, 50)]
    brute = sum(token == UNK_ID for sequence in sequences for token in sequence)
    total = sum(len(sequence) for sequence in sequences)
    rate = unk_rate(sequences)
    assert (rate.unk_tokens, rate.tokens, rate.rate) == (brute, total, brute / total)
    assert unk_rate([torch.tensor(s, dtype=torch.long) for s in sequences]) == rate
    assert unk_rate(sequences, unk_id=7).unk_tokens == sum(t == 7 for s in sequences for t in s)
    assert unk_rate([]).rate == 0.0
    assert unk_rate_warning(unk_rate([[UNK_ID] + [9] * 99]), "x") is None  # exactly 1%: not above
    warning = unk_rate_warning(unk_rate([[UNK_ID, UNK_ID] + [9] * 98]), "the test targets")
    assert warning.startswith("2.0% of the test targets are <unk> (2 of 100 tokens")


def test_one_sentence_has_no_interval_and_few_sentences_are_warned_about(tmp_path, rng):
    """One sentence: every resample is that sentence, so the 'interval' would have width 0; it is
    reported as null.  Below 10 sentences the interval is written with a warning."""
    nat, at, tokens = known_c_scores(rng, n=1)
    single = conditional_tc(nat, at, tokens, n_resamples=100)
    assert single.c_bits_per_sentence == pytest.approx(float(nat[0] - at[0]))
    assert all(math.isnan(v) for v in (*single.ci95_bits_per_token, *single.ci95_bits_per_sentence))
    document = json.loads(write_tc_report(tmp_path / "one", single)["tc.json"].read_text())
    assert document["ci95_bits_per_token"] == [None, None]
    assert any("no interval" in w for w in document["warnings"])
    assert "none (1 sentence)" in format_tc_table(single)

    nat, at, tokens = known_c_scores(rng, n=5, noise=2.0)
    few = conditional_tc(nat, at, tokens, n_resamples=100)
    low, high = few.ci95_bits_per_token
    assert low < high
    document = json.loads(write_tc_report(tmp_path / "few", few)["tc.json"].read_text())
    assert any("unreliable below 10" in w for w in document["warnings"])

    nat, at, tokens = known_c_scores(rng, n=30, noise=2.0)
    enough = conditional_tc(nat, at, tokens, n_resamples=100)
    document = json.loads(write_tc_report(tmp_path / "enough", enough)["tc.json"].read_text())
    assert not any("unreliable" in w or "no interval" in w for w in document.get("warnings", []))
