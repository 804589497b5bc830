"""``mple data info|synth|known-c`` end to end."""

from __future__ import annotations

import json
import math

from mple_metrics.cli import main
from mple_metrics.data import load_dataset


def test_info_on_bundled(capsys, tmp_path):
    assert main(["data", "info", "--tokenizer", "word", "--json", str(tmp_path / "info.json")]) == 0
    out = capsys.readouterr().out
    for word in ("train", "valid", "test", "refs/sent", "vocabulary"):
        assert word in out
    info = json.loads((tmp_path / "info.json").read_text())
    assert info["splits"]["valid"]["refs_per_sentence_min"] >= 2
    assert info["splits"]["train"]["sentences"] >= 20_000
    assert info["tokenizer"]["kind"] == "word" and info["tokenizer"]["src_vocab_size"] > 1000


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
