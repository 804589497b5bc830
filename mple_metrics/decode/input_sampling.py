"""Input Sampling decoding (the paper's Sec. 4.3, footnote 8, Appendix E.6).

The input predictor P_θ(Z|X) has two parts: P_θ(z_i is masked | X), the NAT's own "is masked" head
on its vanilla-input decoder pass, and P_θ(t_i | X), a frozen, separately trained vanilla NAT (the
*predictor*).  Input Sampling draws each position's mask decision from the head, fills the revealed
positions with the predictor's argmax t̂_i (the paper: "it empirically leads to better
performance" than sampling t_i), decodes with that Z, and copies t̂ at revealed positions.

With ``samples`` N > 1 the N candidates of a sentence are decoded in one batch and the one with
the highest per-token joint log-probability log P_θ(Z|X) + log P_θ(T|Z, X) is kept, where
log P_θ(z_i|X) = log p_i^mask for a hidden position and log(1 − p_i^mask) + log P(t̂_i|X) for a
revealed one, and log P_θ(T|Z, X) sums the decoder's log-probabilities of its outputs at hidden
positions (revealed ones are copied: log 1 = 0).  Both terms are reported per token: the decoding
confidence of the paper's Figure 7.

A head that says "masked" everywhere reveals nothing, and Input Sampling then equals default
decoding (tested).  Draws use one generator per sentence seeded from (``seed``, the sentence's
index), so outputs do not depend on how sentences are batched.

Premises, read from the checkpoints' training configs (:func:`check_mask_head`,
:func:`predictor_warning`): the head learns P(z_i is masked | X) only from a proxy input's masks
(``--input`` other than vanilla, ``--mask-head-weight`` > 0); a NAT trained with the vanilla input
keeps a random head that reveals a large, arbitrary share of positions, so Input Sampling (and
L_input) of it is refused.  The predictor is meant to be a vanilla NAT; another one is warned about.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..models import NATModel, padding_mask
from ..models.scoring import at_least_float32
from .at_search import Hypotheses
from .nat_decode import argmax_in_chunks, clean_output


@dataclass
class InputSamplingResult:
    """Hypotheses plus the per-token confidence of each kept candidate (nats per position):
    ``input_logp`` mean log P_θ(Z|X), ``output_logp`` mean log P_θ(T|Z, X); ``revealed`` the
    fraction of positions revealed."""

    hypotheses: Hypotheses
    input_logp: Tensor
    output_logp: Tensor
    revealed: Tensor


def untrained_mask_head(train_config: Mapping[str, Any]) -> str | None:
    """Why the "is masked" head of a NAT trained with ``train_config`` (a checkpoint's
    ``train_config``) was never trained, or None when it was."""
    input_name = train_config.get("input", "vanilla")
    if input_name == "vanilla":
        return "was trained with --input vanilla"
    if not float(train_config.get("mask_head_weight", 1.0)) > 0:
        return f"was trained with --input {input_name} and --mask-head-weight 0"
    return None


def check_mask_head(train_config: Mapping[str, Any], checkpoint: str, option: str) -> None:
    """Refuse, with a ValueError naming ``option``, to sample inputs from the "is masked" head of
    ``checkpoint`` when its training never fitted that head (:func:`untrained_mask_head`)."""
    reason = untrained_mask_head(train_config)
    if reason is not None:
        raise ValueError(f"{option}: checkpoint {checkpoint} {reason}, so its \"is masked\" head was never "
                         f"trained and would reveal positions at random; use a NAT trained with a proxy "
                         f"input (--input cmlm, glat, ...)")


def predictor_warning(train_config: Mapping[str, Any], checkpoint: str, option: str) -> str | None:
    """A warning when the input predictor's frozen NAT ``checkpoint`` was not trained with the
    vanilla input (its input is then not the one the method's predictor is defined with), else None."""
    input_name = train_config.get("input", "vanilla")
    if input_name == "vanilla":
        return None
    return (f"{option} {checkpoint} was trained with --input {input_name}, not vanilla: the input "
            f"predictor's frozen NAT is meant to be a vanilla NAT, so the tokens it fills in at revealed "
            f"positions are not the method's")


def _generators(seed: int, indices: Tensor, device: torch.device) -> list[torch.Generator]:
    return [torch.Generator(device=device).manual_seed((int(seed) * 1_000_003 + int(i)) % (2 ** 63))
            for i in indices.tolist()]


@torch.no_grad()
def nat_input_sampling(model: NATModel, predictor: NATModel | None, src: Tensor, src_lengths: Tensor,
                       samples: int = 1, length_factor: float = 0.0, dedup: bool = False, seed: int = 0,
                       indices: Tensor | None = None, sample_inputs: bool = True,
                       reranker=None) -> InputSamplingResult:
    """Input Sampling decoding of a batch src (B, S) (module docstring).

    Args:
        model: the NAT (its length predictor and "is masked" head are used).
        predictor: the frozen vanilla NAT giving t̂ = argmax P(t_i|X) at the same lengths (same
            target vocabulary).
        samples: candidates per sentence (N).
        indices: (B,) sentence numbers that seed the draws (default 0..B-1).
        sample_inputs: False reveals nothing: default decoding, with its confidence terms
            (log P_θ(Z|X) of the full mask); ``predictor`` may then be None.
        reranker: an AT that chooses among the N candidates instead of the joint log-probability
            (noisy parallel decoding, :mod:`mple_metrics.decode.rerank`).
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if not sample_inputs:
        samples = 1
    elif predictor is None:
        raise ValueError("input sampling needs the input predictor's frozen NAT")
    if predictor is not None and predictor.config.tgt_vocab_size != model.config.tgt_vocab_size:
        raise ValueError(f"the input predictor's target vocabulary ({predictor.config.tgt_vocab_size}) differs "
                         f"from the model's ({model.config.tgt_vocab_size}); train both with one tokenizer")
    batch = src.shape[0]
    device = src.device
    indices = torch.arange(batch) if indices is None else indices
    enc = model.encode(src, src_lengths)
    lengths = model.predict_lengths(enc, beam=1, length_factor=length_factor)[0][:, 0]
    width = int(lengths.max())
    inside = ~padding_mask(lengths, width)
    hidden, _ = model.decode_hidden(enc, lengths, width)
    mask_logit = at_least_float32(model.mask_head(hidden).squeeze(-1))
    if predictor is not None and sample_inputs:
        # t̂ and log P(t̂|X), projected a chunk of positions at a time (no (B, L, V) tensor)
        pred_hidden, _ = predictor.decode_hidden(predictor.encode(src, src_lengths), lengths, width)
        guess_logp, guess = argmax_in_chunks(predictor, pred_hidden)
    else:
        guess_logp = torch.zeros(batch, width, device=device)
        guess = torch.zeros(batch, width, dtype=torch.long, device=device)
    uniforms = torch.ones(batch, samples, width, device=device)  # each sentence draws at its own length
    for b, (g, n) in enumerate(zip(_generators(seed, indices, device), lengths.tolist())):
        uniforms[b, :, :n] = torch.rand(samples, n, generator=g, device=device)
    p_reveal = torch.sigmoid(-mask_logit)  # 1 - P(masked)
    reveal = (uniforms < p_reveal.unsqueeze(1)) & inside.unsqueeze(1)  # (B, N, width)
    if not sample_inputs:
        reveal = torch.zeros_like(reveal)
    flat_reveal = reveal.reshape(batch * samples, width)
    repeat = torch.arange(batch, device=device).repeat_interleave(samples)
    flat_lengths = lengths[repeat]
    flat_guess = guess[repeat]
    out_hidden, _ = model.decode_hidden(enc.index_select(repeat), flat_lengths, width, input_tokens=flat_guess,
                                        reveal=flat_reveal)
    best_logp, tokens = argmax_in_chunks(model, out_hidden)
    tokens = torch.where(flat_reveal, flat_guess, tokens)  # the copy mechanism
    flat_inside = inside[repeat]
    n = flat_lengths.double()
    log_masked = F.logsigmoid(mask_logit)[repeat]
    log_revealed = F.logsigmoid(-mask_logit)[repeat] + guess_logp[repeat]
    input_logp = torch.where(flat_reveal, log_revealed, log_masked).masked_fill(~flat_inside, 0.0).double().sum(1) / n
    output_logp = best_logp.masked_fill(flat_reveal | ~flat_inside, 0.0).double().sum(1) / n
    if reranker is not None and samples > 1:
        from .rerank import at_rerank

        everything = [clean_output(row[:int(n)], dedup) for row, n in zip(tokens.tolist(), flat_lengths.tolist())]
        choice = at_rerank(reranker, src, src_lengths,
                           [everything[b * samples:(b + 1) * samples] for b in range(batch)]).to(device)
    else:
        choice = (input_logp + output_logp).view(batch, samples).argmax(dim=1)
    pick = torch.arange(batch, device=device) * samples + choice
    rows = tokens[pick].tolist()
    outputs = [clean_output(row[:int(length)], dedup) for row, length in zip(rows, lengths.tolist())]
    revealed = flat_reveal[pick].double().sum(1) / n[pick]
    return InputSamplingResult(Hypotheses(outputs, (input_logp + output_logp)[pick]), input_logp[pick],
                               output_logp[pick], revealed)


@torch.no_grad()
def decoding_confidence(model: NATModel, predictor: NATModel | None, sources: list[list[int]],
                        strategy: str = "default", samples: int = 1, seed: int = 0, max_tokens: int = 4096,
                        device: torch.device | str = "cpu") -> dict[str, float]:
    """The decoding confidence of Figure 7 over many sentences: the mean per position of
    log P_θ(Z|X) (``input_logp_nats``) and of log P_θ(T|Z, X) (``output_logp_nats``) of what
    ``strategy`` (``default``: nothing revealed; ``input-sampling``) decodes, and the fraction of
    positions revealed."""
    from ..data import pad_sequences, token_budget_batches

    lengths = [max(len(s), 1) for s in sources]
    totals = {"input": 0.0, "output": 0.0, "revealed": 0.0, "positions": 0.0}
    model.eval()
    for indices in token_budget_batches(lengths, lengths, max(max_tokens // max(samples, 1), max(lengths))):
        src, src_lengths = pad_sequences([sources[i] for i in indices])
        result = nat_input_sampling(model, predictor, src.to(device), src_lengths.to(device), samples,
                                    seed=seed, indices=torch.tensor(indices),
                                    sample_inputs=strategy == "input-sampling")
        n = model.predict_lengths(model.encode(src.to(device), src_lengths.to(device)))[0][:, 0].double().cpu()
        totals["input"] += float((result.input_logp.cpu() * n).sum())
        totals["output"] += float((result.output_logp.cpu() * n).sum())
        totals["revealed"] += float((result.revealed.cpu() * n).sum())
        totals["positions"] += float(n.sum())
    positions = max(totals["positions"], 1.0)
    return {"input_logp_nats": totals["input"] / positions, "output_logp_nats": totals["output"] / positions,
            "revealed_fraction": totals["revealed"] / positions, "strategy": strategy}
