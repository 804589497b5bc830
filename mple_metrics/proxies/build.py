"""Choosing a proxy target by name, and reading the text each method builds its targets from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data import Split, kd_dataset_dirs
from .axe import AXETarget
from .dynamic_kd import DynamicKDTarget, candidate_pairwise_bleu
from .glat import GLAT_VARIANTS, GLATInput
from .inputs import CMLMFixedInput, CMLMInput, InputProxy
from .kd import KDTarget, read_kd_split
from .oaxe import OaXETarget
from .raw import RawTarget
from .target import TargetProxy

TARGET_PROXIES: dict[str, type[TargetProxy]] = {
    cls.name: cls for cls in (RawTarget, KDTarget, AXETarget, OaXETarget, DynamicKDTarget)}
TARGET_NAMES: tuple[str, ...] = tuple(TARGET_PROXIES)
INPUT_NAMES: tuple[str, ...] = ("vanilla", "cmlm", "cmlm-fixed", *GLAT_VARIANTS)
#: Proxy targets a proxy input may be combined with (the paper does not combine AXE/OaXE with one).
TARGETS_WITH_INPUTS: frozenset[str] = frozenset({"raw", "kd", "dynamic-kd"})
#: Methods whose reference may come from KD data (``--kd DIR``) instead of the raw target.
KD_REFERENCE_TARGETS: frozenset[str] = frozenset({"kd", "axe", "oaxe"})


@dataclass
class TargetText:
    """Per sentence of a split: ``targets``, the reference the proxy target is built from (raw or
    a teacher's output); ``candidates`` (dynamic KD), the K teachers' outputs then the raw target."""

    targets: list[str]
    candidates: list[list[str]] | None = None


def expand_kd_dirs(kd: Sequence[str | Path]) -> list[Path]:
    """Every KD dataset directory that ``--kd`` names, in order (candidate directories expanded)."""
    return [member for entry in kd for member in kd_dataset_dirs(entry)]


def check_distinct_kd(directories: Sequence[str | Path]) -> None:
    """Refuse a KD directory named twice (also under another path): one teacher's outputs would
    count as two candidates, doubling their weight in dynamic KD's choice."""
    seen: dict[Path, str | Path] = {}
    for directory in directories:
        key = Path(directory).resolve()
        if key in seen:
            also = "" if str(seen[key]) == str(directory) else f" (also as {seen[key]})"
            raise ValueError(f"--kd {directory} is named twice{also}; each teacher's outputs can be only "
                             f"one candidate")
        seen[key] = directory


def check_target_options(target: str, kd: Sequence[str | Path]) -> None:
    """Clear errors for a method without the data it needs (before anything is loaded)."""
    if target not in TARGET_PROXIES:
        raise ValueError(f"--target must be one of {TARGET_NAMES}, got {target!r}")
    check_distinct_kd(kd)
    if target == "kd" and len(kd) != 1:
        raise ValueError(f"--target kd needs exactly one --kd DIR (a mple distill directory), got {len(kd)}")
    if target in ("axe", "oaxe") and len(kd) > 1:
        raise ValueError(f"--target {target} takes at most one --kd DIR (its reference), got {len(kd)}")
    if target == "raw" and kd:
        raise ValueError("--kd is for --target kd, dynamic-kd, axe or oaxe; --target raw trains on the "
                         "raw targets")
    if target == "dynamic-kd" and not kd:
        raise ValueError("--target dynamic-kd needs at least one --kd DIR (KD datasets or a candidate "
                         "directory from mple distill)")


def read_target_text(target: str, kd: Sequence[str | Path], split: Split) -> TargetText:
    """The text the method ``target`` builds its proxy targets from, for ``split``."""
    check_target_options(target, kd)
    dirs = expand_kd_dirs(kd)
    check_distinct_kd(dirs)  # a candidate directory and one of its members, say
    if target == "dynamic-kd":
        outputs = [read_kd_split(d, split) for d in dirs]
        candidates = [[out[i] for out in outputs] + [split.tgt[i]] for i in range(len(split))]
        return TargetText(list(split.tgt), candidates)
    if dirs and target in KD_REFERENCE_TARGETS:
        if target == "kd" and len(dirs) != 1:
            raise ValueError(f"--target kd needs one KD dataset; {kd[0]} holds {len(dirs)} candidates "
                             f"(name one of them, e.g. {dirs[0]})")
        return TargetText(read_kd_split(dirs[0], split))
    return TargetText(list(split.tgt))


def make_target_proxy(target: str, *, skip_penalty: float = 1.0, pred_length_scale: float = 1.0,
                      oaxe_pretrain_steps: int = 0, oaxe_truncate: float | None = None,
                      oaxe_truncate_base: str = "loss", gamma: Sequence[float] | None = None,
                      beta: float = 0.2, regularizer: bool = True,
                      candidates: dict[str, list[list[list[int]]]] | None = None,
                      pairwise: dict[str, np.ndarray] | None = None, max_positions: int = 256) -> TargetProxy:
    """The :class:`TargetProxy` of method ``target`` with its settings (``candidates`` and
    ``pairwise`` are dynamic KD's, per split)."""
    if target not in TARGET_PROXIES:
        raise ValueError(f"--target must be one of {TARGET_NAMES}, got {target!r}")
    if target == "axe":
        return AXETarget(skip_penalty, pred_length_scale, max_positions=max_positions)
    if target == "oaxe":
        return OaXETarget(oaxe_pretrain_steps, oaxe_truncate, oaxe_truncate_base)
    if target == "dynamic-kd":
        if candidates is None or pairwise is None:
            raise ValueError("dynamic KD needs its candidates and their pairwise BLEU")
        return DynamicKDTarget(candidates, pairwise, gamma, beta, regularizer, max_length=max_positions - 1)
    return TARGET_PROXIES[target]()


def make_input_proxy(name: str, *, cmlm_count: str = "fairseq", glat_anneal_steps: int = 0,
                     train_mask_head: bool = False) -> InputProxy:
    """The :class:`InputProxy` of method ``name`` (``vanilla``, ``cmlm``, ``cmlm-fixed``, ``glat``,
    ``glat-lev``, ``glat-pref``, ``glat-1-pref``)."""
    if name not in INPUT_NAMES:
        raise ValueError(f"--input must be one of {INPUT_NAMES}, got {name!r}")
    if name == "vanilla":
        return InputProxy()
    if name == "cmlm":
        return CMLMInput(cmlm_count, train_mask_head=train_mask_head)
    if name == "cmlm-fixed":
        return CMLMFixedInput(train_mask_head=train_mask_head)
    return GLATInput(name, anneal_steps=glat_anneal_steps, train_mask_head=train_mask_head)


#: The method options of a training config that ``make_target_proxy`` takes.
TARGET_OPTION_NAMES: tuple[str, ...] = ("skip_penalty", "pred_length_scale", "oaxe_pretrain_steps", "oaxe_truncate",
                                        "oaxe_truncate_base", "gamma", "beta", "regularizer")
#: The method options of a training config that ``make_input_proxy`` takes.
INPUT_OPTION_NAMES: tuple[str, ...] = ("cmlm_count", "glat_anneal_steps")


def proxies_from_settings(settings: Mapping[str, Any], target: str | None = None, input_name: str | None = None, *,
                          candidates: dict[str, list[list[list[int]]]] | None = None,
                          pairwise: dict[str, np.ndarray] | None = None, max_positions: int = 256,
                          train_mask_head: bool = False) -> tuple[TargetProxy, InputProxy]:
    """The target and input proxies of a training config (``TrainConfig.to_dict()`` or a
    checkpoint's ``train_config``; options it lacks take their defaults), for ``target`` and
    ``input_name`` (default: the config's own)."""
    target = target or settings.get("target", "raw")
    input_name = input_name or settings.get("input", "vanilla")
    target_options = {name: settings[name] for name in TARGET_OPTION_NAMES if name in settings}
    input_options = {name: settings[name] for name in INPUT_OPTION_NAMES if name in settings}
    return (make_target_proxy(target, candidates=candidates, pairwise=pairwise, max_positions=max_positions,
                              **target_options),
            make_input_proxy(input_name, train_mask_head=train_mask_head, **input_options))


def encode_candidates(texts: dict[str, list[list[str]]], tokenizer,
                      cache_dir: str | Path | None = None) -> tuple[dict[str, list[list[list[int]]]],
                                                                     dict[str, np.ndarray]]:
    """Dynamic KD's candidates per split: their token ids and their pairwise BLEU (cached in
    ``cache_dir``), from the candidates' text (``texts[split][sentence][k]``)."""
    ids = {split: [[tokenizer.encode(text) for text in row] for row in rows] for split, rows in texts.items()}
    pairwise = {split: candidate_pairwise_bleu(rows, cache_dir=cache_dir) for split, rows in texts.items()}
    return ids, pairwise
