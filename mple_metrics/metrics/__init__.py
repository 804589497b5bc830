"""Metric objects in the sacrebleu style: collect statistics, then combine them into a score that
prints with a reproducibility signature."""

from .bleu import BLEU, BLEUScore, BLEUSignature

__all__ = ["BLEU", "BLEUScore", "BLEUSignature"]
