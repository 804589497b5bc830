"""`mple estimate mple`: each term against an independent computation on tiny trained models --
L_NAT against score_targets, L_target against sacrebleu, L_input against the exact KL by
enumerating every Z -- L_MPLE as the sum, screening against single runs, and errors."""

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
from mple_metrics.estimators.proxy_metrics import (ProxyMetricSettings, parse_screen_targets, proxy_metrics,
                                                   screen_targets)
from mple_metrics.models import load_model, score_targets
from mple_metrics.proxies import make_input_proxy
from mple_metrics.train import Trainer
from test_train import WORDS, tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")


def _dataset(directory: Path, same_refs: bool = False) -> Path:
    rng = np.random.default_rng(0)

    def pairs(n: int):
        src = [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 6)))) for _ in range(n)]
        tgt = [" ".join(reversed(s.split())) for s in src]
        refs = [[t, t if same_refs else " ".join(sorted(t.split()))] for t in tgt]
        return src, tgt, refs

    splits = {}
    for name, n in (("train", 64), ("valid", 8), ("test", 8)):
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
    return out


SETTINGS = ProxyMetricSettings(n_resamples=50)


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
    everything = proxy_metrics(runs["raw"], runs["data"], ProxyMetricSettings(n_resamples=50, target_refs="all",
                                                                             decode_bleu=False))
    both = np.mean([np.mean([sacrebleu.sentence_bleu(t, [r]).score for r in refs]) for t, refs in
                    zip(valid.tgt, valid.refs)])
    assert everything["l_target"] == pytest.approx(-0.2 * both, abs=1e-9)


def test_l_target_of_a_target_equal_to_every_reference_is_minus_100_beta(tmp_path):
    data = _dataset(tmp_path / "data", same_refs=True)
    Trainer(tiny_config(data, tmp_path / "run", model="nat", max_steps=2, valid_every_steps=2)).train()
    result = proxy_metrics(tmp_path / "run", data, ProxyMetricSettings(n_resamples=20, beta=0.3, decode_bleu=False))
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
    result = proxy_metrics(runs["cmlm"], runs["data"], ProxyMetricSettings(n_resamples=20, samples=samples),
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
    single = proxy_metrics(runs["raw"], runs["data"], ProxyMetricSettings(n_resamples=50, target="oaxe"))
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
                             "--data", str(runs["data"]), "--resamples", "20", "--out", str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    for key in ("l_nat_bits_per_token", "l_input_bits_per_token", "l_target", "l_mple", "bleu_default",
                "bleu_sample", "ci95", "beta", "target", "input", "n_sentences", "n_tokens", "signature"):
        assert key in report
    assert "bits/tok" in result.stdout and "L_MPLE" in result.stdout
