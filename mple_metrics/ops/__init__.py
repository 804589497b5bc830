"""Typed wrappers around the compiled ``torch.ops.mple`` kernels (CPU and CUDA).

Reference implementations used by the tests and benchmarks live in ``mple_metrics.ops.reference``.
"""

from .bleu import (
    STATS_FIELDS,
    bleu_from_stats,
    bleu_stats,
    corpus_bleu,
    pairwise_bleu,
    pairwise_bleu_stats,
    sentence_bleu,
)
from .axe import axe_align, axe_loss

__all__ = [
    "STATS_FIELDS",
    "bleu_from_stats",
    "bleu_stats",
    "corpus_bleu",
    "pairwise_bleu",
    "pairwise_bleu_stats",
    "sentence_bleu",
    "axe_align",
    "axe_loss",
]

# ---- OaXE: batched linear assignment and the OaXE loss
from .lap import linear_sum_assignment  # noqa: E402
from .oaxe import oaxe_align, oaxe_loss  # noqa: E402

__all__ += ["linear_sum_assignment", "oaxe_align", "oaxe_loss"]
