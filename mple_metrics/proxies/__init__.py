"""Proxy distributions Q(T|Z, X) for NAT training (the paper's Sec. 3, Appendices E, F).

Proxy targets -- how a method chooses the target T it maximises the likelihood of -- are
:class:`TargetProxy` subclasses, one module each: ``raw``, ``kd``, ``axe``, ``oaxe``,
``dynamic-kd``.  ``make_target_proxy(name, ...)`` builds one; the trainer uses it for the loss and
the estimators ask it for T (:meth:`TargetProxy.proxy_target`).  Proxy inputs -- how much of T
the decoder is shown -- are :class:`InputProxy` subclasses: ``vanilla``, ``cmlm``, ``cmlm-fixed``,
``glat``, ``glat-lev``, ``glat-pref``, ``glat-1-pref`` (``make_input_proxy``).  See docs/proxies.md.
"""

from __future__ import annotations

from .axe import AXETarget
from .build import (INPUT_NAMES, INPUT_OPTION_NAMES, TARGET_OPTION_NAMES, encode_candidates, proxies_from_settings, KD_REFERENCE_TARGETS, TARGET_NAMES, TARGET_PROXIES, TARGETS_WITH_INPUTS,
                    TargetText, check_target_options, expand_kd_dirs, make_input_proxy, make_target_proxy,
                    read_target_text)
from .dynamic_kd import DynamicKDTarget, candidate_nll_bits_per_token, candidate_pairwise_bleu
from .glat import GLAT_VARIANTS, GLATInput
from .inputs import CMLM_COUNTS, CMLMFixedInput, CMLMInput, InputBatch, InputProxy, input_generator
from .kd import KDTarget, read_kd_split
from .masking import (fixed_size_subset_log_prob, hamming_distance, levenshtein_distance, log_binomial,
                      log_elementary_symmetric, sample_fixed_size_subsets)
from .oaxe import TRUNCATE_BASES, OaXETarget
from .raw import RawTarget
from .target import ProxyOutputs, TargetProxy, replace_targets, sequence_nll, smoothing_term

__all__ = [
    "AXETarget", "DynamicKDTarget", "KDTarget", "KD_REFERENCE_TARGETS", "OaXETarget", "ProxyOutputs",
    "RawTarget", "TARGET_NAMES", "TARGET_PROXIES", "TRUNCATE_BASES", "TargetProxy", "TargetText",
    "candidate_nll_bits_per_token", "candidate_pairwise_bleu", "check_target_options", "expand_kd_dirs",
    "make_target_proxy", "read_kd_split", "read_target_text", "replace_targets", "sequence_nll",
    "smoothing_term",
    "CMLM_COUNTS", "CMLMFixedInput", "CMLMInput", "GLAT_VARIANTS", "GLATInput", "INPUT_NAMES", "InputBatch",
    "InputProxy", "INPUT_OPTION_NAMES", "TARGET_OPTION_NAMES", "TARGETS_WITH_INPUTS", "encode_candidates",
    "proxies_from_settings", "input_generator", "make_input_proxy",
    "fixed_size_subset_log_prob", "hamming_distance", "levenshtein_distance", "log_binomial",
    "log_elementary_symmetric", "sample_fixed_size_subsets",
]
