"""Readers of per-sentence scores from other toolkits: plain NLL files and fairseq output."""

from __future__ import annotations

import gzip
import math

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
