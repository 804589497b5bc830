"""The sacrebleu-style BLEU object and the `mple bleu` command against sacrebleu on text."""

from __future__ import annotations

import json
import math

import pytest
import sacrebleu

from mple_metrics import __version__
from mple_metrics.cli import main
from mple_metrics.metrics import BLEU

HYPS = [
    "The cat sat on the mat.",
    "A quick brown fox jumps over the lazy dog!",
    "It's raining, isn't it?",
    "",
    "Non-autoregressive models predict all tokens at once.",
]
REFS_A = [
    "The cat is sitting on the mat.",
    "The quick brown fox jumps over the lazy dog.",
    "It is raining, is it not?",
    "Nothing.",
    "NAT models predict every token in parallel.",
]
REFS_B = [
    "There is a cat on the mat.",
    "A fast brown fox leaps over a lazy dog!",
    "Isn't it raining?",
    "Empty.",
    "Non-autoregressive models predict all the tokens at once.",
]


@pytest.mark.parametrize("tokenize", ["13a", "none", "intl", "char"])
@pytest.mark.parametrize("lowercase", [False, True])
def test_text_scores_equal_sacrebleu(tokenize, lowercase):
    metric = BLEU(tokenize=tokenize, lowercase=lowercase)
    refs = [[a, b] for a, b in zip(REFS_A, REFS_B)]
    ours = metric.corpus_score(HYPS, refs)
    theirs = sacrebleu.corpus_bleu(HYPS, [REFS_A, REFS_B], tokenize=tokenize, lowercase=lowercase)
    assert math.isclose(ours.score, theirs.score, abs_tol=1e-9)
    assert list(ours.counts) == theirs.counts and list(ours.totals) == theirs.totals
    assert (ours.sys_len, ours.ref_len) == (theirs.sys_len, theirs.ref_len)
    assert ours.format().split(" = ", 1)[1] == theirs.format().split(" = ", 1)[1]
    batch = metric.batch_sentence_scores(HYPS, refs)
    for k, (hyp, row) in enumerate(zip(HYPS, refs)):
        want = sacrebleu.sentence_bleu(hyp, row, tokenize=tokenize, lowercase=lowercase).score
        assert math.isclose(float(batch[k]), want, abs_tol=1e-9)
        assert math.isclose(metric.sentence_score(hyp, row).score, want, abs_tol=1e-9)


def test_signature():
    assert str(BLEU().sentence_score([1, 2, 3], [[1, 2, 3]]).signature) == (
        f"BLEU|nrefs:1|case:mixed|eff:yes|tok:ids|smooth:exp|version:{__version__}")
    corpus = BLEU(tokenize="13a", lowercase=True).corpus_score(HYPS, [[a, b] for a, b in zip(REFS_A, REFS_B)])
    assert str(corpus.signature) == f"BLEU|nrefs:2|case:lc|eff:no|tok:13a|smooth:exp|version:{__version__}"
    assert corpus.format().startswith(f"{corpus.signature} = {corpus.score:.2f} ")


def test_bad_arguments():
    with pytest.raises(ValueError, match="tokenize"):
        BLEU(tokenize="no-such-tokenizer")
    with pytest.raises(TypeError, match="tokenize"):
        BLEU().sentence_score("text", ["text"])
    with pytest.raises(ValueError, match="refs"):
        BLEU(tokenize="13a").corpus_score(HYPS, [[r] for r in REFS_A[:2]])


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_cli_bleu_matches_sacrebleu(tmp_path, capsys):
    hyp = _write(tmp_path / "hyp.txt", HYPS)
    ref_a = _write(tmp_path / "a.txt", REFS_A)
    ref_b = _write(tmp_path / "b.txt", REFS_B)
    assert main(["bleu", str(hyp), str(ref_a), str(ref_b), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    want = sacrebleu.corpus_bleu(HYPS, [REFS_A, REFS_B])
    assert math.isclose(payload["score"], want.score, abs_tol=1e-9)
    assert payload["signature"].startswith("BLEU|nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp")
    assert payload["scale"] == "0-100"
    assert main(["bleu", str(hyp), str(ref_a), "--sentence"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(HYPS) + 1 and out[-1].startswith("BLEU|nrefs:1")
    first = sacrebleu.sentence_bleu(HYPS[0], [REFS_A[0]]).score
    assert out[0] == f"1\tsentence BLEU (0-100) = {first:.2f}"


def test_cli_bleu_on_token_ids(tmp_path, capsys):
    hyp = _write(tmp_path / "hyp.ids", ["1 2 3 4", "5 6 7"])
    ref = _write(tmp_path / "ref.ids", ["1 2 3 5", "5 6 7 8"])
    assert main(["bleu", str(hyp), str(ref), "--tokenize", "ids", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    want = sacrebleu.corpus_bleu(["1 2 3 4", "5 6 7"], [["1 2 3 5", "5 6 7 8"]], tokenize="none")
    assert math.isclose(payload["score"], want.score, abs_tol=1e-9)


def test_cli_bleu_errors(tmp_path, capsys):
    hyp = _write(tmp_path / "hyp.txt", ["a b", "c d"])
    short = _write(tmp_path / "short.txt", ["a b"])
    assert main(["bleu", str(hyp), str(short)]) == 2
    assert "short.txt has 1 lines" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # argparse checks that input files exist
        main(["bleu", str(hyp), str(tmp_path / "missing.txt")])
    assert refused.value.code == 2
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe a\n b\n")
    assert main(["bleu", str(hyp), str(bad)]) == 2
    assert "UTF-8" in capsys.readouterr().err
    ids = _write(tmp_path / "ids.txt", ["1 x", "2"])
    assert main(["bleu", str(ids), str(ids), "--tokenize", "ids"]) == 2
    assert "integer token ids" in capsys.readouterr().err


def test_cli_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert __version__ in capsys.readouterr().out
