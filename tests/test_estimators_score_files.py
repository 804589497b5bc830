"""Readers of per-sentence scores from other toolkits: plain NLL files and fairseq output."""

from __future__ import annotations

import gzip
import json
import math
import re

import numpy as np
import pytest

from mple_metrics.estimators import read_score_file, read_scores

# fairseq-generate --score-reference output (base 2): sentences in batch order, not id order, with
# the S-/T-/D- lines and logging that surround the H-/P- lines.  H- is the mean of P- over the
# positions, the last of which is </s>.
FAIRSEQ_SAMPLE = """\
2024-05-01 10:00:00 | INFO | fairseq_cli.generate | loading model(s) from ckpt.pt
S-2\tdas ist gut .
T-2\tthat is good .
H-2\t-0.55\tthat is good .
D-2\t-0.55\tthat is good .
P-2\t-0.5000 -1.0000 -0.2500 -1.0000 -0.0000
S-0\tja
T-0\tyes
H-0\t-1.5\tyes
D-0\t-1.5\tyes
P-0\t-2.0000 -1.0000
S-1\tnein danke
T-1\tno thanks
H-1\t-0.25\tno thanks
D-1\t-0.25\tno thanks
P-1\t-0.2500 -0.5000 -0.0000
2024-05-01 10:00:01 | INFO | fairseq_cli.generate | Translated 3 sentences (10 tokens)
Generate test with beam=1: BLEU4 = 0.00
"""


def write(tmp_path, text, name="scores.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def test_plain_bits(tmp_path):
    path = write(tmp_path, "3.5\n0\n12.25\n")
    scores = read_scores(path)
    assert scores.dtype == np.float64
    np.testing.assert_array_equal(scores, [3.5, 0.0, 12.25])
    assert read_score_file(path).fmt == "plain"
    assert read_score_file(path).n_positions is None


def test_plain_nats_divide_by_ln2(tmp_path):
    path = write(tmp_path, f"{math.log(2):.17g}\n{4 * math.log(2):.17g}\n")
    np.testing.assert_allclose(read_scores(path, unit="nats"), [1.0, 4.0], rtol=1e-15)


def test_plain_logprob_sign(tmp_path):
    path = write(tmp_path, "-3.5\n-0.0\n-1\n")
    np.testing.assert_array_equal(read_scores(path, sign="logprob"), [3.5, 0.0, 1.0])
    assert not np.signbit(read_scores(path, sign="logprob")).any()


def test_plain_crlf_spaces_and_gzip(tmp_path):
    np.testing.assert_array_equal(read_scores(write(tmp_path, " 1.5 \r\n2\r\n")), [1.5, 2.0])
    path = tmp_path / "scores.txt.gz"
    path.write_bytes(gzip.compress(b"1\n2\n"))
    np.testing.assert_array_equal(read_scores(path), [1.0, 2.0])


def test_plain_lines_end_at_newline_only(tmp_path):
    """A form feed or U+2028 does not start a new line, so the line is not a number."""
    with pytest.raises(ValueError, match=r"scores.txt:1: expected a number"):
        read_scores(write(tmp_path, "1.0\u20282.0\n"))


@pytest.mark.parametrize("text, kwargs, message", [
    ("1.0\n\n2.0\n", {}, r"scores.txt:2: empty line"),
    ("1.0\nabc\n", {}, r"scores.txt:2: expected a number, got 'abc'"),
    ("1.0\n2.0 3.0\n", {}, r"scores.txt:2: expected a number"),
    ("nan\n", {}, r"scores.txt:1: the score must be finite"),
    ("1.0\n-inf\n", {}, r"scores.txt:2: the score must be finite"),
    ("1.0\n-2.0\n", {}, r"scores.txt:2: negative NLL -2.0.*sign='logprob'"),
    ("-1.0\n2.0\n", {"sign": "logprob"}, r"scores.txt:2: positive log-probability.*sign='nll'"),
    ("", {}, r"scores.txt: no scores"),
])
def test_plain_errors_name_file_and_line(tmp_path, text, kwargs, message):
    with pytest.raises(ValueError, match=message):
        read_scores(write(tmp_path, text), **kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"unit": "bit"}, "unit"), ({"fmt": "moses"}, "fmt"), ({"sign": "positive"}, "sign"),
])
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=rf"^{message} must be one of"):
        read_scores(write(tmp_path, "1\n"), **kwargs)


def test_fairseq_positional_scores_in_id_order(tmp_path):
    path = write(tmp_path, FAIRSEQ_SAMPLE, "generate-test.txt")
    result = read_score_file(path)
    assert result.fmt == "fairseq"
    np.testing.assert_allclose(result.nll_bits, [3.0, 0.75, 2.75], rtol=1e-12)
    np.testing.assert_array_equal(result.n_positions, [2, 3, 5])
    np.testing.assert_array_equal(read_scores(path, fmt="fairseq"), result.nll_bits)
    np.testing.assert_array_equal(read_scores(path, sign="logprob"), result.nll_bits)


def test_fairseq_nats_for_old_versions(tmp_path):
    path = write(tmp_path, FAIRSEQ_SAMPLE)
    np.testing.assert_allclose(read_scores(path, unit="nats"),
                               np.array([3.0, 0.75, 2.75]) / math.log(2), rtol=1e-12)


def test_fairseq_without_positional_scores_uses_h_score_times_length(tmp_path):
    only_h = "\n".join(line for line in FAIRSEQ_SAMPLE.splitlines() if not line.startswith("P-"))
    result = read_score_file(write(tmp_path, only_h + "\n"))
    assert result.fmt == "fairseq" and result.n_positions is None
    # score * (tokens on the H- line + 1 for </s>)
    np.testing.assert_allclose(result.nll_bits, [1.5 * 2, 0.25 * 3, 0.55 * 5], rtol=1e-12)


def test_fairseq_forced_on_a_file_without_its_lines(tmp_path):
    with pytest.raises(ValueError, match="no fairseq H-/P- lines"):
        read_scores(write(tmp_path, "1.0\n"), fmt="fairseq")


def test_plain_forced_on_fairseq_output_fails_on_the_first_line(tmp_path):
    with pytest.raises(ValueError, match=r":1: expected a number"):
        read_scores(write(tmp_path, FAIRSEQ_SAMPLE), fmt="plain")


@pytest.mark.parametrize("text, message", [
    ("P-0\t-1.0\nP-2\t-1.0\nP-3\t-1.0\n", r"missing 1 \(1\)"),
    ("P-1\t-1.0\n", r"missing 1 \(0\)"),
    ("P-0\t-1.0\nP-1\t-1.0\nP-0\t-2.0\n", r"scores.txt:3: duplicate P-0 \(first at line 1\)"),
    ("P-0\t-1.0 x\n", r"scores.txt:1: expected a number, got 'x'"),
    ("P-0\t-1.0 nan\n", r"scores.txt:1: the score must be finite"),
    ("P-0\t\n", r"scores.txt:1: P-0 has no positional scores"),
    ("P-0\t-1.0 0.5 -0.1\n", r"scores.txt:1: log-probability 0.5 > 0"),
    ("H-0\t0.25\tyes\n", r"scores.txt:1: log-probability 0.25 > 0"),
    ("H-0\tx\tyes\n", r"scores.txt:1: expected a number"),
])
def test_fairseq_errors(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        read_scores(write(tmp_path, text))


def test_fairseq_refuses_the_nll_sign(tmp_path):
    with pytest.raises(ValueError, match="log-probabilities"):
        read_scores(write(tmp_path, FAIRSEQ_SAMPLE), sign="nll")


def test_fairseq_missing_ids_are_listed_without_enumerating_a_huge_range(tmp_path):
    listed = r"missing 999999999998 \(1, 2, 3, 4, 5, 6, 7, 8, 9, 10 \.\.\.\)"
    with pytest.raises(ValueError, match=listed):
        read_scores(write(tmp_path, "P-0\t-1\nP-999999999999\t-1\n"))


def test_fairseq_target_lines_give_the_text_and_the_target_tokens(tmp_path):
    result = read_score_file(write(tmp_path, FAIRSEQ_SAMPLE))
    assert result.targets == ("yes", "no thanks", "that is good .")
    # T = the T- line's tokens: the positions less </s>.
    np.testing.assert_array_equal(result.n_target_tokens, [len(t.split()) for t in result.targets])
    plain = read_score_file(write(tmp_path, "1\n2\n", "plain.txt"))
    assert plain.targets is None and plain.n_target_tokens is None


@pytest.mark.parametrize("text, message", [
    ("T-0\tyes\nT-0\tyes\nP-0\t-1.0 -1.0\n", r"scores.txt:2: duplicate T-0 \(first at line 1\)"),
    ("T-0\tyes\nT-1\tno\nP-0\t-1.0 -1.0\n", r"T-1 has no scores"),
    ("T-0\tyes\nP-0\t-1.0 -1.0\nP-1\t-1.0\n", r"sentence id 1 has scores but no T- line"),
])
def test_fairseq_target_lines_must_match_the_scores(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        read_score_file(write(tmp_path, text))


def _replace_line(text: str, prefix: str, line: str) -> str:
    return "\n".join(line if old.startswith(prefix) else old for old in text.split("\n"))


# The same three references scored by another model: every positional log-probability halved.
AT_SAMPLE = _replace_line(_replace_line(_replace_line(
    FAIRSEQ_SAMPLE, "P-2\t", "P-2\t-0.2500 -0.5000 -0.1250 -0.5000 -0.0000"),
    "P-0\t", "P-0\t-1.0000 -0.5000"), "P-1\t", "P-1\t-0.1250 -0.2500 -0.0000")


def _estimate_tc(nat_text: str, at_text: str, tmp_path, capsys) -> tuple[int, str]:
    from mple_metrics.cli import main

    nat, at = write(tmp_path, nat_text, "nat.txt"), write(tmp_path, at_text, "at.txt")
    code = main(["estimate", "tc", "--nat-scores", str(nat), "--at-scores", str(at), "--out", str(tmp_path / "out"),
                 "--resamples", "100"])
    return code, capsys.readouterr().err


def _sentences(text: str) -> dict[int, tuple[float, int]]:
    """Independently of the reader: id -> (NLL bits = -sum of P-, tokens of the T- line)."""
    nll = {int(line[2:line.index("\t")]): -sum(float(v) for v in line.split("\t")[1].split())
           for line in text.split("\n") if line.startswith("P-")}
    tokens = {int(line[2:line.index("\t")]): len(line.split("\t")[1].split())
              for line in text.split("\n") if line.startswith("T-")}
    return {i: (nll[i], tokens[i]) for i in nll}


def test_estimate_tc_divides_fairseq_scores_by_the_target_tokens(tmp_path, capsys):
    code, err = _estimate_tc(FAIRSEQ_SAMPLE, AT_SAMPLE, tmp_path, capsys)
    assert code == 0, err
    nat, at = _sentences(FAIRSEQ_SAMPLE), _sentences(AT_SAMPLE)
    c = sum(nat[i][0] - at[i][0] for i in nat)
    tokens = sum(nat[i][1] for i in nat)  # 7 target tokens; 10 positions with </s>
    report = json.loads((tmp_path / "out" / "tc.json").read_text())
    assert report["c_bits_per_token"] == pytest.approx(c / tokens, rel=1e-12)
    assert report["c_bits_per_sentence"] == pytest.approx(c / 3, rel=1e-12)
    assert report["n_tokens"] == tokens
    assert report["target_unk"] == {"rate": 0.0, "unk_tokens": 0, "tokens": tokens}


def test_estimate_tc_refuses_fairseq_files_of_other_targets(tmp_path, capsys):
    # One extra position for sentence 1 in the NAT's file.
    extra = _replace_line(FAIRSEQ_SAMPLE, "P-1\t", "P-1\t-0.2500 -0.5000 -0.1000 -0.0000")
    code, err = _estimate_tc(extra, AT_SAMPLE, tmp_path, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert re.search(r"--nat-scores \S*nat\.txt and --at-scores \S*at\.txt score different targets: sentence id 1 "
                     r"has 4 positional scores in the first and 3 in the second", err), err
    # Another reference text for sentence 0, same number of positions.
    other = _replace_line(AT_SAMPLE, "T-0\t", "T-0\tno")
    code, err = _estimate_tc(FAIRSEQ_SAMPLE, other, tmp_path, capsys)
    assert code == 2 and "nat.txt" in err and "at.txt" in err and "T-0 is 'yes' in the first and 'no'" in err


def test_estimate_tc_counts_unk_in_fairseq_targets(tmp_path, capsys):
    # fairseq prints an unknown reference word as <<unk>> on the T- line.
    nat = _replace_line(FAIRSEQ_SAMPLE, "T-2\t", "T-2\tthat is <<unk>> .")
    at = _replace_line(AT_SAMPLE, "T-2\t", "T-2\tthat is <<unk>> .")
    code, err = _estimate_tc(nat, at, tmp_path, capsys)
    assert code == 0
    report = json.loads((tmp_path / "out" / "tc.json").read_text())
    assert report["target_unk"] == {"rate": 1 / 7, "unk_tokens": 1, "tokens": 7}
    assert "warning: 14.3% of the score files' T- target tokens are <unk>" in err
