"""Estimators: the conditional total correlation C (Theorem 1) and its paired bootstrap, readers
for per-sentence scores from other toolkits, and the proxy-distribution metrics L_NAT, L_input,
L_target, L_MPLE of a checkpoint (:func:`proxy_metrics`).  See docs/estimators.md.

Main entry points::

    from mple_metrics.estimators import conditional_tc, format_tc_table, write_tc_report
    estimate = conditional_tc(nat_nll_bits, at_nll_bits, n_tokens)   # per-sentence NLLs in bits
    print(format_tc_table(estimate))
    report = estimate_tc_by_training(TCTrainingSettings(data="DIR", out="OUT"))  # trains both models
    result = proxy_metrics("runs/nat-axe5", "bundled", ProxyMetricSettings(split="valid"))
"""

from __future__ import annotations

from .bootstrap import BOOTSTRAP_METHODS, BootstrapInterval, paired_bootstrap
from .correlation import (BetaSweep, CorrelationReport, MethodResult, PearsonInterval, beta_sweep,
                          bootstrap_pearson_interval, correlate, format_correlation_table, markdown_table,
                          parse_beta_grid, pearson_r, read_results, read_tc_json, recompute_with_beta)
from .proxy_metrics import ProxyMetricSettings, parse_screen_targets, proxy_metrics, screen_targets
from .scoring import ModelScorer, SentenceScorer, score_encoded
from .score_files import (SCORE_FORMATS, SCORE_SIGNS, SCORE_UNITS, ScoreFile, read_score_file,
                          read_scores)
from .total_correlation import (LENGTH_TERMS, PER_SENTENCE_COLUMNS, REPORT_FILES, TCEstimate,
                                c_histogram_png, combine_seeds, conditional_tc, format_tc_table,
                                per_sentence_tsv, tc_signature, write_tc_report)
from .tc_pipeline import (TCReport, estimate_tc_by_training, estimate_tc_from_scores, estimate_tc_with_models,
                          estimate_tc_with_scorers)
from .tc_training import TCTrainingSettings

__all__ = [
    "BOOTSTRAP_METHODS", "BootstrapInterval", "paired_bootstrap",
    "SCORE_FORMATS", "SCORE_SIGNS", "SCORE_UNITS", "ScoreFile", "read_score_file", "read_scores",
    "LENGTH_TERMS", "PER_SENTENCE_COLUMNS", "REPORT_FILES", "TCEstimate", "c_histogram_png",
    "combine_seeds", "conditional_tc", "format_tc_table", "per_sentence_tsv", "tc_signature",
    "write_tc_report",
    "ModelScorer", "SentenceScorer", "score_encoded",
    "ProxyMetricSettings", "parse_screen_targets", "proxy_metrics", "screen_targets",
    "BetaSweep", "CorrelationReport", "MethodResult", "PearsonInterval", "beta_sweep",
    "bootstrap_pearson_interval", "correlate", "format_correlation_table", "markdown_table",
    "parse_beta_grid", "pearson_r", "read_results", "read_tc_json", "recompute_with_beta",
    "TCReport", "TCTrainingSettings", "estimate_tc_by_training", "estimate_tc_from_scores",
    "estimate_tc_with_models", "estimate_tc_with_scorers",
]
