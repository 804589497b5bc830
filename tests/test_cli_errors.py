"""``mple`` on bad input: every subcommand refuses bad arguments with exit status 2 and one line on
stderr that names the argument, never a traceback (unless ``--debug``).  Also: paths that are not
regular files but can be read (``/dev/stdin``, FIFOs, process substitution, ``/dev/null``), a closed
output pipe, Ctrl-C, and the line rule (``\\n`` only) of ``mple bleu`` and ``mple translate --input -``.

Commands run in process through ``mple_metrics.cli.main`` except where a real process is needed."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
import traceback
from pathlib import Path

import pytest
import sacrebleu
import torch

import mple_metrics.commands.bleu as bleu_command
from mple_metrics import cli
from mple_metrics.cli import main
from mple_metrics.data import load_dataset
from mple_metrics.train import Trainer
from test_train import tiny_config, tiny_dataset

# Tiny models run fastest on one thread, above all on a loaded machine (no OpenMP spinning).
pytestmark = pytest.mark.usefixtures("one_thread")

HUGE_SEED = str(2**70)
#: A CUDA device this machine does not have.
ABSENT_GPU = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"


def _mple_result(k: int, **fields) -> str:
    """A result file of 'mple estimate mple' (the keys 'mple estimate correlate' reads) of method k."""
    return json.dumps({"method": f"m{k}", "target": "raw", "input": "vanilla", "l_nat_bits_per_token": 1.0 + k,
                       "l_input_bits_per_token": 0.0, "l_target": -2.0 * k, "l_target_mean_bleu": 10.0 * k,
                       "beta": 0.2, "l_mple": 1.0 - k, "bleu_default": 5.0 + 10 * k, "bleu_sample": None,
                       "split": "valid", **fields})


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """Paths the table refers to as {name}; ``ckpt`` is a run trained for one step."""
    root = tmp_path_factory.mktemp("cli")
    data = tiny_dataset(root / "data")
    Trainer(tiny_config(data, root / "run", max_steps=1, valid_every_steps=0, keep_best=1)).train()
    Trainer(tiny_config(data, root / "nat", model="nat", max_steps=1, valid_every_steps=0, keep_best=1)).train()
    (root / "dir").mkdir()
    texts = {
        "hyp.txt": "the cat sat on the mat\nit rained all day\n",
        "ref.txt": "the cat sat on the mat\nit rained all day long\n",
        "short.txt": "the cat sat on the mat\n",
        "h.ids": "1 2 3 4\n5 6 7\n",
        "r1.ids": "1 2 3 5\n5 6 7 8\n",
        "r2.ids": "1 2 3 4\n5 six 7\n",
        "src.txt": "\n".join(load_dataset(data).test.src) + "\n",
        # fairseq --score-reference output of two models that scored different targets
        "nat.fairseq": "T-0\tyes\nP-0\t-1.0 -0.5\n",
        "at.fairseq": "T-0\tyes please\nP-0\t-1.0 -0.5 -0.5\n",
        # result files for estimate correlate: three of valid, one of test, one with a BLEU past 100
        **{f"m{k}.json": _mple_result(k) for k in range(3)}, "m_test.json": _mple_result(3, split="test"),
        "m_bleu150.json": _mple_result(3, bleu_default=150.0),
        "tc_test.json": json.dumps({"c_bits_per_token": 1.5, "unit": "bits", "split": "test"}),
    }
    for name, text in texts.items():
        (root / name).write_text(text, encoding="utf-8")
    (root / "latin1.txt").write_bytes(b"caf\xe9\nna\xefve\n")
    paths = {name.replace(".", "_"): str(root / name) for name in texts}
    paths.update(tmp=str(root), data=str(data), ckpt=str(root / "run"), nat=str(root / "nat"), dir=str(root / "dir"),
                 file=str(root / "hyp.txt"), missing=str(root / "missing.txt"),
                 latin1=str(root / "latin1.txt"), new=str(root / "new"))
    return paths


def run_main(argv: list[str], capsys) -> tuple[int | str | None, str, str]:
    """(exit status, stdout, stderr) of ``mple argv``; an escaping exception is printed as the
    traceback a user would have seen."""
    try:
        code = main(argv)
    except SystemExit as exit:
        code = exit.code
    except BaseException:  # noqa: BLE001 -- the point is to see it
        traceback.print_exc()
        code = "raised"
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# (id, argv with {name} paths from the ``files`` fixture, regex the one-line message must match)
BAD_ARGUMENTS = [
    # mple bleu
    ("bleu-missing-hypothesis", ["bleu", "{missing}", "{ref_txt}"], r"hypothesis.*missing\.txt"),
    ("bleu-missing-reference", ["bleu", "{hyp_txt}", "{missing}"], r"references.*missing\.txt"),
    ("bleu-directory-reference", ["bleu", "{hyp_txt}", "{dir}"], r"references.*directory"),
    ("bleu-line-count", ["bleu", "{hyp_txt}", "{short_txt}"], r"short\.txt has 1 lines"),
    ("bleu-not-utf8", ["bleu", "{hyp_txt}", "{latin1}"], r"latin1\.txt.*UTF-8"),
    ("bleu-device-absent-gpu", ["bleu", "{hyp_txt}", "{ref_txt}", "--device", ABSENT_GPU], r"--device"),
    ("bleu-device-bogus", ["bleu", "{hyp_txt}", "{ref_txt}", "--device", "bogus"], r"--device.*bogus"),
    ("bleu-device-meta", ["bleu", "{hyp_txt}", "{ref_txt}", "--device", "meta"], r"--device.*meta"),
    ("bleu-tokenize-bogus", ["bleu", "{hyp_txt}", "{ref_txt}", "--tokenize", "bogus"], r"--tokenize"),
    ("bleu-ids-bad-token-names-its-file", ["bleu", "{h_ids}", "{r1_ids}", "{r2_ids}", "--tokenize", "ids"],
     r"r2\.ids:2: --tokenize ids"),
    # mple data info
    ("data-info-missing-dataset", ["data", "info", "{missing}", "--tokenizer", "none"], r"missing\.txt"),
    ("data-info-json-directory", ["data", "info", "{data}", "--tokenizer", "none", "--json", "{dir}"],
     r"--json.*directory"),
    ("data-info-json-under-a-file", ["data", "info", "{data}", "--tokenizer", "none", "--json",
                                     "{file}/info.json"], r"--json.*not a directory"),
    ("data-info-json-unwritable", ["data", "info", "{data}", "--tokenizer", "none", "--json", "/proc/mple-unwritable/info.json"],
     r"--json.*not writable"),
    ("data-info-vocab-size-0", ["data", "info", "{data}", "--vocab-size", "0"], r"--vocab-size.*>= 1"),
    ("data-info-vocab-size-word", ["data", "info", "{data}", "--tokenizer", "word", "--vocab-size", "-3"],
     r"--vocab-size"),
    ("data-info-tokenizer-bogus", ["data", "info", "{data}", "--tokenizer", "bogus"], r"--tokenizer"),
    ("data-info-near-copy-bleu-101", ["data", "info", "{data}", "--tokenizer", "none", "--near-copy-bleu", "101"],
     r"--near-copy-bleu.*\[0, 100\]"),
    ("data-info-near-copy-bleu-negative", ["data", "info", "{data}", "--near-copy-bleu", "-1"],
     r"argument --near-copy-bleu: must be .*>= 0"),
    # mple data synth
    ("data-synth-out-file", ["data", "synth", "a", "--from", "{data}", "--out", "{file}"], r"--out.*not a directory"),
    ("data-synth-out-unwritable", ["data", "synth", "a", "--from", "{data}", "--out", "/proc/mple-unwritable/synth"],
     r"--out.*not writable"),
    ("data-synth-huge-seed", ["data", "synth", "a", "--from", "{data}", "--out", "{new}", "--seed", HUGE_SEED],
     r"--seed.*\[0, 9223372036854775807\]"),
    ("data-synth-replace-prob-nan", ["data", "synth", "a", "--from", "{data}", "--out", "{new}",
                                     "--replace-prob", "nan"], r"--replace-prob"),
    ("data-synth-drop-prob-negative", ["data", "synth", "b", "--from", "{data}", "--out", "{new}",
                                       "--drop-prob", "-0.5"], r"--drop-prob"),
    ("data-synth-drop-prob-1", ["data", "synth", "b", "--from", "{data}", "--out", "{new}", "--drop-prob", "1"],
     r"--drop-prob.*below 1"),
    ("data-synth-missing-source", ["data", "synth", "a", "--from", "{missing}", "--out", "{new}"], r"missing\.txt"),
    ("data-synth-vocab-size-299", ["data", "synth", "a", "--from", "{data}", "--out", "{new}", "--vocab-size", "299"],
     r"--vocab-size.*>= 300"),
    ("data-synth-level-char", ["data", "synth", "a", "--from", "{data}", "--out", "{new}", "--level", "char"],
     r"--level"),
    ("data-synth-tokenizer-missing", ["data", "synth", "a", "--from", "{data}", "--out", "{new}", "--tokenizer",
                                      "{dir}"], r"--tokenizer.*no saved tokenizer"),
    ("data-synth-tokenizer-at-word-level", ["data", "synth", "a", "--from", "{data}", "--out", "{new}", "--level",
                                            "word", "--tokenizer", "{dir}"], r"--tokenizer.*--level token"),
    # mple data known-c
    ("data-known-c-out-file", ["data", "known-c", "--kind", "iid", "--n-train", "10", "--n-valid", "2",
                               "--n-test", "2", "--out", "{file}"], r"--out.*not a directory"),
    ("data-known-c-huge-seed", ["data", "known-c", "--kind", "iid", "--n-train", "10", "--n-valid", "2",
                                "--n-test", "2", "--out", "{new}", "--seed", HUGE_SEED], r"--seed"),
    ("data-known-c-m-0", ["data", "known-c", "--kind", "iid", "--m", "0", "--out", "{new}"], r"--m\b"),
    ("data-known-c-n-train-0", ["data", "known-c", "--kind", "iid", "--n-train", "0", "--out", "{new}"],
     r"--n-train"),
    ("data-known-c-concentration-inf", ["data", "known-c", "--kind", "mixture", "--concentration", "inf",
                                        "--out", "{new}"], r"--concentration"),
    ("data-known-c-kmodes-k-1", ["data", "known-c", "--kind", "kmodes", "--k", "1", "--n-train", "10",
                                 "--n-valid", "2", "--n-test", "2", "--out", "{new}"], r"k >= 2"),
    # mple data controlled
    ("data-controlled-kind-bogus", ["data", "controlled", "--kind", "bogus", "--out", "{new}"], r"--kind"),
    ("data-controlled-out-file", ["data", "controlled", "--kind", "none", "--out", "{file}"],
     r"--out.*not a directory"),
    ("data-controlled-train-0", ["data", "controlled", "--kind", "none", "--train", "0", "--out", "{new}"],
     r"--train"),
    ("data-controlled-refs-negative", ["data", "controlled", "--kind", "none", "--refs", "-1", "--out", "{new}"],
     r"--refs"),
    ("data-controlled-huge-seed", ["data", "controlled", "--kind", "none", "--seed", HUGE_SEED, "--out", "{new}"],
     r"--seed"),
    ("data-controlled-registers-1", ["data", "controlled", "--kind", "phrasing", "--registers", "1", "--out",
                                     "{new}"], r"--registers must be >= 2"),
    ("data-controlled-shared-fraction-1", ["data", "controlled", "--kind", "mixed", "--shared-fraction", "1",
                                           "--out", "{new}"], r"--shared-fraction must be in \[0, 1\)"),
    ("data-controlled-insert-prob-0", ["data", "controlled", "--kind", "insertion", "--insert-prob", "0",
                                       "--out", "{new}"], r"--insert-prob must be in \(0, 1\]"),
    ("data-controlled-swap-prob-1", ["data", "controlled", "--kind", "reordering", "--swap-prob", "1",
                                     "--out", "{new}"], r"--swap-prob must be in \(0, 1\)"),
    ("data-controlled-modifier-fraction-0", ["data", "controlled", "--kind", "reordering", "--modifier-fraction",
                                            "0", "--out", "{new}"], r"--modifier-fraction 0.0 .*0 modifiers"),
    ("data-controlled-swap-prob-nan", ["data", "controlled", "--kind", "reordering", "--swap-prob", "nan",
                                       "--out", "{new}"], r"--swap-prob"),
    ("data-controlled-clauses-inverted", ["data", "controlled", "--kind", "none", "--min-clause-words", "5",
                                          "--max-clause-words", "3", "--out", "{new}"],
     r"--min-clause-words \(5\).*--max-clause-words \(3\)"),
    ("data-controlled-too-many-targets", ["data", "controlled", "--kind", "mixed", "--registers", "5000",
                                          "--max-clause-words", "20", "--out", "{new}"],
     r"--max-clause-words or --registers"),
    ("data-no-action", ["data"], r"ACTION"),
    # mple demo
    ("demo-budget-negative", ["demo", "--out", "{new}", "--budget-minutes", "-1"], r"--budget-minutes"),
    ("demo-device-bogus", ["demo", "--out", "{new}", "--device", "bogus"], r"--device"),
    ("demo-smoke-budget", ["demo", "--smoke", "--budget-minutes", "5", "--out", "{new}", "--quiet"],
     r"--budget-minutes 5 does not apply to --smoke"),
    ("demo-out-unwritable", ["demo", "--out", "/proc"], r"--out.*/proc is not writable"),
    # mple train (only arguments refused before any training)
    ("train-huge-seed", ["train", "--data", "{data}", "--model", "at", "--out", "{new}", "--seed", HUGE_SEED],
     r"--seed.*\[0, 9223372036854775807\]"),
    ("train-device-bogus", ["train", "--data", "{data}", "--model", "at", "--out", "{new}", "--device", "bogus"],
     r"--device"),
    ("train-device-absent-gpu", ["train", "--data", "{data}", "--model", "at", "--out", "{new}",
                                 "--device", ABSENT_GPU], r"--device"),
    ("train-model-bogus", ["train", "--data", "{data}", "--model", "rnn", "--out", "{new}"], r"--model"),
    ("train-max-steps-not-a-number", ["train", "--data", "{data}", "--model", "at", "--out", "{new}",
                                      "--max-steps", "ten"], r"--max-steps"),
    ("train-vocab-size-0", ["train", "--data", "{data}", "--model", "at", "--out", "{new}", "--vocab-size", "0"],
     r"vocab.size"),
    ("train-min-updates-negative", ["train", "--data", "{data}", "--model", "at", "--out", "{new}",
                                    "--min-updates", "-1"], r"--min-updates must be an integer >= 0"),
    ("train-min-delta-negative", ["train", "--data", "{data}", "--model", "at", "--out", "{new}",
                                  "--min-delta", "-0.5"], r"--min-delta"),
    ("train-schedule-bogus", ["train", "--data", "{data}", "--model", "at", "--out", "{new}", "--schedule", "slow"],
     r"--schedule"),
    ("train-model-arg-without-value", ["train", "--data", "{data}", "--model", "at", "--out", "{new}",
                                       "--model-arg", "d_model"], r"--model-arg"),
    ("train-missing-out", ["train", "--data", "{data}", "--model", "at"], r"--out"),
    ("train-out-under-a-file", ["train", "--data", "{data}", "--model", "at", "--out", "{file}/run"],
     r"--out.*not a directory"),
    ("train-out-unwritable", ["train", "--data", "{data}", "--model", "at", "--out", "/proc/mple-unwritable/run"],
     r"--out.*not writable"),
    ("train-dynamic-kd-kd-twice", ["train", "--data", "{data}", "--model", "nat", "--target", "dynamic-kd",
                                   "--kd", "{dir}", "--kd", "{dir}", "--out", "{new}"], r"--kd .*dir is named twice"),
    ("train-dynamic-kd-negative-gamma", ["train", "--data", "{data}", "--model", "nat", "--target", "dynamic-kd",
                                         "--kd", "{dir}", "--gamma", "-1", "1", "--out", "{new}"],
     r"--gamma must be finite numbers >= 0"),
    # mple translate
    ("translate-missing-ckpt", ["translate", "--ckpt", "{missing}", "--input", "{src_txt}"], r"--ckpt"),
    ("translate-missing-input", ["translate", "--ckpt", "{ckpt}", "--input", "{missing}"], r"--input"),
    ("translate-directory-input", ["translate", "--ckpt", "{ckpt}", "--input", "{dir}"], r"--input.*directory"),
    ("translate-directory-output", ["translate", "--ckpt", "{ckpt}", "--input", "{src_txt}", "--output", "{dir}"],
     r"--output.*directory"),
    ("translate-output-unwritable", ["translate", "--ckpt", "{ckpt}", "--input", "{src_txt}", "--output",
                                     "/proc/mple-unwritable/out.txt"], r"--output.*not writable"),
    ("translate-length-penalty-nan", ["translate", "--ckpt", "{ckpt}", "--input", "{src_txt}",
                                      "--length-penalty", "nan", "--quiet"], r"--length-penalty"),
    ("translate-length-factor-nan", ["translate", "--ckpt", "{ckpt}", "--input", "{src_txt}",
                                     "--length-factor", "nan", "--quiet"], r"--length-factor"),
    ("translate-length-factor--1", ["translate", "--ckpt", "{ckpt}", "--input", "{src_txt}",
                                    "--length-factor", "-1", "--quiet"], r"--length-factor.*> -1"),
    ("translate-max-tokens-0", ["translate", "--ckpt", "{ckpt}", "--input", "{src_txt}", "--max-tokens", "0",
                                "--quiet"], r"--max-tokens"),
    ("translate-max-len-a-inf", ["translate", "--ckpt", "{ckpt}", "--input", "{src_txt}", "--max-len-a", "inf",
                                 "--quiet"], r"--max-len-a"),
    ("translate-beam-0", ["translate", "--ckpt", "{ckpt}", "--input", "{src_txt}", "--beam", "0"], r"--beam"),
    ("translate-beam-beyond-vocabulary", ["translate", "--ckpt", "{ckpt}", "--input", "{src_txt}",
                                          "--beam", "100000", "--quiet"], r"--beam 100000.*vocabulary"),
    ("translate-device-meta", ["translate", "--ckpt", "{ckpt}", "--input", "{src_txt}", "--device", "meta"],
     r"--device"),
    ("translate-huge-beam-number", ["translate", "--ckpt", "{ckpt}", "--input", "{src_txt}", "--beam", "1e3"],
     r"--beam"),
    # mple evaluate
    ("evaluate-missing-ckpt", ["evaluate", "--ckpt", "{missing}", "--data", "{data}"], r"--ckpt"),
    ("evaluate-json-directory", ["evaluate", "--ckpt", "{ckpt}", "--data", "{data}", "--json", "{dir}",
                                 "--quiet"], r"--json.*directory"),
    ("evaluate-hyps-directory", ["evaluate", "--ckpt", "{ckpt}", "--data", "{data}", "--hyps", "{dir}",
                                 "--quiet"], r"--hyps.*directory"),
    ("evaluate-hyps-unwritable", ["evaluate", "--ckpt", "{ckpt}", "--data", "{data}", "--hyps",
                                  "/proc/mple-unwritable/hyps.txt", "--quiet"], r"--hyps.*not writable"),
    ("evaluate-json-unwritable", ["evaluate", "--ckpt", "{ckpt}", "--data", "{data}", "--json", "/proc/out.json",
                                  "--quiet"], r"--json.*/proc is not writable"),
    ("evaluate-beam-beyond-vocabulary", ["evaluate", "--ckpt", "{ckpt}", "--data", "{data}", "--beam", "100000",
                                         "--quiet"], r"--beam 100000.*vocabulary"),
    ("evaluate-length-penalty-inf", ["evaluate", "--ckpt", "{ckpt}", "--data", "{data}", "--length-penalty",
                                     "inf", "--quiet"], r"--length-penalty"),
    ("evaluate-missing-split", ["evaluate", "--ckpt", "{ckpt}", "--data", "{data}", "--split", "dev",
                                "--quiet"], r"dev"),
    ("evaluate-samples-default-decoding", ["evaluate", "--ckpt", "{ckpt}", "--data", "{data}", "--samples", "4",
                                           "--quiet"], r"--samples 4 .*needs --decode input-sampling"),
    ("evaluate-sampling-seed-default-decoding", ["evaluate", "--ckpt", "{ckpt}", "--data", "{data}",
                                                 "--sampling-seed", "3", "--quiet"], r"--sampling-seed"),
    ("evaluate-input-sampling-vanilla-nat", ["evaluate", "--ckpt", "{nat}", "--data", "{data}", "--decode",
                                             "input-sampling", "--input-predictor-nat", "{nat}", "--quiet"],
     r"--decode input-sampling: .*--input vanilla"),
    # mple distill
    ("distill-out-file", ["distill", "--teacher", "{ckpt}", "--data", "{data}", "--out", "{file}", "--quiet"],
     r"--out.*not a directory"),
    ("distill-missing-teacher", ["distill", "--teacher", "{missing}", "--data", "{data}", "--out", "{new}"],
     r"--teacher"),
    ("distill-chunk-size-0", ["distill", "--teacher", "{ckpt}", "--data", "{data}", "--out", "{new}",
                              "--chunk-size", "0", "--quiet"], r"--chunk-size"),
    ("distill-max-tokens-negative", ["distill", "--teacher", "{ckpt}", "--data", "{data}", "--out", "{new}",
                                     "--max-tokens", "-5", "--quiet"], r"--max-tokens"),
    ("distill-out-unwritable", ["distill", "--teacher", "{ckpt}", "--data", "{data}", "--out", "/proc"],
     r"--out.*/proc is not writable"),
    # mple estimate tc
    ("estimate-no-estimator", ["estimate"], r"ESTIMATOR"),
    ("estimate-tc-no-data", ["estimate", "tc", "--out", "{new}"], r"--data is required"),
    ("estimate-tc-min-delta-negative", ["estimate", "tc", "--data", "{data}", "--out", "{new}", "--min-delta", "-1"],
     r"--min-delta"),
    ("estimate-tc-out-file", ["estimate", "tc", "--data", "{data}", "--out", "{file}"], r"--out.*not a directory"),
    ("estimate-tc-nat-without-at", ["estimate", "tc", "--data", "{data}", "--out", "{new}", "--nat", "{ckpt}"],
     r"--nat and --at go together"),
    ("estimate-tc-at-as-nat", ["estimate", "tc", "--data", "{data}", "--out", "{new}", "--nat", "{ckpt}",
                               "--at", "{ckpt}", "--quiet"], r"--nat must be a NAT checkpoint"),
    ("estimate-tc-models-and-scores", ["estimate", "tc", "--out", "{new}", "--nat", "{ckpt}", "--at", "{ckpt}",
                                       "--nat-scores", "{hyp_txt}", "--at-scores", "{hyp_txt}"], r"alternatives"),
    ("estimate-tc-missing-scores", ["estimate", "tc", "--out", "{new}", "--nat-scores", "{missing}",
                                    "--at-scores", "{hyp_txt}"], r"--nat-scores.*missing\.txt"),
    ("estimate-tc-scores-not-numbers", ["estimate", "tc", "--out", "{new}", "--nat-scores", "{hyp_txt}",
                                        "--at-scores", "{hyp_txt}"], r"hyp\.txt:1"),
    ("estimate-tc-length-terms-bogus", ["estimate", "tc", "--data", "{data}", "--out", "{new}",
                                        "--length-terms", "some"], r"--length-terms"),
    ("estimate-tc-seeds-0", ["estimate", "tc", "--data", "{data}", "--out", "{new}", "--seeds", "0"], r"--seeds"),
    ("estimate-tc-vocab-size-below-spm", ["estimate", "tc", "--data", "{data}", "--out", "{new}", "--vocab-size",
                                          "10"], r"--vocab-size must be >= 300 with --tokenizer-kind spm"),
    ("estimate-tc-seeds-with-models", ["estimate", "tc", "--data", "{data}", "--out", "{new}", "--nat", "{nat}",
                                       "--at", "{ckpt}", "--seeds", "2"],
     r"--seeds only applies when training.*--nat/--at give trained models"),
    ("estimate-tc-max-epochs-with-models", ["estimate", "tc", "--data", "{data}", "--out", "{new}", "--nat", "{nat}",
                                            "--at", "{ckpt}", "--max-epochs", "3"], r"--max-epochs only applies when training"),
    ("estimate-tc-tokens-with-training", ["estimate", "tc", "--data", "{data}", "--out", "{new}", "--tokens",
                                          "{hyp_txt}"], r"--tokens only applies to --nat-scores/--at-scores"),
    ("estimate-tc-scores-unit-with-training", ["estimate", "tc", "--data", "{data}", "--out", "{new}", "--scores-unit",
                                               "nats"], r"--scores-unit only applies to --nat-scores/--at-scores"),
    ("estimate-tc-scores-unit-with-models", ["estimate", "tc", "--data", "{data}", "--out", "{new}", "--nat", "{nat}",
                                             "--at", "{ckpt}", "--scores-unit", "nats"],
     r"--scores-unit only applies to --nat-scores/--at-scores files; --nat/--at"),
    ("estimate-tc-at-beam-with-scores", ["estimate", "tc", "--out", "{new}", "--nat-scores", "{nat_fairseq}",
                                         "--at-scores", "{nat_fairseq}", "--at-beam", "3"],
     r"--at-beam only applies when models are trained or scored here"),
    ("estimate-tc-tokenizer-kind-with-scores", ["estimate", "tc", "--out", "{new}", "--nat-scores", "{nat_fairseq}",
                                                "--at-scores", "{nat_fairseq}", "--tokenizer-kind", "word"],
     r"--tokenizer-kind only applies when training.*--nat-scores/--at-scores give scores computed elsewhere"),
    ("estimate-tc-at-beam-no-bleu", ["estimate", "tc", "--data", "{data}", "--out", "{new}", "--at-beam", "3",
                                     "--no-bleu"], r"--at-beam only applies to the decoding for ΔBLEU, which --no-bleu"),
    ("estimate-tc-split-without-data", ["estimate", "tc", "--out", "{new}", "--nat-scores", "{nat_fairseq}",
                                        "--at-scores", "{nat_fairseq}", "--split", "valid"], r"--split only applies with --data"),
    ("estimate-tc-fairseq-other-targets", ["estimate", "tc", "--out", "{new}", "--nat-scores", "{nat_fairseq}",
                                           "--at-scores", "{at_fairseq}"],
     r"--nat-scores \S*nat\.fairseq and --at-scores \S*at\.fairseq score different targets: sentence id 0"),
    ("estimate-mple-at", ["estimate", "mple", "--nat", "{ckpt}", "--data", "{data}", "--out", "{new}"], r"is an AT"),
    ("estimate-mple-predictor-for-vanilla", ["estimate", "mple", "--nat", "{nat}", "--data", "{data}", "--out", "{new}",
                                             "--input-predictor", "{nat}"], r"--input-predictor: .*vanilla"),
    ("estimate-mple-samples-0", ["estimate", "mple", "--nat", "{ckpt}", "--out", "{new}", "--samples", "0"],
     r"--samples"),
    ("estimate-mple-bad-screen", ["estimate", "mple", "--nat", "{ckpt}", "--out", "{new}", "--targets", "raw:3"],
     r"--targets"),
    ("estimate-mple-screen-twice", ["estimate", "mple", "--nat", "{ckpt}", "--out", "{new}", "--targets",
                                    "raw,axe:1,raw"], r"--targets names 'raw' twice"),
    ("estimate-mple-screen-negative-penalty", ["estimate", "mple", "--nat", "{ckpt}", "--out", "{new}", "--targets",
                                               "axe:-1"], r"--targets: 'axe:-1'"),
    ("estimate-mple-kd-with-raw-target", ["estimate", "mple", "--nat", "{ckpt}", "--out", "{new}", "--target", "raw",
                                          "--kd", "{data}"], r"--kd: the target scored is raw"),
    ("estimate-mple-resamples-99", ["estimate", "mple", "--nat", "{ckpt}", "--out", "{new}", "--resamples", "99"],
     r"--resamples: must be >= 100"),
    ("estimate-mple-input-on-vanilla-nat", ["estimate", "mple", "--nat", "{nat}", "--data", "{data}", "--input",
                                            "cmlm", "--input-predictor", "{nat}", "--out", "{new}"],
     r"--input cmlm: .*--input vanilla"),
    ("estimate-tc-resamples-1", ["estimate", "tc", "--data", "{data}", "--out", "{new}", "--resamples", "1"],
     r"--resamples: must be >= 100"),
    ("estimate-tc-lr-nan", ["estimate", "tc", "--data", "{data}", "--out", "{new}", "--lr", "nan"], r"--lr"),
    ("estimate-tc-out-unwritable", ["estimate", "tc", "--data", "{data}", "--out", "/proc/mple-unwritable/tc"],
     r"--out.*not writable"),
    ("estimate-mple-out-unwritable", ["estimate", "mple", "--nat", "{ckpt}", "--out", "/proc/mple-unwritable/m.json"],
     r"--out.*not writable"),
    # mple estimate correlate
    ("estimate-correlate-no-files", ["estimate", "correlate"], r"RESULT\.json"),
    ("estimate-correlate-two-files", ["estimate", "correlate", "{hyp_txt}", "{ref_txt}"], r"at least 3 result files"),
    ("estimate-correlate-missing-file", ["estimate", "correlate", "{hyp_txt}", "{ref_txt}", "{missing}"],
     r"RESULT\.json.*missing\.txt"),
    ("estimate-correlate-directory", ["estimate", "correlate", "{hyp_txt}", "{ref_txt}", "{dir}"],
     r"RESULT\.json.*directory"),
    ("estimate-correlate-not-json", ["estimate", "correlate", "{hyp_txt}", "{ref_txt}", "{short_txt}"],
     r"hyp\.txt: not valid JSON"),
    ("estimate-correlate-file-twice", ["estimate", "correlate", "{hyp_txt}", "{ref_txt}", "{hyp_txt}"],
     r"hyp\.txt is given twice"),
    ("estimate-correlate-bleu-bogus", ["estimate", "correlate", "{hyp_txt}", "{ref_txt}", "{short_txt}",
                                       "--bleu", "best"], r"--bleu"),
    ("estimate-correlate-beta-0", ["estimate", "correlate", "{hyp_txt}", "{ref_txt}", "{short_txt}", "--beta", "0"],
     r"--beta.*> 0"),
    ("estimate-correlate-sweep-reversed", ["estimate", "correlate", "{hyp_txt}", "{ref_txt}", "{short_txt}",
                                           "--beta-sweep", "0.5:0.1:0.05"], r"--beta-sweep.*B must be >= A"),
    ("estimate-correlate-sweep-two-fields", ["estimate", "correlate", "{hyp_txt}", "{ref_txt}", "{short_txt}",
                                             "--beta-sweep", "0.1:0.5"], r"--beta-sweep.*A:B:STEP"),
    ("estimate-correlate-sweep-step-0", ["estimate", "correlate", "{hyp_txt}", "{ref_txt}", "{short_txt}",
                                         "--beta-sweep", "0.1:0.5:0"], r"--beta-sweep.*STEP must be > 0"),
    ("estimate-correlate-bootstrap-0", ["estimate", "correlate", "{hyp_txt}", "{ref_txt}", "{short_txt}",
                                        "--bootstrap", "0"], r"--bootstrap"),
    ("estimate-correlate-bootstrap-1", ["estimate", "correlate", "{hyp_txt}", "{ref_txt}", "{short_txt}",
                                        "--bootstrap", "1"], r"--bootstrap: must be >= 100"),
    ("estimate-correlate-huge-seed", ["estimate", "correlate", "{hyp_txt}", "{ref_txt}", "{short_txt}",
                                      "--seed", HUGE_SEED], r"--seed"),
    ("estimate-correlate-out-directory", ["estimate", "correlate", "{hyp_txt}", "{ref_txt}", "{short_txt}",
                                          "--out", "{dir}"], r"--out.*directory"),
    ("estimate-correlate-plot-unwritable", ["estimate", "correlate", "{hyp_txt}", "{ref_txt}", "{short_txt}",
                                            "--plot", "/proc/mple-unwritable/r.png"], r"--plot.*not writable"),
    ("estimate-correlate-json-under-a-file", ["estimate", "correlate", "{hyp_txt}", "{ref_txt}", "{short_txt}",
                                              "--json", "{file}/out.json"], r"--json.*not a directory"),
    ("estimate-correlate-fig5-alone", ["estimate", "correlate", "{hyp_txt}", "{ref_txt}", "{short_txt}",
                                       "--fig5", "{hyp_txt}"], r"--fig5 TC\.json and --fig5-plot"),
    ("estimate-correlate-fig5-missing", ["estimate", "correlate", "{hyp_txt}", "{ref_txt}", "{short_txt}",
                                         "--fig5", "{missing}", "--fig5-plot", "{new}/fig5.png"], r"--fig5.*missing"),
    ("estimate-correlate-output-is-input", ["estimate", "correlate", "{hyp_txt}", "{ref_txt}", "{short_txt}",
                                            "--json", "{hyp_txt}"], r"--json.*one of the result files"),
    ("estimate-correlate-plot-txt", ["estimate", "correlate", "{hyp_txt}", "{ref_txt}", "{short_txt}",
                                     "--plot", "{new}/x.txt"], r"--plot: \S*x\.txt: the image format .*\.png"),
    ("estimate-correlate-fig5-plot-txt", ["estimate", "correlate", "{hyp_txt}", "{ref_txt}", "{short_txt}",
                                          "--fig5", "{hyp_txt}", "--fig5-plot", "{new}/f.txt"],
     r"--fig5-plot: \S*f\.txt: the image format"),
    ("estimate-correlate-sweep-negative", ["estimate", "correlate", "{hyp_txt}", "{ref_txt}", "{short_txt}",
                                           "--beta-sweep", "-0.1:0.5:0.1"], r"--beta-sweep: beta must be > 0"),
    ("estimate-correlate-mixed-split", ["estimate", "correlate", "{m0_json}", "{m1_json}", "{m_test_json}"],
     r"measured on different data: split 'valid' \(.*m0\.json, .*m1\.json\) vs 'test' .*--allow-mixed"),
    ("estimate-correlate-bleu-150", ["estimate", "correlate", "{m0_json}", "{m1_json}", "{m_bleu150_json}"],
     r"m_bleu150\.json: key 'bleu_default' must be a BLEU score in \[0, 100\]"),
    ("estimate-correlate-fig5-other-split", ["estimate", "correlate", "{m0_json}", "{m1_json}", "{m2_json}", "--fig5",
                                             "{tc_test_json}", "--fig5-plot", "{new}/f.png"],
     r"--fig5 \S*tc_test\.json is C of other data than the result files: split 'test'"),
    # mple proxies tune-gamma
    ("proxies-no-action", ["proxies"], r"ACTION"),
    ("proxies-tune-gamma-missing-kd", ["proxies", "tune-gamma", "--kd", "{missing}", "--out", "{new}/g.json"],
     r"--kd.*missing\.txt"),
    ("proxies-tune-gamma-not-kd", ["proxies", "tune-gamma", "--kd", "{data}", "--out", "{new}/g.json"],
     r"--kd.*not a KD dataset directory"),
    ("proxies-tune-gamma-out-unwritable", ["proxies", "tune-gamma", "--out", "/proc/mple-unwritable/g.json", "--kd", "{dir}"],
     r"--out.*not writable"),
    # mple landscape
    ("landscape-missing-ckpt", ["landscape", "--ckpt", "{missing}", "--out", "{new}"], r"--ckpt.*missing\.txt"),
    ("landscape-no-out", ["landscape", "--ckpt", "{ckpt}", "--ckpt", "{ckpt}"], r"--out is required"),
    ("landscape-no-ckpt", ["landscape", "--out", "{new}"], r"--ckpt is required"),
    ("landscape-one-ckpt", ["landscape", "--ckpt", "{ckpt}", "--out", "{new}"], r"--ckpt: give 3.*got 1"),
    ("landscape-random-two-ckpts", ["landscape", "--ckpt", "{ckpt}", "--ckpt", "{ckpt}", "--directions", "random",
                                    "--out", "{new}"], r"--directions random takes one --ckpt"),
    ("landscape-out-file", ["landscape", "--ckpt", "{ckpt}", "--directions", "random", "--out", "{file}"],
     r"--out.*not a directory"),
    ("landscape-out-unwritable", ["landscape", "--ckpt", "{ckpt}", "--directions", "random", "--out",
                                  "/proc/mple-unwritable/land"], r"--out.*not writable"),
    ("landscape-grid-bogus", ["landscape", "--ckpt", "{ckpt}", "--directions", "random", "--grid", "3by3",
                              "--out", "{new}"], r"--grid.*NXxNY"),
    ("landscape-grid-0", ["landscape", "--ckpt", "{ckpt}", "--directions", "random", "--grid", "0x3",
                          "--out", "{new}"], r"--grid.*>= 1"),
    ("landscape-grid-huge", ["landscape", "--ckpt", "{ckpt}", "--directions", "random", "--grid", "100000x100000",
                             "--out", "{new}"], r"--grid.*10,000,000,000 cells.*limit"),
    ("landscape-line-with-rows", ["landscape", "--ckpt", "{ckpt}", "--ckpt", "{ckpt}", "--grid", "5x5",
                                  "--out", "{new}"], r"--grid.*one axis"),
    ("landscape-margin-negative", ["landscape", "--ckpt", "{ckpt}", "--directions", "random", "--margin", "-1",
                                   "--out", "{new}"], r"--margin"),
    ("landscape-metrics-bogus", ["landscape", "--ckpt", "{ckpt}", "--directions", "random", "--metrics",
                                 "nll,loss", "--out", "{new}"], r"--metrics.*nll, bleu, l_nat"),
    ("landscape-proxy-bogus", ["landscape", "--ckpt", "{ckpt}", "--directions", "random", "--proxy", "dynamic-kd",
                               "--out", "{new}"], r"--proxy"),
    ("landscape-huge-seed", ["landscape", "--ckpt", "{ckpt}", "--directions", "random", "--seed", HUGE_SEED,
                             "--out", "{new}"], r"--seed"),
    ("landscape-input-sampling", ["landscape", "--ckpt", "{ckpt}", "--directions", "random", "--decode",
                                  "input-sampling", "--out", "{new}"], r"--decode input-sampling.*not"),
    ("landscape-same-checkpoint-thrice", ["landscape", "--ckpt", "{ckpt}", "--ckpt", "{ckpt}", "--ckpt", "{ckpt}",
                                          "--data", "{data}", "--out", "{new}", "--quiet"], r"direction .* is zero"),
    ("landscape-l-nat-on-an-at", ["landscape", "--ckpt", "{ckpt}", "--directions", "random", "--metrics", "l_nat",
                                  "--data", "{data}", "--out", "{new}", "--quiet"], r"l_nat.*AT"),
    ("landscape-proxy-kd-on-raw-data", ["landscape", "--ckpt", "{ckpt}", "--directions", "random", "--metrics",
                                        "nll,l_nat", "--proxy", "kd", "--data", "{data}", "--out", "{new}", "--quiet"],
     r"--proxy kd.*--data .*data is not a KD dataset"),
    ("landscape-proxy-kd-on-recorded-data", ["landscape", "--ckpt", "{ckpt}", "--directions", "random", "--metrics",
                                             "l_nat", "--proxy", "kd", "--out", "{new}", "--quiet"],
     r"--proxy kd.*--data .*data is not a KD dataset"),
    ("landscape-missing-split", ["landscape", "--ckpt", "{ckpt}", "--directions", "random", "--data", "{data}",
                                 "--split", "dev", "--out", "{new}", "--quiet"], r"dev"),
    # mple landscape plot
    ("landscape-plot-missing", ["landscape", "plot", "{missing}"], r"OUT_DIR.*missing\.txt"),
    ("landscape-plot-no-npz", ["landscape", "plot", "{dir}"], r"no landscape file"),
    ("landscape-plot-not-npz", ["landscape", "plot", "{file}"], r"hyp\.txt is not a readable mple_metrics landscape"),
    ("landscape-plot-levels-1", ["landscape", "plot", "{dir}", "--levels", "1"], r"--levels.*>= 2"),
]


@pytest.mark.parametrize("argv, pattern", [pytest.param(argv, pattern, id=name)
                                           for name, argv, pattern in BAD_ARGUMENTS])
def test_bad_argument_exits_2_with_one_line_naming_it(files, capsys, argv, pattern):
    code, out, err = run_main([part.format(**files) for part in argv], capsys)
    assert "Traceback" not in out + err, err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert re.match(r"mple [a-z-]+( [a-z-]+)?: error: ", lines[0]), lines[0]
    assert re.search(pattern, lines[0]), lines[0]
    assert not Path(files["new"]).exists()  # refused before anything was written


def test_every_subcommand_is_in_the_table():
    commands = {sub.prog.removeprefix("mple ") for sub in cli._subparsers(cli.build_parser())
                if sub.get_default("run") is not None}
    assert commands == {"bleu", "data info", "data synth", "data known-c", "data controlled", "demo", "train", "translate",
                        "distill", "evaluate", "estimate tc", "estimate mple", "estimate correlate",
                        "proxies tune-gamma", "landscape", "landscape plot"}
    assert commands <= {" ".join(argv[:2]) if argv[0] in ("data", "estimate", "proxies") or argv[1] == "plot"
                        else argv[0]
                        for _, argv, _ in BAD_ARGUMENTS}


# -- readable paths that are not regular files -------------------------------------------------

def _score(out: str) -> float:
    return json.loads(out)["score"]


def test_dev_null_is_an_empty_file(files, capsys):
    code, out, err = run_main(["bleu", "/dev/null", "/dev/null", "--json"], capsys)
    assert code == 0, err
    assert _score(out) == 0.0


def test_process_substitution_is_read(files, capsys):
    read_end, write_end = os.pipe()  # what bash's <(...) passes: /dev/fd/N, a pipe
    os.write(write_end, Path(files["ref_txt"]).read_bytes())
    os.close(write_end)
    try:
        code, out, err = run_main(["bleu", f"/dev/fd/{read_end}", files["ref_txt"], "--json"], capsys)
    finally:
        os.close(read_end)
    assert code == 0, err
    assert _score(out) == pytest.approx(100.0)


def test_fifo_is_read(files, capsys, tmp_path):
    fifo = tmp_path / "hyp.fifo"
    os.mkfifo(fifo)
    text = Path(files["ref_txt"]).read_bytes()

    def writer():
        with open(fifo, "wb") as handle:  # blocks until mple opens the FIFO
            handle.write(text)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    code, out, err = run_main(["bleu", str(fifo), files["ref_txt"], "--json"], capsys)
    if thread.is_alive():  # mple never opened it: release the writer
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
    thread.join(5)
    assert code == 0, err
    assert _score(out) == pytest.approx(100.0)


def test_dev_stdin_is_read(files):
    result = subprocess.run([sys.executable, "-m", "mple_metrics.cli", "bleu", "/dev/stdin", files["ref_txt"],
                             "--json"], input=Path(files["ref_txt"]).read_text(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert _score(result.stdout) == pytest.approx(100.0)


# -- closed pipe, Ctrl-C, internal errors, --debug ----------------------------------------------

def test_closed_pipe_exits_quietly(tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("the cat sat on the mat\n" * 20000)  # ~600 kB of sentence scores: more than a pipe holds
    process = subprocess.Popen([sys.executable, "-m", "mple_metrics.cli", "bleu", str(big), str(big),
                                "--sentence"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = process.stdout.readline()  # like `| head -1`
    process.stdout.close()
    err = process.stderr.read().decode()
    process.wait(timeout=120)
    assert first.startswith(b"1\tsentence BLEU")
    assert err == ""
    assert process.returncode == 1  # Python's convention for EPIPE


def test_interrupt_exits_130_quietly(files, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bleu_command, "BLEU", interrupted)
    code, out, err = run_main(["bleu", files["hyp_txt"], files["ref_txt"]], capsys)
    assert (code, out, err) == (130, "", "")


def test_internal_error_is_one_line_and_debug_shows_the_traceback(files, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise IndexError("list index out of range")

    monkeypatch.setattr(bleu_command, "BLEU", broken)
    code, _, err = run_main(["bleu", files["hyp_txt"], files["ref_txt"]], capsys)
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines() == [
        "mple bleu: internal error: IndexError: list index out of range (run 'mple --debug bleu ...' for the "
        "traceback)"]
    with pytest.raises(IndexError):
        main(["--debug", "bleu", files["hyp_txt"], files["ref_txt"]])


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_raises_bad_input_errors(files, where):
    argv = ["bleu", files["hyp_txt"], files["short_txt"]]
    argv = ["--debug", *argv] if where == "before" else [*argv, "--debug"]
    with pytest.raises(ValueError, match="short.txt has 1 lines"):
        main(argv)


# -- lines end at "\n" only -------------------------------------------------------------------

def test_bleu_splits_lines_at_newline_only(tmp_path, capsys):
    # U+2028 and form feed are str.splitlines() breaks but not line ends for sacrebleu.
    hyp = "the cat sat on the mat\u2028today\nit was a sunny day in may\nno more words here\n"
    ref = "the cat sat on the mat today\nit was a sunny\x0cday in may\nno more words here\n"
    (tmp_path / "hyp.txt").write_text(hyp, encoding="utf-8", newline="")
    (tmp_path / "ref.txt").write_text(ref, encoding="utf-8", newline="")
    code, out, err = run_main(["bleu", str(tmp_path / "hyp.txt"), str(tmp_path / "ref.txt"), "--json"], capsys)
    assert code == 0, err
    want = sacrebleu.corpus_bleu(hyp.split("\n")[:-1], [ref.split("\n")[:-1]])
    assert _score(out) == pytest.approx(want.score, abs=1e-9)


def test_translate_stdin_splits_lines_at_newline_only(files, capsys, monkeypatch):
    words = load_dataset(files["data"]).test.src
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{words[0]}\u2028{words[1]}\r\n{words[2]}\x0c{words[3]}\n"))
    code, out, err = run_main(["translate", "--ckpt", files["ckpt"], "--input", "-", "--beam", "1", "--quiet"],
                              capsys)
    assert code == 0, err
    assert len(out.split("\n")) == 3 and out.endswith("\n")  # two translations
