"""``mple data info|synth|known-c`` end to end."""

from __future__ import annotations

import json
import math

import sacrebleu

from mple_metrics.cli import main
from mple_metrics.data import load_dataset


def test_info_on_bundled(capsys, tmp_path):
    assert main(["data", "info", "--tokenizer", "word", "--json", str(tmp_path / "info.json")]) == 0
    captured = capsys.readouterr()
    for word in ("train", "valid", "test", "refs/sent", "vocabulary", "corpus BLEU among the references"):
        assert word in captured.out
    info = json.loads((tmp_path / "info.json").read_text())
    assert info["splits"]["valid"]["refs_per_sentence_min"] >= 4
    assert info["splits"]["train"]["sentences"] >= 20_000
    assert info["tokenizer"]["kind"] == "word" and info["tokenizer"]["src_vocab_size"] > 1000
    # The bundled references are independent translations: no near-copy warning.
    assert set(info["reference_bleu"]) == {"valid", "test"}
    assert info["reference_bleu"]["valid"]["streams"] == ["target", "ref1", "ref2", "ref3"]
    assert info["warnings"] == [] and "warning" not in captured.err


TARGETS = ["the cat sat on the mat by the door today", "a dog ran in the park with a red ball",
           "we will go to the market early in the morning", "she reads a long book every night before bed",
           "the river flows quietly past the old mill", "children play loud games in the green field",
           "my brother fixed the broken chair last week", "rain fell on the roof of the small house"]
# The target with one word changed: a revision, as one English Bible revises another.
NEAR_COPY = [t.rsplit(" ", 1)[0] + " " + w for t, w in
             zip(TARGETS, ["now", "ball", "day", "sleep", "mill", "yard", "month", "home"])]
# Other wording throughout: an independent translation.
INDEPENDENT = ["by the door a cat was sitting on a mat", "in the park a dog chased a red ball",
               "early tomorrow we are going to market", "each night she reads from a long book",
               "past the old mill the quiet river runs", "in a field of green the children shout at play",
               "last week the chair that broke was mended by my brother", "on the little house the rain came down"]


def _reference_dataset(root, ref1, ref2):
    root.mkdir()
    for split in ("train", "valid", "test"):
        (root / f"{split}.src").write_text("".join(f"s{i}\n" for i in range(len(TARGETS))))
        (root / f"{split}.tgt").write_text("\n".join(TARGETS) + "\n")
    (root / "valid.ref1").write_text("\n".join(ref1) + "\n")
    (root / "valid.ref2").write_text("\n".join(ref2) + "\n")
    return root


def _pair_bleu(a, b):
    return max(sacrebleu.corpus_bleu(a, [b]).score, sacrebleu.corpus_bleu(b, [a]).score)


def test_info_warns_when_a_reference_is_a_near_copy_of_the_target(capsys, tmp_path):
    # ref2 misses its reference for the last sentence: the matrix covers the sentences with every one.
    data = _reference_dataset(tmp_path / "near", NEAR_COPY, INDEPENDENT[:-1] + [""])
    assert main(["data", "info", str(data), "--tokenizer", "none", "--json", str(tmp_path / "near.json")]) == 0
    err = capsys.readouterr().err
    info = json.loads((tmp_path / "near.json").read_text())
    near = _pair_bleu(NEAR_COPY[:-1], TARGETS[:-1])
    assert near > 45 > _pair_bleu(INDEPENDENT[:-1], TARGETS[:-1])
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert warnings == [f"warning: valid: ref1 and the target have corpus BLEU {near:.1f} (above "
                        f"--near-copy-bleu 45): ref1 is a near-copy of the target, so multi-reference "
                        f"scores favour the target's wording"]
    assert info["warnings"] == [warnings[0][len("warning: "):]]
    matrix = info["reference_bleu"]["valid"]
    assert matrix["streams"] == ["target", "ref1", "ref2"] and matrix["sentences"] == len(TARGETS) - 1
    streams = [TARGETS[:-1], NEAR_COPY[:-1], INDEPENDENT[:-1]]
    for i, row in enumerate(matrix["bleu"]):
        for j, value in enumerate(row):
            expected = None if i == j else round(sacrebleu.corpus_bleu(streams[i], [streams[j]]).score, 2)
            assert value == expected, (i, j)
    assert set(info["reference_bleu"]) == {"valid"}  # train and test have no extra reference

    # The threshold is an option: above the pair's BLEU, no warning.
    assert main(["data", "info", str(data), "--tokenizer", "none", "--near-copy-bleu", f"{near + 0.1:.1f}"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_info_does_not_warn_for_independent_references(capsys, tmp_path):
    data = _reference_dataset(tmp_path / "independent", INDEPENDENT, [t.upper() for t in INDEPENDENT[::-1]])
    assert main(["data", "info", str(data), "--tokenizer", "none", "--json", str(tmp_path / "i.json")]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err
    info = json.loads((tmp_path / "i.json").read_text())
    assert info["warnings"] == [] and info["reference_bleu"]["valid"]["sentences"] == len(TARGETS)
    assert "corpus BLEU among the references (valid, 8 sentences" in captured.out


def test_known_c_writes_truth(capsys, tmp_path):
    out = tmp_path / "kc"
    assert main(["data", "known-c", "--kind", "kmodes", "--k", "2", "--m", "8", "--n-train", "200",
                 "--n-valid", "20", "--n-test", "20", "--out", str(out)]) == 0
    truth = json.loads((out / "truth.json").read_text())
    assert truth["c_bits_per_sentence"] == 7.0 and truth["c_bits_per_token"] == 7.0 / 8
    assert math.isclose(truth["c_nats_per_sentence"], 7 * math.log(2))
    assert len(load_dataset(out).train) == 200
    assert "7.000000 bits/sentence" in capsys.readouterr().out


def test_synth_and_errors(capsys, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for split in ("train", "valid", "test"):
        (src / f"{split}.src").write_text("a\nb\n")
        (src / f"{split}.tgt").write_text("the cat sat\non the mat today\n")
    assert main(["data", "synth", "b", "--from", str(src), "--out", str(tmp_path / "b")]) == 0
    assert load_dataset(tmp_path / "b").valid.tgt == ["the cat sat", "on the mat today"]
    (src / "test.tgt").write_text("only one line\n")
    assert main(["data", "info", str(src), "--tokenizer", "none"]) == 2
    assert "misaligned files" in capsys.readouterr().err
