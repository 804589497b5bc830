"""`mple estimate mple`: each term against an independent computation on tiny trained models --
L_NAT against score_targets, L_target against sacrebleu, L_input against the exact KL by
enumerating every Z -- L_MPLE as the sum, screening against single runs, and errors.  Also the
premises it shares with `mple evaluate`: the checkpoint's own data by default, Input Sampling only
from a trained "is masked" head and a NAT predictor, intervals only where there are sentences to
resample, the <unk> rate."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sacrebleu
import torch
import torch.nn.functional as F

from mple_metrics.data import EncodedSplit, Split, collate, load_dataset, write_dataset
from mple_metrics.decode.input_sampling import check_mask_head
from mple_metrics.estimators.proxy_metrics import (ProxyMetricSettings, parse_screen_targets, proxy_metrics,
                                                   screen_targets)
from mple_metrics.models import load_model, score_targets
from mple_metrics.proxies import make_input_proxy
from mple_metrics.train import Trainer
from test_cli_errors import run_main
from test_train import WORDS, tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")


def _dataset(directory: Path, same_refs: bool = False, n_valid: int = 12, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)

    def pairs(n: int):
        src = [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 6)))) for _ in range(n)]
        tgt = [" ".join(reversed(s.split())) for s in src]
        refs = [[t, t if same_refs else " ".join(sorted(t.split()))] for t in tgt]
        return src, tgt, refs

    splits = {}
    for name, n in (("train", 64), ("valid", n_valid), ("test", 8)):
        src, tgt, refs = pairs(n)
        splits[name] = Split(name, src, tgt, refs)
    write_dataset(directory, splits)
    return directory


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mple")
    data = _dataset(root / "data")
    out = {"data": data}
    for name, extra in (("raw", {}), ("cmlm", {"input": "cmlm"}), ("axe", {"target": "axe", "skip_penalty": 5.0})):
        Trainer(tiny_config(data, root / name, model="nat", max_steps=12, valid_every_steps=12,
                            tokenizer=str(root / "raw" / "tokenizer") if name != "raw" else None, **extra)).train()
        out[name] = root / name
    Trainer(tiny_config(data, root / "at", model="at", max_steps=2, valid_every_steps=2,
                        tokenizer=str(root / "raw" / "tokenizer"))).train()
    out["at"] = root / "at"
    return out


SETTINGS = ProxyMetricSettings(n_resamples=100)


def test_l_nat_and_l_target_of_a_raw_model_match_independent_computations(runs):
    result = proxy_metrics(runs["raw"], runs["data"], SETTINGS)
    model, tokenizers, _ = load_model(runs["raw"])
    valid = load_dataset(runs["data"], splits=("valid",))["valid"]
    encoded = EncodedSplit(tokenizers.src.encode_batch(valid.src), tokenizers.tgt.encode_batch(valid.tgt))
    batch = collate(encoded, list(range(len(valid))))
    nll = score_targets(model, batch)  # bits per sentence at the gold length
    assert result["l_nat_bits_per_token"] == pytest.approx(float(nll.sum()) / batch.num_tokens, rel=1e-6)
    bleu = np.mean([sacrebleu.sentence_bleu(t, [refs[1]]).score for t, refs in zip(valid.tgt, valid.refs)])
    assert result["l_target"] == pytest.approx(-0.2 * bleu, abs=1e-9)
    assert result["l_input_bits_per_token"] == 0.0
    assert result["l_mple"] == pytest.approx(result["l_nat_bits_per_token"] + result["l_target"])
    assert result["ci95"]["l_mple"][0] <= result["l_mple"] <= result["ci95"]["l_mple"][1]
    assert result["signature"].startswith("MPLE|T:raw|Z:vanilla|beta:0.2|refs:extra")
    everything = proxy_metrics(runs["raw"], runs["data"], ProxyMetricSettings(n_resamples=100, target_refs="all",
                                                                             decode_bleu=False))
    both = np.mean([np.mean([sacrebleu.sentence_bleu(t, [r]).score for r in refs]) for t, refs in
                    zip(valid.tgt, valid.refs)])
    assert everything["l_target"] == pytest.approx(-0.2 * both, abs=1e-9)
    # Each result says which references its L_target rests on, counted independently here.
    extras = [len(refs) - 1 for refs in valid.refs]
    assert result["l_target_references"]["mode"] == "extra" and "valid.ref1" in result["l_target_references"]["used"]
    assert result["l_target_references"]["per_sentence_mean"] == pytest.approx(np.mean(extras))
    assert everything["l_target_references"]["mode"] == "all" and "valid.tgt" in everything["l_target_references"]["used"]
    assert everything["l_target_references"]["per_sentence_max"] == max(len(refs) for refs in valid.refs)


def test_l_target_of_a_target_equal_to_every_reference_is_minus_100_beta(tmp_path):
    data = _dataset(tmp_path / "data", same_refs=True)
    Trainer(tiny_config(data, tmp_path / "run", model="nat", max_steps=2, valid_every_steps=2)).train()
    result = proxy_metrics(tmp_path / "run", data, ProxyMetricSettings(n_resamples=100, beta=0.3, decode_bleu=False))
    assert result["l_target"] == pytest.approx(-30.0)


def _exact_l_input(runs) -> tuple[float, float]:
    """E_Q[-sum log P(z|X) + log Q(Z|T,X)] summed over sentences, by enumerating every Z, and the
    variance of the single-draw estimate (for the Monte Carlo tolerance); bits."""
    model, tokenizers, _ = load_model(runs["cmlm"])
    predictor, _, _ = load_model(runs["raw"])
    valid = load_dataset(runs["data"], splits=("valid",))["valid"]
    encoded = EncodedSplit(tokenizers.src.encode_batch(valid.src), tokenizers.tgt.encode_batch(valid.tgt))
    inputs = make_input_proxy("cmlm")
    total, variance = 0.0, 0.0
    with torch.no_grad():
        for i in range(len(valid)):
            batch = collate(encoded, [i])
            n = int(batch.tgt_lengths[0])
            enc = model.encode(batch.src, batch.src_lengths)
            hidden, _ = model.decode_hidden(enc, batch.tgt_lengths, n)
            logit = model.mask_head(hidden).squeeze(-1)[0].double()
            logp = F.log_softmax(predictor(batch.src, batch.src_lengths, batch.tgt_lengths).logits, -1)[0].double()
            target_logp = logp.gather(-1, batch.tgt[0, :n, None]).squeeze(-1)
            values, weights = [], []
            for bits in itertools.product([False, True], repeat=n):
                reveal = torch.tensor([bits])
                log_q = float(inputs.log_prob(reveal, batch.tgt_lengths))
                if log_q == -math.inf:
                    continue
                r = reveal[0]
                log_p = torch.where(r, F.logsigmoid(-logit) + target_logp, F.logsigmoid(logit)).sum()
                values.append((log_q - float(log_p)) / math.log(2))
                weights.append(math.exp(log_q))
            values, weights = np.array(values), np.array(weights)
            assert weights.sum() == pytest.approx(1.0)
            mean = float((weights * values).sum())
            total += mean
            variance += float((weights * (values - mean) ** 2).sum())
    return total, variance


def test_l_input_is_the_exact_kl_up_to_sampling_error_and_not_negative(runs):
    exact, variance = _exact_l_input(runs)
    assert exact >= 0.0  # a KL divergence
    samples = 200
    result = proxy_metrics(runs["cmlm"], runs["data"], ProxyMetricSettings(n_resamples=100, samples=samples),
                           input_predictor=runs["raw"])
    tokens = result["n_tokens"]
    estimate = result["l_input_bits_per_token"] * tokens
    assert abs(estimate - exact) <= 5 * math.sqrt(variance / samples) + 1e-9
    assert result["bleu_sample"] is not None and result["input"] == "cmlm"
    assert result["l_mple"] == pytest.approx(result["l_nat_bits_per_token"] + result["l_input_bits_per_token"]
                                             + result["l_target"])


def test_axe_scores_its_own_alignment_and_detokenized_target(runs):
    result = proxy_metrics(runs["axe"], runs["data"], SETTINGS)
    assert result["target"] == "axe" and result["method"] == "axe(tau=5)"
    assert result["proxy"]["skip_penalty"] == 5.0
    assert math.isfinite(result["l_nat_bits_per_token"]) and -20.0 <= result["l_target"] <= 0.0


def test_screening_reproduces_single_proxy_numbers(runs):
    report = screen_targets(runs["raw"], runs["data"], parse_screen_targets("raw,axe:1,oaxe"), SETTINGS)
    single = proxy_metrics(runs["raw"], runs["data"], ProxyMetricSettings(n_resamples=100, target="oaxe"))
    screened = report["results"][2]
    for key in ("l_nat_bits_per_token", "l_target", "l_mple"):
        assert screened[key] == pytest.approx(single[key], rel=1e-12)
    assert sorted(report["ranking"]) == sorted(["raw", "axe(tau=1)", "oaxe"])
    assert screened["bleu_default"] == single["bleu_default"]


def test_bad_settings_are_clear_errors(runs, tmp_path):
    with pytest.raises(ValueError, match="--samples must be"):
        ProxyMetricSettings(samples=0)
    with pytest.raises(ValueError, match="needs the input predictor"):
        proxy_metrics(runs["cmlm"], runs["data"], SETTINGS)
    with pytest.raises(ValueError, match="records no KD data"):
        proxy_metrics(runs["raw"], runs["data"], ProxyMetricSettings(target="kd"))
    with pytest.raises(ValueError, match="axe:τ"):
        parse_screen_targets("raw:3")
    result = subprocess.run([sys.executable, "-m", "mple_metrics.cli", "estimate", "mple", "--nat", str(runs["cmlm"]),
                             "--data", str(runs["data"]), "--out", str(tmp_path / "r.json")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "--input-predictor" in result.stderr


def test_command_writes_the_result_and_a_table(runs, tmp_path):
    out = tmp_path / "r.json"
    result = subprocess.run([sys.executable, "-m", "mple_metrics.cli", "estimate", "mple", "--nat", str(runs["raw"]),
                             "--data", str(runs["data"]), "--resamples", "100", "--out", str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    for key in ("l_nat_bits_per_token", "l_input_bits_per_token", "l_target", "l_mple", "bleu_default",
                "bleu_sample", "ci95", "beta", "target", "input", "n_sentences", "n_tokens", "signature"):
        assert key in report
    assert "bits/tok" in result.stdout and "L_MPLE" in result.stdout
    assert f"L_target against {report['l_target_references']['used']}" in result.stdout


# -- premises shared with mple evaluate -----------------------------------------------------------

def test_input_sampling_needs_a_trained_mask_head(runs, tmp_path, capsys):
    """The raw run was trained with the vanilla input: its "is masked" head is its random
    initialisation, so Input Sampling from it (evaluate) and L_input under it (estimate mple) are
    refused, naming the option and the recorded input."""
    code, _, err = run_main(["evaluate", "--ckpt", str(runs["raw"]), "--data", str(runs["data"]), "--quiet",
                          "--decode", "input-sampling", "--input-predictor-nat", str(runs["raw"])], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "--decode input-sampling" in err and "--input vanilla" in err
    code, _, err = run_main(["estimate", "mple", "--nat", str(runs["raw"]), "--data", str(runs["data"]), "--input",
                          "cmlm", "--input-predictor", str(runs["raw"]), "--out", str(tmp_path / "r.json")], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "--input cmlm" in err and "--input vanilla" in err
    with pytest.raises(ValueError, match="--mask-head-weight 0"):
        check_mask_head({"input": "glat", "mask_head_weight": 0.0}, "run", "--decode input-sampling")
    check_mask_head({"input": "glat", "mask_head_weight": 1.0}, "run", "--decode input-sampling")  # trained


def test_an_at_as_input_predictor_is_refused_as_evaluate_refuses_it(runs, tmp_path, capsys):
    code, _, evaluate_err = run_main(["evaluate", "--ckpt", str(runs["cmlm"]), "--data", str(runs["data"]), "--quiet",
                                   "--decode", "input-sampling", "--input-predictor-nat", str(runs["at"])], capsys)
    assert code == 2 and "is an AT; it must be a NAT" in evaluate_err
    code, _, err = run_main(["estimate", "mple", "--nat", str(runs["cmlm"]), "--data", str(runs["data"]),
                          "--input-predictor", str(runs["at"]), "--out", str(tmp_path / "r.json")], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "--input-predictor" in err and "is an AT; it must be a NAT" in err and "forward()" not in err


def test_a_non_vanilla_input_predictor_is_warned_about(runs, tmp_path, capsys):
    result = proxy_metrics(runs["cmlm"], runs["data"], ProxyMetricSettings(n_resamples=100, samples=1,
                                                                          decode_bleu=False),
                           input_predictor=runs["cmlm"])
    assert [w for w in result["warnings"] if w.startswith("--input-predictor") and "--input cmlm" in w], result
    vanilla = proxy_metrics(runs["cmlm"], runs["data"], ProxyMetricSettings(n_resamples=100, samples=1,
                                                                           decode_bleu=False),
                            input_predictor=runs["raw"])
    assert vanilla["warnings"] == []
    out = tmp_path / "e.json"
    code, _, err = run_main(["evaluate", "--ckpt", str(runs["cmlm"]), "--data", str(runs["data"]), "--quiet",
                          "--decode", "input-sampling", "--input-predictor-nat", str(runs["cmlm"]),
                          "--json", str(out)], capsys)
    assert code == 0, err
    assert "warning: --input-predictor-nat" in err and "--input cmlm" in err
    assert [w for w in json.loads(out.read_text())["warnings"] if "--input cmlm" in w]


def test_the_data_default_to_the_checkpoints_own(runs, tmp_path, capsys):
    """Without --data both commands measure the data the checkpoint was trained on (not the bundled
    corpus): the same numbers as with that --data given; another --data is warned about by name."""
    implicit, explicit = tmp_path / "implicit.json", tmp_path / "explicit.json"
    for argv, out in (([], implicit), (["--data", str(runs["data"])], explicit)):
        code, _, err = run_main(["estimate", "mple", "--nat", str(runs["raw"]), "--no-bleu", "--out", str(out), *argv],
                             capsys)
        assert code == 0 and "warning" not in err, err
    first, second = json.loads(implicit.read_text()), json.loads(explicit.read_text())
    assert first["data"] == str(runs["data"]) and first["warnings"] == []
    for key in ("l_nat_bits_per_token", "l_target", "l_mple", "n_sentences"):
        assert first[key] == second[key]
    for argv, out in (([], implicit), (["--data", str(runs["data"])], explicit)):
        code, _, err = run_main(["evaluate", "--ckpt", str(runs["raw"]), "--beam", "1", "--quiet", "--json", str(out),
                              *argv], capsys)
        assert code == 0 and "warning" not in err, err
    first, second = json.loads(implicit.read_text()), json.loads(explicit.read_text())
    assert first["data"] == str(runs["data"]) and first["warnings"] == []
    for key in ("bleu", "nll_bits_per_token", "sentences"):
        assert first[key] == second[key]
    other = _dataset(tmp_path / "other", seed=1)
    code, _, err = run_main(["evaluate", "--ckpt", str(runs["raw"]), "--data", str(other), "--beam", "1", "--quiet",
                          "--json", str(out)], capsys)
    assert code == 0 and f"warning: --data {other} is not the data" in err and str(runs["data"]) in err
    assert len(json.loads(out.read_text())["warnings"]) == 1
    result = proxy_metrics(runs["raw"], other, ProxyMetricSettings(n_resamples=100, decode_bleu=False))
    assert any(w.startswith(f"--data {other}") and str(runs["data"]) in w for w in result["warnings"])


def test_recorded_data_that_is_not_found_asks_for_data(runs, tmp_path, capsys):
    payload = torch.load(runs["raw"] / "best.pt", map_location="cpu", weights_only=True)
    payload["train_config"]["data"] = str(tmp_path / "moved")
    torch.save(payload, tmp_path / "moved.pt")
    with pytest.raises(ValueError, match=r"--data not given, .*moved\) is not found from here; give --data DIR"):
        proxy_metrics(tmp_path / "moved.pt", None, SETTINGS)
    code, _, err = run_main(["evaluate", "--ckpt", str(tmp_path / "moved.pt"), "--quiet"], capsys)
    assert code == 2 and "--data not given" in err and err.count("\n") == 1


def test_intervals_need_sentences_to_resample(runs, tmp_path):
    """One sentence: no interval (null), not a zero-width one; a few: a warning.  A split of 5
    sentences read through its own dataset (the data warning is expected beside it)."""
    one = proxy_metrics(runs["raw"], _dataset(tmp_path / "one", n_valid=1, seed=2),
                        ProxyMetricSettings(n_resamples=100, decode_bleu=False))
    assert one["n_sentences_l_target"] == 1 and one["ci95"] is None
    assert any("only 1 sentences" in w and "no interval" in w for w in one["warnings"])
    five = proxy_metrics(runs["raw"], _dataset(tmp_path / "five", n_valid=5, seed=3),
                         ProxyMetricSettings(n_resamples=100, decode_bleu=False))
    low, high = five["ci95"]["l_mple"]
    assert low < high and any("only 5 sentences" in w and "unreliable" in w for w in five["warnings"])
    with pytest.raises(ValueError, match="--resamples must be >= 100"):
        ProxyMetricSettings(n_resamples=1)


def test_unk_rate_of_the_evaluated_targets_is_reported_and_warned(runs, tmp_path):
    """Valid targets with words the training data never had: the reported <unk> rate is the share of
    those words (a word tokenizer maps each unseen word to one <unk>)."""
    directory = tmp_path / "unseen"
    base = load_dataset(_dataset(tmp_path / "base", seed=4))
    valid = base.valid
    targets = [t if i % 2 else f"{t} omega psi" for i, t in enumerate(valid.tgt)]
    refs = [[t, r[1]] for t, r in zip(targets, valid.refs)]
    write_dataset(directory, {"train": base.train, "test": base.test,
                              "valid": Split("valid", valid.src, targets, refs)})
    known = {w for t in load_dataset(runs["data"]).train.tgt for w in t.split()}
    words = [w for t in targets for w in t.split()]
    expected = sum(w not in known for w in words) / len(words)
    result = proxy_metrics(runs["raw"], directory, ProxyMetricSettings(n_resamples=100, decode_bleu=False))
    assert expected > 0.01 and result["unk_rate"]["rate"] == pytest.approx(expected)
    assert any("<unk>" in w for w in result["warnings"])
    clean = proxy_metrics(runs["raw"], runs["data"], SETTINGS)
    assert clean["unk_rate"]["rate"] == 0.0 and not any("<unk>" in w for w in clean["warnings"])


def test_kd_data_and_screened_targets_must_be_read(runs, tmp_path):
    with pytest.raises(ValueError, match="--kd: the target scored is raw"):
        proxy_metrics(runs["raw"], runs["data"], SETTINGS, overrides={"kd": [str(runs["data"])]})
    with pytest.raises(ValueError, match="--kd: --targets names no kd"):
        screen_targets(runs["raw"], runs["data"], parse_screen_targets("raw,oaxe"), SETTINGS, kd=[str(runs["data"])])
    with pytest.raises(ValueError, match=r"--targets names 'raw' twice"):
        parse_screen_targets("raw,oaxe,raw")
    with pytest.raises(ValueError, match=r"--targets names 'axe:5.0' twice \('axe:5'"):
        parse_screen_targets("axe:5,axe:5.0")
    assert len(parse_screen_targets("axe,axe:5,axe:1")) == 3  # distinct penalties are distinct targets
    for bad in ("axe:-1", "axe:nan", "axe:inf"):
        with pytest.raises(ValueError, match=f"--targets: '{bad}': the AXE skip penalty"):
            parse_screen_targets(bad)
