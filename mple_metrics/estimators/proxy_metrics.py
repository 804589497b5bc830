"""The proxy-distribution metrics of a NAT checkpoint (the paper's Eq. 8–15, Tables 2 and 3):
L_NAT, L_input, L_target and L_MPLE, with corpus BLEU, bootstrap intervals and a signature.

For a NAT trained with a proxy (target T × input Z) and a split with several references:

* **L_NAT** (Eq. 9, 19): the model's NLL of the method's proxy target T (its ``proxy_target``:
  the reference, the KD output, AXE's T*, OaXE's permutation, dynamic KD's choice) given Z drawn
  from the method's Q(Z|T, X) (``samples`` draws averaged; revealed positions count with
  log-probability 0 — the copy mechanism of Appendix E.6 — and in the token count unless
  ``count="hidden-only"``), bits per position of T.
* **L_input** (Eq. 11, Appendix E.6): E_Q[−Σ_i log P_θ(z_i|X) + log Q(Z|T, X)] with the input
  predictor P_θ(z_i|X): the NAT's "is masked" head on its vanilla pass for the mask decision, a
  frozen vanilla NAT (``input_predictor``) for the revealed token; bits per position; 0 for the
  vanilla input.  Q is conditioned on T, the data's (or the proxy's) target, as in training.
* **L_target** (Eq. 14): −β · mean over sentences of the mean over references Y of sentence BLEU
  S(Y, T) (T as hypothesis, 0–100).  Y are the split's extra references by default (independent
  of the target T was built from; ``target_refs="all"`` adds it); sentences without one are left
  out of L_target (counted).  S is sacrebleu's sentence BLEU on detokenized text with 13a, by the
  kernels (``bleu_tokenize="ids"``: on token ids); T made of text (raw, KD, dynamic KD) is scored as
  written, T made of ids (AXE, OaXE) after detokenization with blanks removed.
* **L_MPLE** = L_NAT + L_input + L_target (Eq. 8).  Note the paper's units: a per-token NLL plus
  β × a BLEU score; we keep them.

Intervals: a paired bootstrap over sentences; the same resampled sentences for every term (the
same seed), so the L_MPLE interval is that of the sum.  At least 100 resamples; with one sentence
there is no interval (``ci95`` null), with fewer than 10 a warning says it is unreliable.  GLAT's
glancing ratio is its final one (0.3).  Draws of Z use generators seeded from (``seed``, the draw,
the sentences): repeatable.

Premises (refused, or warned about in the result's ``warnings``): the data default to the ones the
checkpoint was trained on (another dataset is warned about); a proxy input needs a NAT whose "is
masked" head was trained and a NAT as the input predictor (a non-vanilla one is warned about);
``--kd`` data must be read by the target; the share of ``<unk>`` among the evaluated targets is
reported (``unk_rate``) and warned about above 1%.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import __version__
from ..data import (BLANK_ID, BatchIterator, EncodedSplit, load_dataset, resolve_dataset_path, unk_rate,
                    unk_rate_warning)
from ..decode import DecodeOptions, translate_encoded
from ..decode.input_sampling import check_mask_head, predictor_warning
from ..metrics import BLEU
from ..models import NATModel, load_model, padding_mask
from ..models.checkpoint import evaluation_data
from ..models.scoring import at_least_float32
from ..proxies import (INPUT_NAMES, TARGET_NAMES, encode_candidates, input_generator, proxies_from_settings,
                       read_target_text, sequence_nll)
from ..train import bleu_scores, tokenizer_files
from .bootstrap import check_resamples, has_interval, interval_warning, paired_bootstrap, resampled_ratios

LN2 = math.log(2.0)
COUNT_MODES: tuple[str, ...] = ("all", "hidden-only")
TARGET_REF_MODES: tuple[str, ...] = ("extra", "all")
BLEU_TOKENIZE: tuple[str, ...] = ("13a", "ids")
#: How far (BLEU points) a BLEU may lie outside [0, 100] by float round-off, and be clamped.
BLEU_ROUND_OFF = 1e-9


def bleu_points(values: Any, what: str) -> np.ndarray:
    """``values`` (BLEU) clamped into [0, 100], where readers of the result expect them: a perfect
    match scores 100.00000000000004 by round-off (exp of a mean of logs).  A value further out is a
    bug in the BLEU computation, not input, and raises AssertionError naming ``what``."""
    array = np.asarray(values, dtype=np.float64)
    if not ((array >= -BLEU_ROUND_OFF) & (array <= 100.0 + BLEU_ROUND_OFF)).all():
        raise AssertionError(f"{what} outside [0, 100] beyond round-off: {array.min()!r} .. {array.max()!r}")
    return np.clip(array, 0.0, 100.0)


@dataclass(frozen=True)
class ProxyMetricSettings:
    """What to measure and how (module docstring).  ``target``/``input`` None: the checkpoint's
    own (with its options, e.g. the KD data, τ, γ)."""

    split: str = "valid"
    target: str | None = None
    input: str | None = None
    beta: float = 0.2
    samples: int = 4
    seed: int = 0
    count: str = "all"
    target_refs: str = "extra"
    bleu_tokenize: str = "13a"
    n_resamples: int = 1000
    max_tokens: int = 4096
    decode_bleu: bool = True

    def __post_init__(self) -> None:
        if self.target is not None and self.target not in TARGET_NAMES:
            raise ValueError(f"--target must be one of {TARGET_NAMES}, got {self.target!r}")
        if self.input is not None and self.input not in INPUT_NAMES:
            raise ValueError(f"--input must be one of {INPUT_NAMES}, got {self.input!r}")
        if not (isinstance(self.beta, (int, float)) and math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"--beta must be a finite number >= 0, got {self.beta!r}")
        if not isinstance(self.samples, int) or self.samples < 1:
            raise ValueError(f"--samples must be an integer >= 1, got {self.samples!r}")
        check_resamples(self.n_resamples, "--resamples")
        for name, choices in (("count", COUNT_MODES), ("target_refs", TARGET_REF_MODES),
                              ("bleu_tokenize", BLEU_TOKENIZE)):
            if getattr(self, name) not in choices:
                raise ValueError(f"--{name.replace('_', '-')} must be one of {choices}, got {getattr(self, name)!r}")


def l_target_references(target_refs: str, split: str, counts: np.ndarray) -> dict[str, Any]:
    """Which references L_target compared T with (``counts``: references per scored sentence), in
    words and numbers, so that a reader knows what the number rests on."""
    files = f"{split}.ref1..ref{int(counts.max())}" if counts.max() > 1 else f"{split}.ref1"
    used = (f"the split's extra references ({files}), not the target T was built from"
            if target_refs == "extra" else
            f"the split's target ({split}.tgt, the raw reference) and its extra references")
    return {"mode": target_refs, "used": used, "per_sentence_min": int(counts.min()),
            "per_sentence_mean": float(counts.mean()), "per_sentence_max": int(counts.max())}


def _method_label(target: str, input_name: str, config: dict[str, Any]) -> str:
    detail = {"axe": f"axe(tau={config.get('skip_penalty', 1.0):g})", "oaxe": "oaxe", "kd": "kd", "raw": "raw",
              "dynamic-kd": "dynamic-kd" if config.get("regularizer", True) else "dynamic-kd(no-reg)"}[target]
    return detail if input_name == "vanilla" else f"{input_name}+{detail}"


def check_kd_use(target: str | None, kd: object) -> None:
    """Refuse KD data (``--kd``) given for the raw target, which reads none (it would be ignored)."""
    if target == "raw" and kd:
        raise ValueError("--kd: the target scored is raw (the references), which reads no KD data; --kd is for "
                         "--target kd, dynamic-kd, axe or oaxe")


@torch.no_grad()
def proxy_metrics(nat: str | Path, data: str | Path | None, settings: ProxyMetricSettings = ProxyMetricSettings(),
                  input_predictor: str | Path | None = None, device: str | torch.device = "cpu",
                  progress=None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """L_NAT, L_input, L_target, L_MPLE (and BLEU) of the NAT checkpoint ``nat`` on ``data``'s
    split (None: the data the checkpoint was trained on); returns the result dict that
    ``mple estimate mple`` writes (module docstring).
    ``overrides``: method settings that replace the checkpoint's (e.g. ``{"skip_penalty": 5.0}``,
    ``{"kd": [DIR]}``), for scoring a checkpoint under another proxy."""
    model, tokenizers, payload = load_model(nat, device)
    if not isinstance(model, NATModel):
        raise ValueError(f"--nat {payload['path']} is an AT; the proxy metrics are a NAT's")
    trained = dict(payload.get("train_config") or {})
    config = {**trained, **(overrides or {})}
    target = settings.target or config.get("target", "raw")
    input_name = settings.input or config.get("input", "vanilla")
    check_kd_use(target, (overrides or {}).get("kd"))
    data, data_warning = evaluation_data(data, payload)
    warnings = [] if data_warning is None else [data_warning]
    kd = list(config.get("kd") or [])
    if target in ("kd", "dynamic-kd") and not kd:
        raise ValueError(f"--target {target}: the checkpoint records no KD data (--kd); it was trained on "
                         f"{config.get('target', 'raw')!r}")
    if target not in ("kd", "dynamic-kd", "axe", "oaxe"):
        kd = []
    predictor = None
    if input_name == "vanilla" and input_predictor is not None:
        # Nothing would use it: a vanilla input has no Z to predict, so L_input is 0 by definition.
        raise ValueError(f"--input-predictor: the proxy input scored is vanilla (no masked positions to predict), "
                         f"so L_input is 0 and Input Sampling does not apply; drop --input-predictor, or score a "
                         f"CMLM/GLAT input with --input")
    if input_name != "vanilla":
        check_mask_head(trained, payload["path"], f"--input {input_name}")
        if input_predictor is None:
            raise ValueError(f"--input {input_name}: L_input needs the input predictor's frozen vanilla NAT "
                             f"(--input-predictor CKPT)")
        predictor, predictor_tokenizers, predictor_payload = load_model(input_predictor, device)
        if not isinstance(predictor, NATModel):  # worded as mple evaluate words it
            raise ValueError(f"--input-predictor {predictor_payload['path']} is an AT; it must be a NAT")
        if tokenizer_files(predictor_tokenizers) != tokenizer_files(tokenizers):
            raise ValueError(f"--input-predictor {predictor_payload['path']} has another tokenizer than --nat; "
                             f"train both with one (--tokenizer)")
        warning = predictor_warning(predictor_payload.get("train_config") or {}, predictor_payload["path"],
                                    "--input-predictor")
        if warning is not None:
            warnings.append(warning)
    split = load_dataset(resolve_dataset_path(data), splits=(settings.split,))[settings.split]
    text = read_target_text(target, kd, split)
    limit = model.config.max_positions - 1
    src_ids = tokenizers.src.encode_batch(split.src)
    tgt_ids = tokenizers.tgt.encode_batch(text.targets)
    kept = [i for i in range(len(split)) if 0 < len(src_ids[i]) <= limit and 0 < len(tgt_ids[i]) <= limit]
    encoded = EncodedSplit([src_ids[i] for i in kept], [tgt_ids[i] for i in kept])
    unknown = unk_rate(encoded.tgt)
    warning = unk_rate_warning(unknown, f"the evaluated {target} targets of split {settings.split!r}")
    if warning is not None:
        warnings.append(warning)
    candidates = pairwise = None
    if text.candidates is not None:
        candidates, pairwise = encode_candidates({"eval": [text.candidates[i] for i in kept]}, tokenizers.tgt, kd[0])
    proxy, inputs = proxies_from_settings(config, target, input_name, candidates=candidates, pairwise=pairwise,
                                          max_positions=model.config.max_positions)
    # The state at the end of training: OaXE past its MLE pre-training, GLAT at its final ratio.
    proxy.update = inputs.update = 2 ** 62
    inputs.total_updates = 1
    draws = settings.samples if input_name != "vanilla" else 1
    n = len(kept)
    nll = np.zeros(n)
    l_input = np.zeros(n)
    positions = np.zeros(n)
    proxy_ids: list[list[int]] = [[] for _ in range(n)]
    chosen = np.full(n, -1)
    for batch in BatchIterator(encoded, max_tokens=settings.max_tokens, shuffle=False, drop_uneven=False):
        batch = proxy.prepare(model, batch.to(device), "eval")
        rows = batch.indices.cpu().numpy()
        if getattr(proxy, "last_choice", None) is not None:
            chosen[rows] = proxy.last_choice.cpu().numpy()
        if predictor is not None:
            enc = model.encode(batch.src, batch.src_lengths)
            hidden, _ = model.decode_hidden(enc, batch.tgt_lengths, batch.tgt.shape[1])
            mask_logit = at_least_float32(model.mask_head(hidden).squeeze(-1)).double()
            pred_logp = F.log_softmax(at_least_float32(predictor(batch.src, batch.src_lengths, batch.tgt_lengths).logits), -1)
            target_logp = pred_logp.gather(-1, batch.tgt.unsqueeze(-1)).squeeze(-1).double()
        for draw in range(draws):
            sampled = batch
            if input_name != "vanilla":
                sampled = inputs.sample(model, batch, input_generator(settings.seed, draw, batch.indices, device))
            out = proxy.forward(model, sampled)
            proxy_target = proxy.proxy_target(sampled, out)
            log_probs = out.log_probs
            reveal = getattr(sampled, "reveal", None)
            if reveal is not None:
                log_probs = log_probs.masked_fill(reveal[:, :log_probs.shape[1]].unsqueeze(-1), 0.0)
            nll[rows] += sequence_nll(log_probs, proxy_target, out.pred_lengths).cpu().numpy() / LN2 / draws
            if settings.count == "hidden-only" and reveal is not None:
                counted = sampled.hidden.sum(1).double()
            else:
                counted = out.pred_lengths.double()
            positions[rows] += counted.cpu().numpy() / draws
            if reveal is not None and predictor is not None:
                inside = ~padding_mask(batch.tgt_lengths, batch.tgt.shape[1])
                log_p_z = torch.where(reveal, F.logsigmoid(-mask_logit) + target_logp, F.logsigmoid(mask_logit))
                log_p_z = log_p_z.masked_fill(~inside, 0.0).sum(1)
                l_input[rows] += ((-log_p_z + sampled.log_q) / LN2).cpu().numpy() / draws
            if draw == 0:
                for row, ids, length in zip(rows, proxy_target.tolist(), out.pred_lengths.tolist()):
                    proxy_ids[row] = ids[:length]
        if progress is not None:
            progress(len(rows))
    positions = np.maximum(positions, 1e-12)
    # L_target: T against the references, each scored alone, then averaged per sentence.
    refs_rows = [list(split.refs[i]) for i in kept]
    refs_rows = [row[1:] if settings.target_refs == "extra" else row for row in refs_rows]
    if target in ("raw", "kd"):
        t_text = [text.targets[i] for i in kept]
    elif target == "dynamic-kd":
        t_text = [text.candidates[i][int(k)] for i, k in zip(kept, chosen)]
    else:
        t_text = [tokenizers.tgt.decode([t for t in ids if t != BLANK_ID]) for ids in proxy_ids]
    scored = [j for j, row in enumerate(refs_rows) if row]
    if not scored:
        raise ValueError(f"split {settings.split!r} has no extra references to measure L_target against; "
                         f"use --target-refs all")
    if settings.bleu_tokenize == "ids":
        metric = BLEU(tokenize="ids")
        hyps = [proxy_ids[j] if target in ("axe", "oaxe") else tokenizers.tgt.encode(t_text[j]) for j in scored]
        refs = [[tokenizers.tgt.encode(r) for r in refs_rows[j]] for j in scored]
    else:
        metric = BLEU(tokenize="13a")
        hyps = [t_text[j] for j in scored]
        refs = [refs_rows[j] for j in scored]
    flat_hyps = [h for h, row in zip(hyps, refs) for _ in row]
    flat_refs = [[r] for row in refs for r in row]
    scores = metric.batch_sentence_scores(flat_hyps, flat_refs).numpy()
    counts = np.array([len(row) for row in refs])
    sentence_bleu = np.add.reduceat(scores, np.concatenate([[0], np.cumsum(counts)[:-1]])) / counts
    sentence_bleu = bleu_points(sentence_bleu, "sentence BLEU of L_target")
    # Terms, intervals (the same resampled sentences for every term: one seed, one n).
    beta = float(settings.beta)
    idx = np.asarray(scored)
    l_nat_value = float(nll.sum() / positions.sum())
    l_input_value = float(l_input.sum() / positions.sum())
    l_target_value = float(0.0 - beta * sentence_bleu.mean())  # 0.0 - : +0.0 at beta 0, never -0.0
    seed, resamples = settings.seed, settings.n_resamples
    warning = interval_warning(len(idx))
    if warning is not None:
        warnings.append(warning)
    ci95: dict[str, list[float]] | None = None
    if has_interval(len(idx)):
        intervals = {
            "l_nat_bits_per_token": paired_bootstrap(nll[idx], weights=positions[idx], n_resamples=resamples,
                                                     seed=seed),
            "l_input_bits_per_token": paired_bootstrap(l_input[idx], weights=positions[idx], n_resamples=resamples,
                                                       seed=seed),
            "l_target": paired_bootstrap(-beta * sentence_bleu, n_resamples=resamples, seed=seed),
        }
        mple_stats = (resampled_ratios(nll[idx], positions[idx], resamples, seed)
                      + resampled_ratios(l_input[idx], positions[idx], resamples, seed)
                      + resampled_ratios(-beta * sentence_bleu, np.ones(len(idx)), resamples, seed))
        ci95 = {name: [interval.low, interval.high] for name, interval in intervals.items()}
        ci95["l_mple"] = [float(q) for q in np.quantile(mple_stats, [0.025, 0.975])]
    result: dict[str, Any] = {
        "method": _method_label(target, input_name, config), "target": target, "input": input_name,
        "checkpoint": payload["path"], "data": str(data), "split": settings.split,
        "l_nat_bits_per_token": l_nat_value, "l_input_bits_per_token": l_input_value,
        "l_target": l_target_value, "l_target_mean_bleu": float(sentence_bleu.mean()),
        "l_mple": l_nat_value + l_input_value + l_target_value, "beta": beta,
        "ci95": ci95, "n_sentences": n, "n_tokens": float(positions.sum()),
        "n_sentences_l_target": len(scored), "dropped_long_or_empty": len(split) - n,
        "l_target_references": l_target_references(settings.target_refs, settings.split, counts),
        "unk_rate": unknown.to_dict(),
        "units": {"l_nat": "bits per position of T", "l_input": "bits per position of T",
                  "l_target": "beta x sentence BLEU (0-100)"},
        "settings": asdict(settings), "proxy": {**proxy.settings(), **inputs.settings()},
    }
    if target == "dynamic-kd":
        result["dynamic_kd_choice_fraction"] = (np.bincount(chosen, minlength=proxy.num_candidates) / n).tolist()
    result["bleu_default"] = result["bleu_sample"] = None
    if settings.decode_bleu:
        all_refs = [list(split.refs[i]) for i in kept]
        hyps = translate_encoded(model, encoded.src, DecodeOptions(), max_tokens=settings.max_tokens, device=device)
        default = bleu_scores(hyps, all_refs, tokenizers)
        result["bleu_default"] = float(bleu_points(default["bleu"], "bleu_default"))
        result["bleu_signature"] = default["bleu_signature"]
        if predictor is not None:
            hyps = translate_encoded(model, encoded.src, DecodeOptions(strategy="input-sampling", seed=settings.seed),
                                     max_tokens=settings.max_tokens, device=device, input_predictor=predictor)
            result["bleu_sample"] = float(bleu_points(bleu_scores(hyps, all_refs, tokenizers)["bleu"], "bleu_sample"))
    result["signature"] = (f"MPLE|T:{result['method'] if input_name == 'vanilla' else _method_label(target, 'vanilla', config)}"
                           f"|Z:{input_name}|beta:{beta:g}|refs:{settings.target_refs}|tok:{settings.bleu_tokenize}"
                           f"|count:{settings.count}|samples:{draws}|split:{settings.split}|n:{n}|version:{__version__}")
    result["warnings"] = warnings
    return result


SCREEN_OPTION = {"axe": "skip_penalty"}


def parse_screen_targets(text: str) -> list[tuple[str, dict[str, Any]]]:
    """``"raw,kd,axe:1,axe:5,oaxe"`` -> [("raw", {}), ..., ("axe", {"skip_penalty": 1.0}), ...].

    A ValueError naming ``--targets`` and the item: an unknown target, a value where none is taken,
    a τ that is not a finite number >= 0, a target named twice (it would be scored and ranked twice)."""
    out: list[tuple[str, dict[str, Any]]] = []
    seen: dict[tuple[str, tuple], str] = {}
    for item in text.split(","):
        item = item.strip()
        name, _, value = item.partition(":")
        if name not in TARGET_NAMES:
            raise ValueError(f"--targets: {name!r} is not one of {TARGET_NAMES}")
        options: dict[str, Any] = {}
        if value:
            if name not in SCREEN_OPTION:
                raise ValueError(f"--targets: {name} takes no value (only axe:τ does), got {item!r}")
            try:
                number = float(value)
            except ValueError:
                raise ValueError(f"--targets: {item!r} needs a number after ':'") from None
            if not (math.isfinite(number) and number >= 0):
                raise ValueError(f"--targets: {item!r}: the AXE skip penalty τ must be a finite number >= 0")
            options[SCREEN_OPTION[name]] = number
        key = (name, tuple(sorted(options.items())))
        if key in seen:
            raise ValueError(f"--targets names {item!r} twice ({seen[key]!r} and {item!r}); name each target once")
        seen[key] = item
        out.append((name, options))
    if not out:
        raise ValueError("--targets names no proxy target")
    return out


def screen_targets(nat: str | Path, data: str | Path | None, targets: list[tuple[str, dict[str, Any]]],
                   settings: ProxyMetricSettings = ProxyMetricSettings(), kd: list[str] | None = None,
                   input_predictor: str | Path | None = None, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Screening (the E-step view of Sec. 3.3): one fixed checkpoint scored under several proxy
    targets, ranked by L_MPLE.  Not the same as training with each: the model is the one that was
    trained (with its own proxy); only Q varies.  BLEU is decoded once (it does not depend on Q)."""
    from dataclasses import replace

    if kd and not any(name in ("kd", "dynamic-kd") for name, _ in targets):
        raise ValueError("--kd: --targets names no kd or dynamic-kd target, the only ones that read it here")
    results = []
    for i, (name, options) in enumerate(targets):
        overrides = dict(options)
        if name in ("kd", "dynamic-kd"):
            if kd:
                overrides["kd"] = list(kd)
        else:  # AXE and OaXE align the raw reference here, whatever the checkpoint trained on
            overrides["kd"] = []
        one = proxy_metrics(nat, data, replace(settings, target=name, decode_bleu=settings.decode_bleu and i == 0),
                            input_predictor, device, overrides=overrides)
        results.append(one)
    for one in results[1:]:
        one["bleu_default"], one["bleu_sample"] = results[0]["bleu_default"], results[0]["bleu_sample"]
    ranking = sorted(range(len(results)), key=lambda k: results[k]["l_mple"])
    warnings = list(dict.fromkeys(w for one in results for w in one["warnings"]))
    return {"screening": True, "checkpoint": results[0]["checkpoint"], "results": results, "warnings": warnings,
            "ranking": [results[k]["method"] for k in ranking],
            "note": "one fixed checkpoint scored under each proxy target (theta fixed, Q varies); not the "
                    "same as training with each"}
