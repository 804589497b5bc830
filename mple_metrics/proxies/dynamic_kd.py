"""``dynamic-kd``: dynamic knowledge distillation (the paper's Sec. 3.4, Appendix F).

For each source, the candidates Γ are the outputs of K AT teachers (``--kd DIR`` repeated, or a
candidate directory) and the raw target, last.  Each update the proxy target is chosen per
sentence as::

    T = argmin_k  L_NAT(Γ_k) + L'_target(Γ_k),   L'_target(T) = −β Σ_m γ_m S(Γ_m, T)    (Eq. 21)

* L_NAT(Γ_k): the current model's NLL of Γ_k per target token, in bits, with the vanilla (copy)
  input at Γ_k's length, computed without gradient and without dropout (eval mode) in one batched
  decoder pass over all candidates of the batch (the encoder runs once).  Per token and in bits so
  that the two terms have the scales of the paper's Table 2 (L_NAT about 1–3, β·BLEU about 5).
* S(Γ_m, T): sacrebleu's sentence BLEU (0–100, 13a tokenisation of the text, exponential smoothing,
  effective order) of T as hypothesis against Γ_m as the only reference; the sum runs over all
  candidates including T itself (S(T, T) = 100), as Eq. 21 is written.  The matrix of pairwise
  BLEUs is computed once per dataset with the pairwise BLEU kernel and cached (``.npy`` beside the
  KD data, keyed by the SHA-256 of the candidates' text).
* ``regularizer=False`` (``--no-regularizer``): T = argmin_k L_NAT(Γ_k), the ablation of Table 9.

Candidates that are empty or longer than the model's positions are never chosen (the raw target
of a training pair always fits: longer pairs are not trained on).  Ties go to the earlier
candidate.  Deterministic: no random numbers are drawn.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..atomic_write import atomic_write
from ..data import Batch
from ..metrics import BLEU
from ..models import NATModel
from ..models.scoring import at_least_float32
from ..ops import pairwise_bleu
from .target import TargetProxy, replace_targets

LN2 = math.log(2.0)
PAIRWISE_CACHE_DIR = ".pairwise_bleu"


def _candidates_sha256(texts: Sequence[Sequence[str]]) -> str:
    digest = hashlib.sha256()
    for row in texts:
        for text in row:
            digest.update(text.encode("utf-8") + b"\n")
        digest.update(b"\x00")
    return digest.hexdigest()


def candidate_pairwise_bleu(texts: Sequence[Sequence[str]], cache_dir: str | Path | None = None,
                            chunk: int = 4096) -> np.ndarray:
    """(N, K, K) float64 sentence BLEU: entry [n, i, j] scores candidate i (hypothesis) against
    candidate j (the only reference), sacrebleu-exact on the text with 13a.  With ``cache_dir``
    the matrix is read from / written to ``cache_dir/.pairwise_bleu/<sha256>.npy``."""
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / PAIRWISE_CACHE_DIR / f"{_candidates_sha256(texts)}.npy"
        if path.is_file():
            cached = np.load(path)
            if cached.shape == (len(texts), len(texts[0]) if texts else 0, len(texts[0]) if texts else 0):
                return cached
    bleu = BLEU(tokenize="13a")
    ids = [[bleu.token_ids(text) for text in row] for row in texts]
    k = len(texts[0]) if texts else 0
    out = np.zeros((len(texts), k, k), dtype=np.float64)
    for start in range(0, len(ids), chunk):
        out[start:start + chunk] = pairwise_bleu(ids[start:start + chunk]).numpy()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda handle: np.save(handle, out))
    return out


@torch.no_grad()
def candidate_nll_bits_per_token(model: NATModel, batch: Batch, candidates: list[list[list[int]]],
                                 max_length: int, rows_per_chunk: int = 256) -> Tensor:
    """(B, K) float64 NLL per token in bits of every candidate under ``model`` (vanilla input, at
    the candidate's length); +inf for empty candidates and those longer than ``max_length``.
    The encoder runs once per sentence; the model runs in whatever mode it is in."""
    batch_size, k = len(candidates), len(candidates[0])
    flat = [c for row in candidates for c in row]
    lengths = torch.tensor([len(c) for c in flat], dtype=torch.long, device=batch.src.device)
    usable = (lengths >= 1) & (lengths <= max_length)
    clipped = [c[:max_length] if c else [0] for c in flat]
    width = max(len(c) for c in clipped)
    target = torch.zeros((len(flat), width), dtype=torch.long, device=batch.src.device)
    for row, c in enumerate(clipped):
        target[row, :len(c)] = torch.as_tensor(c, dtype=torch.long)
    decode_lengths = lengths.clamp(min=1, max=max_length)
    enc = model.encode(batch.src, batch.src_lengths)
    enc = enc.index_select(torch.arange(batch_size, device=batch.src.device).repeat_interleave(k))
    hidden, pad = model.decode_hidden(enc, decode_lengths, width)
    flat_hidden, flat_target = hidden.reshape(-1, hidden.shape[-1]), target.reshape(-1)
    nll = torch.empty(flat_target.shape[0], dtype=torch.float64, device=hidden.device)
    for start in range(0, flat_hidden.shape[0], rows_per_chunk):
        logits = at_least_float32(model.output_logits(flat_hidden[start:start + rows_per_chunk]))
        nll[start:start + rows_per_chunk] = F.cross_entropy(
            logits, flat_target[start:start + rows_per_chunk], reduction="none").double()
    total = nll.view(len(flat), width).masked_fill(pad, 0.0).sum(1)
    per_token = total / decode_lengths.double() / LN2
    return per_token.masked_fill(~usable, math.inf).view(batch_size, k)


class DynamicKDTarget(TargetProxy):
    """Chooses T among each sentence's candidates before every update (module docstring).

    Args:
        candidates: per split name, per sentence (in the trainer's order of kept pairs), the K
            candidates' token ids, the raw target last.
        pairwise: per split name, the (N, K, K) pairwise BLEU of those candidates.
        gamma: K weights γ >= 0 (raw last); default all ones.
        beta: β (0.2).
        regularizer: include L'_target (False: the ablation, T = argmin L_NAT).
        max_length: longest candidate the model can score (its positions).
    """

    name = "dynamic-kd"

    def __init__(self, candidates: dict[str, list[list[list[int]]]], pairwise: dict[str, np.ndarray],
                 gamma: Sequence[float] | None = None, beta: float = 0.2, regularizer: bool = True,
                 max_length: int = 255) -> None:
        super().__init__()
        sizes = {len(row) for rows in candidates.values() for row in rows}
        if len(sizes) != 1:
            raise ValueError(f"every sentence needs the same number of candidates, got {sorted(sizes)}")
        self.num_candidates = sizes.pop()
        if gamma is None:
            gamma = [1.0] * self.num_candidates
        gamma = [float(g) for g in gamma]
        if len(gamma) != self.num_candidates:
            raise ValueError(f"--gamma needs one weight per candidate ({self.num_candidates}: the KD "
                             f"teachers in --kd order, then the raw target), got {len(gamma)}")
        # A negative weight would reward a candidate for being unlike Γ_m: Eq. 21 weighs agreement.
        if not all(math.isfinite(g) and g >= 0 for g in gamma):
            raise ValueError(f"--gamma weights must be finite numbers >= 0, got {gamma}")
        if not math.isfinite(beta) or beta < 0:
            raise ValueError(f"--beta must be a finite number >= 0, got {beta!r}")
        for split, rows in candidates.items():
            if split not in pairwise or pairwise[split].shape != (len(rows), self.num_candidates,
                                                                   self.num_candidates):
                raise ValueError(f"pairwise BLEU for split {split!r} must be ({len(rows)}, "
                                 f"{self.num_candidates}, {self.num_candidates})")
        self.candidates = candidates
        self.gamma = gamma
        self.beta = float(beta)
        self.regularizer = bool(regularizer)
        self.max_length = max_length
        # L'_target of every candidate of every sentence, fixed for the run: −β Σ_m γ_m S(Γ_m, Γ_k).
        weights = np.asarray(gamma, dtype=np.float64)
        self.target_term = {split: torch.from_numpy(-self.beta * (matrix @ weights))
                            for split, matrix in pairwise.items()}
        self.last_choice: Tensor | None = None  # (B,) candidate chosen for the last prepared batch
        self._train_counts = np.zeros(self.num_candidates, dtype=np.float64)

    def selection_scores(self, model: NATModel, batch: Batch, split: str) -> Tensor:
        """(B, K) float64 L_NAT + L'_target (or L_NAT alone) of each candidate; lower is chosen."""
        index = batch.indices.tolist()
        rows = [self.candidates[split][i] for i in index]
        was_training = model.training
        model.eval()
        try:
            scores = candidate_nll_bits_per_token(model, batch, rows, self.max_length)
        finally:
            model.train(was_training)
        if self.regularizer:
            scores = scores + self.target_term[split][batch.indices.cpu()].to(scores.device)
        return scores

    def prepare(self, model: NATModel, batch: Batch, split: str = "train") -> Batch:
        if split not in self.candidates:
            raise KeyError(f"dynamic KD has no candidates for split {split!r}")
        choice = self.selection_scores(model, batch, split).argmin(dim=1)
        self.last_choice = choice
        if split == "train":
            self._train_counts += np.bincount(choice.cpu().numpy(), minlength=self.num_candidates)
        rows = [self.candidates[split][i] for i in batch.indices.tolist()]
        return replace_targets(batch, [row[k] for row, k in zip(rows, choice.tolist())])

    def take_counts(self) -> list[float]:
        counts, self._train_counts = self._train_counts.tolist(), np.zeros(self.num_candidates)
        return counts

    def settings(self) -> dict:
        return {"target": self.name, "candidates": self.num_candidates, "gamma": self.gamma,
                "beta": self.beta, "regularizer": self.regularizer}

