"""The demo's report: terminal tables as each step finishes, ``report.md`` and ``report.json``.

Every number comes from a step's result (``results/<step>.json``); the comparison with the paper is
computed from them (:func:`findings`), never written by hand, so the paragraphs say what this run
measured, whichever way it went.  A finding is "reproduced" only where the 95% intervals support the
paper's claim, "not reproduced" only where they contradict it, "undecided" otherwise; the smoke
mode states none.
"""

from __future__ import annotations

import json
import math
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np

from . import paper_numbers as paper
from .controlled import ABSOLUTE_TOLERANCE, RELATIVE_TOLERANCE

#: Results of the controlled benchmark's steps are kept under this prefix (``controlled_table1``, ...).
CONTROLLED_PREFIX = "controlled_"
UNITS = "C, L_NAT and L_input in bits per target token; L_target = −β × mean sentence BLEU (β = 0.2); BLEU 0–100"


def _f(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def _ci(pair: Any, digits: int = 2) -> str:
    if not pair or None in pair:
        return ""
    return f" [{pair[0]:.{digits}f}, {pair[1]:.{digits}f}]"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- tables
def table1_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["dataset", "C (bits/token) [95% CI]", "converged", "BLEU_AT", "BLEU_NAT", "ΔBLEU"]
    rows = [[r["dataset"], _f(r["c_bits_per_token"]) + _ci(r["ci95_bits_per_token"]),
             "yes" if r.get("converged") else "no", _f(r.get("bleu_at")), _f(r.get("bleu_nat")),
             _f(r.get("delta_bleu"))] for r in result["rows"]]
    return header, rows


def controlled_table1_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Table 1 of the controlled benchmark: the exact C beside Ĉ, and each model's NLL above its floor."""
    header = ["dataset", "exact C", "Ĉ [95% CI]", "recovered", "converged", "NAT − floor", "AT − floor",
              "BLEU_AT", "BLEU_NAT"]
    rows = [[r["dataset"], _f(r.get("c_true_bits_per_token"), 3),
             _f(r["c_bits_per_token"], 3) + _ci(r["ci95_bits_per_token"], 3), "yes" if r.get("recovers") else "no",
             "yes" if r.get("converged") else "no", _f(r.get("nat_above_floor_bits_per_token"), 3),
             _f(r.get("at_above_floor_bits_per_token"), 3), _f(r.get("bleu_at")), _f(r.get("bleu_nat"))]
            for r in result["rows"]]
    return header, rows


def _metrics_rows(results: list[dict[str, Any]], with_input: bool) -> tuple[list[str], list[list[str]]]:
    header = ["method"] + (["L_input"] if with_input else []) + ["L_NAT [95% CI]", "L_target", "L_MPLE [95% CI]"]
    header += ["BLEU (sample)", "BLEU (default)"] if with_input else ["BLEU"]
    rows = []
    for r in results:
        ci = r.get("ci95", {})
        row = [r["method"]]
        if with_input:
            row.append(_f(r["l_input_bits_per_token"]))
        row += [_f(r["l_nat_bits_per_token"]) + _ci(ci.get("l_nat_bits_per_token")), _f(r["l_target"]),
                _f(r["l_mple"]) + _ci(ci.get("l_mple"))]
        row += [_f(r.get("bleu_sample")), _f(r.get("bleu_default"))] if with_input else [_f(r.get("bleu_default"))]
        rows.append(row)
    return header, rows


def _read_metrics(out: Path, names: list[str]) -> list[dict[str, Any]]:
    return [json.loads((out / "metrics" / f"{n}.json").read_text(encoding="utf-8")) for n in names]


def r_text(correlation: dict[str, Any]) -> str:
    """Pearson's r with its interval, or why it is undefined."""
    if correlation.get("pearson_r") is None:
        return f"undefined ({correlation.get('undefined')})"
    i = correlation["interval"]
    return f"{correlation['pearson_r']:.3f} [{i['low']:.3f}, {i['high']:.3f}]"


def terminal_table(step: str, result: dict[str, Any], out: Path) -> str:
    """The short table a person reads on the terminal when ``step`` is done."""
    if step == CONTROLLED_PREFIX + "table1":
        return ("Table 1, controlled benchmark (test split; bits/token; the exact C and each model's NLL floor "
                "computed by enumeration)\n" + _text_table(*controlled_table1_rows(result)))
    if step.startswith(CONTROLLED_PREFIX):
        step = step[len(CONTROLLED_PREFIX):]
    if step == "table1":
        return "Table 1 (test split; " + UNITS.split(";")[0] + ")\n" + _text_table(*table1_rows(result))
    if step == "table2":
        rows = _read_metrics(out, result["methods"])
        c = result["correlation"]
        return ("Table 2 (test split; " + UNITS + ")\n" + _text_table(*_metrics_rows(rows, False))
                + f"\nPearson r(L_MPLE, BLEU) = {r_text(c)} over {c['n_methods']} methods (paper: {paper.TABLE2_R})")
    if step == "figure1":
        return "Figure 1 (valid split)\n" + _text_table(*figure1_rows(result))
    if step == "table3":
        rows = _read_metrics(out, result["methods"])
        s, d = result["correlation_sample"], result["correlation_default"]
        return ("Table 3 (test split, KD targets)\n" + _text_table(*_metrics_rows(rows, True))
                + f"\nr(L_MPLE, sample BLEU) = {r_text(s)}, r(L_MPLE, default BLEU) = {r_text(d)}")
    if step == "dynamic_kd":
        return "Dynamic KD (test split)\n" + _text_table(*_metrics_rows(result["rows"], False))
    return ""


def figure1_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["checkpoint", "NLL (bits/token)", "BLEU"]
    rows = [[c["label"], _f(c.get("nll"), 3), _f(c.get("bleu"))] for c in result["landscape"]["checkpoints"]]
    return header, rows


# ----------------------------------------------------------------------------- findings
# A finding compares this run with one of the paper's claims.  Its verdict rests on the 95%
# intervals, not on point estimates: "reproduced" only where the intervals support the claim,
# "not reproduced" only where they contradict it, "undecided" otherwise (overlapping intervals,
# numbers without an interval such as BLEU, an unconverged Ĉ).  Each finding keeps the numbers it
# rests on and says in words why it got its verdict.
REPRODUCED, NOT_REPRODUCED, UNDECIDED = "reproduced", "not reproduced", "undecided"
SMOKE_NOTE = ("smoke mode: no findings (a few updates per model check that the pipeline runs; their "
              "numbers say nothing about the paper)")
_NO_BLEU_INTERVAL = "BLEU has no interval in this run, so a difference in BLEU decides nothing"


def _interval(pair: Any) -> tuple[float, float] | None:
    """``pair`` as (low, high) when it is two finite numbers, else None."""
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        return None
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in pair):
        return None
    return float(pair[0]), float(pair[1])


def _above(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Interval ``a`` lies entirely above interval ``b``."""
    return a[0] > b[1]


def _with_ci(value: Any, pair: Any, digits: int = 2) -> str:
    return _f(value, digits) + (_ci(pair, digits) if _interval(pair) else " (no interval)")


def _finding(claim: str, verdict: str, basis: str, numbers: dict[str, Any]) -> dict[str, Any]:
    return {"claim": claim, "verdict": verdict, "basis": basis, "numbers": numbers}


def _c_ordering(rows: dict[str, dict[str, Any]], names: list[str], order: str = "the paper's order") -> dict[str, Any]:
    """C orders ``names`` as ``order`` (what the expected order is) says."""
    numbers = {n: {"c_bits_per_token": rows[n]["c_bits_per_token"], "ci95": rows[n]["ci95_bits_per_token"],
                   "converged": bool(rows[n].get("converged"))} for n in names}
    shown = "Ĉ = " + ", ".join(f"{n} {_with_ci(v['c_bits_per_token'], v['ci95'])}" for n, v in numbers.items())
    claim = "C orders the datasets " + " > ".join(names)
    intervals = {n: _interval(v["ci95"]) for n, v in numbers.items()}
    unconverged = [n for n, v in numbers.items() if not v["converged"]]
    if None in intervals.values():
        return _finding(claim, UNDECIDED, f"{shown}: an interval is missing", numbers)
    if unconverged:
        return _finding(claim, UNDECIDED, f"{shown}: not converged ({', '.join(unconverged)}), so the "
                                          f"intervals do not cover the models' training error", numbers)
    pairs = [(names[i], names[j]) for i in range(len(names)) for j in range(i + 1, len(names))]
    contradicted = [(hi, lo) for hi, lo in pairs if _above(intervals[lo], intervals[hi])]
    if contradicted:
        return _finding(claim, NOT_REPRODUCED, f"{shown}: the interval of "
                        + "; ".join(f"{lo} lies above that of {hi}" for hi, lo in contradicted), numbers)
    non_positive = [n for n, v in numbers.items() if not v["c_bits_per_token"] > 0]
    if non_positive:
        return _finding(claim, UNDECIDED, f"{shown}: Ĉ ≤ 0 for {', '.join(non_positive)} (C cannot be "
                                          f"negative; the models are not good enough to measure it)", numbers)
    overlapping = [f"{hi} and {lo}" for hi, lo in pairs if not _above(intervals[hi], intervals[lo])]
    if overlapping:
        return _finding(claim, UNDECIDED, f"{shown}: the intervals of {'; '.join(overlapping)} overlap", numbers)
    return _finding(claim, REPRODUCED, f"{shown}, all converged: the intervals are pairwise disjoint and in "
                                       f"{order}", numbers)


def _below_c(c: dict[str, Any], l_nat: dict[str, dict[str, Any]]) -> tuple[list[str], list[str], list[str]]:
    """Methods whose L_NAT interval lies below / above C's interval, and those that overlap it."""
    c_interval = _interval(c["ci95"])
    below, above, overlap = [], [], []
    for method, value in l_nat.items():
        interval = _interval(value["ci95"])
        if c_interval is None or interval is None:
            overlap.append(method)
        elif _above(c_interval, interval):
            below.append(method)
        elif _above(interval, c_interval):
            above.append(method)
        else:
            overlap.append(method)
    return below, above, overlap


def _kd_below_c(c: dict[str, Any], l_nat: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Figure 5: KD's L_NAT below C while raw data's is not; every method but raw below C."""
    shown = (f"Ĉ = {_with_ci(c['c_bits_per_token'], c['ci95'])}"
             + ("" if c["converged"] else " (not converged)") + "; L_NAT = "
             + ", ".join(f"{m} {_with_ci(v['l_nat_bits_per_token'], v['ci95'])}" for m, v in l_nat.items()))
    below, above, overlap = _below_c(c, l_nat)
    numbers = {"c": c, "l_nat": l_nat, "methods_below_c": below, "methods_above_c": above,
               "methods_overlapping_c": overlap}
    claim_kd = "KD lowers L_NAT below the data's C, raw data does not (Figure 5)"
    claim_all = "every method but raw data has L_NAT below C (Figure 5)"
    if not c["converged"]:
        why = f"{shown}: Ĉ did not converge"
        return (_finding(claim_kd, UNDECIDED, why, numbers), _finding(claim_all, UNDECIDED, why, numbers))
    if "kd" in below and "raw" in above:
        kd = _finding(claim_kd, REPRODUCED, f"{shown}: KD's interval lies below C's, raw data's above it", numbers)
    elif "kd" in above or "raw" in below:
        kd = _finding(claim_kd, NOT_REPRODUCED, f"{shown}: " + ("KD's interval lies above C's" if "kd" in above
                                                                  else "raw data's interval lies below C's"), numbers)
    else:
        kd = _finding(claim_kd, UNDECIDED, f"{shown}: the intervals of C and of "
                      + " and ".join(m for m in ("kd", "raw") if m in overlap) + " overlap", numbers)
    others = [m for m in l_nat if m != "raw"]
    if others and all(m in below for m in others):
        every = _finding(claim_all, REPRODUCED, f"{shown}: every interval but raw data's lies below C's", numbers)
    elif any(m in above for m in others):
        every = _finding(claim_all, NOT_REPRODUCED, f"{shown}: the intervals of "
                         f"{', '.join(m for m in others if m in above)} lie above C's", numbers)
    else:
        every = _finding(claim_all, UNDECIDED, f"{shown}: the intervals of "
                         f"{', '.join(m for m in others if m in overlap)} overlap C's", numbers)
    return kd, every


def _negative_r(claim: str, correlation: dict[str, Any]) -> dict[str, Any]:
    """A negative correlation of L_MPLE with BLEU, decided by the interval of r."""
    r = correlation.get("pearson_r")
    numbers = {"r": r, "ci95": None if r is None else [correlation["interval"]["low"], correlation["interval"]["high"]],
               "n_methods": correlation.get("n_methods")}
    if r is None:
        return _finding(claim, UNDECIDED, f"r is undefined ({correlation.get('undefined')})", numbers)
    low, high = numbers["ci95"]
    shown = f"r = {r:.3f} [{low:.3f}, {high:.3f}] over {numbers['n_methods']} methods"
    if high < 0:
        return _finding(claim, REPRODUCED, f"{shown}: the interval lies below 0", numbers)
    if low > 0:
        return _finding(claim, NOT_REPRODUCED, f"{shown}: the interval lies above 0", numbers)
    return _finding(claim, UNDECIDED, f"{shown}: the interval includes 0", numbers)


def _stronger_with_sample(sample: dict[str, Any], default: dict[str, Any]) -> dict[str, Any]:
    """Table 3: |r| with sample BLEU above |r| with default BLEU, r(sample) negative."""
    claim = "L_MPLE correlates more strongly (and negatively) with Input Sampling BLEU than with default BLEU"
    s, d = sample.get("pearson_r"), default.get("pearson_r")
    numbers = {name: {"r": c.get("pearson_r"),
                      "ci95": None if c.get("pearson_r") is None else [c["interval"]["low"], c["interval"]["high"]]}
               for name, c in (("sample", sample), ("default", default))}
    if s is None or d is None:
        return _finding(claim, UNDECIDED, "a correlation is undefined", numbers)
    (s_low, s_high), (d_low, d_high) = numbers["sample"]["ci95"], numbers["default"]["ci95"]
    shown = f"r(sample) = {s:.3f} [{s_low:.3f}, {s_high:.3f}], r(default) = {d:.3f} [{d_low:.3f}, {d_high:.3f}]"
    d_abs_max = max(abs(d_low), abs(d_high))
    d_abs_min = 0.0 if d_low <= 0 <= d_high else min(abs(d_low), abs(d_high))
    if s_high < 0 and -s_high > d_abs_max:
        return _finding(claim, REPRODUCED, f"{shown}: every |r| in the sample interval exceeds every |r| in the "
                                           f"default one", numbers)
    if s_low > 0 or max(abs(s_low), abs(s_high)) < d_abs_min:
        return _finding(claim, NOT_REPRODUCED, f"{shown}: " + ("r(sample) is positive" if s_low > 0 else
                                                               "|r(sample)| lies below |r(default)|"), numbers)
    return _finding(claim, UNDECIDED, f"{shown}: the intervals overlap in |r| or include 0", numbers)


def _bleu_only(claim: str, numbers: dict[str, Any], observed: str) -> dict[str, Any]:
    """A claim about BLEU (or another number without an interval): the run shows a direction only."""
    return _finding(claim, UNDECIDED, f"{observed}; {_NO_BLEU_INTERVAL}", numbers)


def _table1_findings(t1: dict[str, Any], names: list[str], order: str = "the paper's order") -> dict[str, Any]:
    """C orders ``names`` (the expected ``order``) and ΔBLEU follows Ĉ."""
    found: dict[str, Any] = {}
    rows = {r["dataset"]: r for r in t1["rows"]}
    found["c_ordering"] = _c_ordering(rows, names, order)
    d = {n: rows[n].get("delta_bleu") for n in names}
    if None not in d.values():
        same = sorted(names, key=lambda n: -d[n]) == sorted(names, key=lambda n: -rows[n]["c_bits_per_token"])
        c_values = {n: rows[n]["c_bits_per_token"] for n in names}
        found["delta_bleu_follows_c"] = _bleu_only(
            "ΔBLEU (AT − NAT) grows with C", {"delta_bleu": d, "c_bits_per_token": c_values},
            f"ΔBLEU = {', '.join(f'{n} {v:.2f}' for n, v in d.items())}: "
            + ("the order of Ĉ's point estimates" if same else "not the order of Ĉ's point estimates"))
    return found


def _c_recovered(t1: dict[str, Any]) -> dict[str, Any]:
    """The controlled benchmark: every Ĉ within the tolerance of the exact C, and converged."""
    claim = (f"Ĉ recovers the exact C on every controlled dataset (within {RELATIVE_TOLERANCE:.0%} or "
             f"{ABSOLUTE_TOLERANCE:g} bits/token)")
    numbers = {r["dataset"]: {k: r.get(k) for k in (
        "c_bits_per_token", "ci95_bits_per_token", "c_true_bits_per_token", "recovers", "converged",
        "nat_above_floor_bits_per_token", "at_above_floor_bits_per_token")} for r in t1["rows"]}
    shown = "; ".join(f"{n}: Ĉ {_with_ci(v['c_bits_per_token'], v['ci95_bits_per_token'], 3)}, exact "
                      f"{_f(v['c_true_bits_per_token'], 3)}" for n, v in numbers.items())
    missed = [n for n, v in numbers.items() if not v["recovers"]]
    unconverged = [n for n, v in numbers.items() if not v["converged"]]
    if missed:
        gaps = "; ".join(f"{n}: NAT {_f(numbers[n]['nat_above_floor_bits_per_token'], 3)} and AT "
                         f"{_f(numbers[n]['at_above_floor_bits_per_token'], 3)} bits/token above their floors"
                         for n in missed)
        return _finding(claim, NOT_REPRODUCED, f"{shown}: missed on {', '.join(missed)} ({gaps})", numbers)
    if unconverged:
        return _finding(claim, UNDECIDED, f"{shown}: within the tolerance, but not converged "
                                          f"({', '.join(unconverged)})", numbers)
    return _finding(claim, REPRODUCED, f"{shown}: every estimate within the tolerance, all converged", numbers)


def _table2_findings(t2: dict[str, Any], t1: dict[str, Any] | None, main: str, out: Path) -> dict[str, Any]:
    """Figure 5's two claims, r(L_MPLE, BLEU) < 0, and the BLEU comparisons of Table 2."""
    found: dict[str, Any] = {}
    rows = {r["method"]: r for r in _read_metrics(out, t2["methods"])}
    main_row = next((r for r in (t1 or {}).get("rows", []) if r["dataset"] == main), {})
    c = {"c_bits_per_token": t2["c_bits_per_token"], "ci95": t2.get("c_ci95"),
         "converged": bool(main_row.get("converged"))}
    l_nat = {m: {"l_nat_bits_per_token": r["l_nat_bits_per_token"],
                 "ci95": (r.get("ci95") or {}).get("l_nat_bits_per_token")} for m, r in rows.items()}
    found["kd_lowers_l_nat_below_c"], found["all_but_raw_below_c"] = _kd_below_c(c, l_nat)
    found["r_mple_bleu"] = _negative_r(f"L_MPLE correlates negatively with BLEU (paper: r = {paper.TABLE2_R})",
                                       t2["correlation"])
    bleu = {m: r.get("bleu_default") for m, r in rows.items()}
    l_mple = {m: r["l_mple"] for m, r in rows.items()}
    best_mple = min(l_mple, key=l_mple.get)
    best_bleu = max(bleu, key=lambda m: -1 if bleu[m] is None else bleu[m])
    found["lowest_mple_is_best_bleu"] = _bleu_only(
        "the method of lowest L_MPLE has the highest BLEU", {"l_mple": l_mple, "bleu": bleu},
        f"lowest L_MPLE: {best_mple} ({l_mple[best_mple]:.2f}); highest BLEU: {best_bleu} ({_f(bleu[best_bleu])})")
    found["kd_beats_raw_bleu"] = _bleu_only(
        "KD beats raw data in BLEU (paper: 20.87 against 11.79)", {"bleu_kd": bleu["kd"], "bleu_raw": bleu["raw"]},
        f"BLEU: kd {_f(bleu['kd'])}, raw {_f(bleu['raw'])}")
    return found


def _figure1_finding(f1: dict[str, Any]) -> dict[str, Any] | None:
    points = f1["landscape"]["checkpoints"]
    if len(points) != 3 or any(p.get("nll") is None or p.get("bleu") is None for p in points):
        return None
    mle, glat = points[1], points[2]
    numbers = {p["label"]: {"nll": p["nll"], "bleu": p["bleu"]} for p in points}
    return _finding(
        "MLE fine-tuning reaches the higher log-likelihood, GLAT + KD the higher BLEU (Figure 1)", UNDECIDED,
        f"NLL (bits/token): MLE {mle['nll']:.3f}, GLAT + KD {glat['nll']:.3f}; BLEU: MLE {mle['bleu']:.2f}, "
        f"GLAT + KD {glat['bleu']:.2f}; the landscape's values have no interval, so these differences "
        f"decide nothing", numbers)


def controlled_results(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The controlled benchmark's entries (its steps or its findings), under their own names (``table1``, ...)."""
    return {k[len(CONTROLLED_PREFIX):]: v for k, v in results.items() if k.startswith(CONTROLLED_PREFIX)}


def findings(results: dict[str, dict[str, Any]], out: Path, mode: str = "default") -> dict[str, Any]:
    """Each of the paper's findings this run's results bear on, with a verdict from its intervals
    (see the comment above), the controlled benchmark's under ``controlled_<name>`` with the check
    of Ĉ against the exact C; in ``smoke`` mode none: ``{"note": SMOKE_NOTE}``."""
    if mode == "smoke":
        return {"note": SMOKE_NOTE}
    found: dict[str, Any] = {}
    controlled = controlled_results(results)
    ct1 = controlled.get("table1")
    if ct1:
        found[CONTROLLED_PREFIX + "c_recovered"] = _c_recovered(ct1)
        # The expected order is the exact C's; a dataset of C = 0 has no order to show (Ĉ ≈ 0 either side).
        positive = sorted((r for r in ct1["rows"] if r["c_true_bits_per_token"] > 0),
                          key=lambda r: -r["c_true_bits_per_token"])
        if len(positive) >= 2:
            found.update({CONTROLLED_PREFIX + k: v for k, v in
                          _table1_findings(ct1, [r["dataset"] for r in positive], "the exact C's order").items()})
    if controlled.get("table2"):
        found.update({CONTROLLED_PREFIX + k: v for k, v in _table2_findings(
            controlled["table2"], ct1, controlled["table2"]["dataset"], out / "controlled").items()})
    if controlled.get("figure1") and _figure1_finding(controlled["figure1"]):
        found[CONTROLLED_PREFIX + "figure1"] = _figure1_finding(controlled["figure1"])
    t1 = results.get("table1")
    if t1:
        found.update(_table1_findings(t1, ["bundled", "synthetic-b", "synthetic-a"]))  # the paper's order
    if results.get("table2"):
        found.update(_table2_findings(results["table2"], t1, "bundled", out))
    if results.get("figure1") and _figure1_finding(results["figure1"]):
        found["figure1"] = _figure1_finding(results["figure1"])
    t3 = results.get("table3")
    if t3:
        found["table3_r"] = _stronger_with_sample(t3["correlation_sample"], t3["correlation_default"])
    dk = results.get("dynamic_kd")
    if dk:
        bleu = {r["method"]: r.get("bleu_default") for r in dk["rows"]}
        found["dynamic_kd"] = _bleu_only(
            "dynamic KD beats single-teacher KD, and its regulariser helps (Table 9)", {"bleu": bleu},
            "BLEU: " + ", ".join(f"{m} {_f(v)}" for m, v in bleu.items()))
    return found


# ----------------------------------------------------------------------------- report.md
def _verdict(finding: dict[str, Any]) -> str:
    """One sentence: the claim, its verdict in bold, and what the verdict rests on."""
    return f"{finding['claim'][0].upper()}{finding['claim'][1:]}: **{finding['verdict']}** ({finding['basis']})."


def _discussion_table1(f: dict[str, Any], result: dict[str, Any], plan: dict[str, Any]) -> str:
    parts = [_verdict(f["c_ordering"])]
    if "delta_bleu_follows_c" in f:
        parts.append(_verdict(f["delta_bleu_follows_c"]))
    if all(bool(r.get("converged")) for r in result["rows"]):
        parts.append("Every estimate is marked converged: both models settled and Ĉ on the valid split stopped moving.")
    else:
        notes = "; ".join(f"{r['dataset']}: {r.get('convergence_note')}" for r in result["rows"] if not r.get("converged"))
        parts.append(f"Not every estimate converged within the budget ({notes}); an unconverged Ĉ is a "
                     f"difference of two NLLs that were still falling, so read it as indicative, and rerun with "
                     f"a larger `--budget-minutes` to firm it up.")
    parts.append(f"The absolute values are not the paper's: `{plan['size']}` models (V-entropy of a small family) "
                 f"trained for minutes, {plan['corpus']['train_sentences']} Bible verses, a sentencepiece vocabulary "
                 f"of {plan['vocab_size']} pieces, and Synthetic A/B built from this corpus' English rather than "
                 f"WMT14's.")
    return " ".join(parts)


def _discussion_table2(f: dict[str, Any]) -> str:
    parts = [_verdict(f[key]) for key in ("kd_lowers_l_nat_below_c", "all_but_raw_below_c", "r_mple_bleu",
                                          "lowest_mple_is_best_bleu", "kd_beats_raw_bleu")]
    parts.append("Small-scale caveats: the KD teacher is a tiny AT trained on the same few thousand sentences, so "
                 "its outputs are poor translations, which raises L_target for every KD row; AXE and OaXE get the "
                 "same short schedule, which the paper's 300k-step runs do not share.")
    return " ".join(parts)


def _discussion_figure1(f: dict[str, Any] | None) -> str:
    if f is None:
        return "The landscape lacks a value at a checkpoint; no comparison is made."
    return (_verdict(f) + " The NLL is that of the raw references, which GLAT + KD does not train on; the "
            "fine-tunes here are a few epochs, not 10k steps.")


def machine() -> dict[str, Any]:
    import torch

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def versions() -> dict[str, str]:
    import sacrebleu
    import torch

    from .. import __version__, build_info

    return {"mple_metrics": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "sacrebleu": sacrebleu.__version__, "python": platform.python_version(), "build": str(build_info())}


def _split_sizes(results: dict[str, Any]) -> str:
    """Sentences per split of the bundled sample, as the data step wrote them."""
    rows = results.get("table1", {}).get("rows", [])
    counts = next((r["data"] for r in rows if r["dataset"] == "bundled"), None)
    if not counts:
        return "see data/bundled"
    return ", ".join(f"{v['sentences']} {name}" for name, v in counts.items()) + " sentences"


def _discussion(f: dict[str, Any], paragraph) -> str:
    """A section's findings paragraph, or the smoke note when the run states no findings."""
    return f"*{f['note']}*" if "note" in f else paragraph()


def _controlled_markdown(results: dict[str, Any], f: dict[str, Any], plan: dict[str, Any], out: Path) -> list[str]:
    """Part 1 of report.md: the controlled benchmark's tables and figures with the truth beside them."""
    controlled = controlled_results(results)
    cf = {"note": f["note"]} if "note" in f else controlled_results(f)
    c_plan = plan["controlled"]
    lines = ["## Part 1: the controlled benchmark (exact truth)", "",
             f"Generated translation tasks (`mple data controlled`, {c_plan['train_sentences']} training pairs"
             + "".join(f" ({n} for {k})" for k, n in c_plan["train_sentences_by_kind"]) + ", "
             f"{c_plan['test_sentences']} test pairs, 3 independent extra references) whose P(Y | X) is a finite "
             f"list, so that C and each model family's NLL floor are computed exactly: `none` is deterministic "
             f"(C = 0), `phrasing` picks one of two registers per sentence (the modes KD collapses), `reordering` "
             f"places modifiers after their nouns in half the sentences (what OaXE absorbs), `insertion` adds a "
             f"particle that shifts the rest (what AXE absorbs), `mixed` does all three. The models are those of "
             f"the bundled corpus with an epoch cap of {c_plan['max_epochs']} and patience {c_plan['patience']}. "
             f"See docs/reproduction.md for what each kind tests.", ""]
    t1 = controlled.get("table1")
    if t1:
        header, rows = controlled_table1_rows(t1)
        lines += ["### Table 1: Ĉ against the exact C", "",
                  "Test split, bits/token. *NAT − floor* and *AT − floor*: how far each model's NLL lies above the "
                  "lowest its family can reach on this data (the NAT's: the per-position entropies; the AT's: "
                  "H(Y | X)); *converged* is the estimator's own flag (its NLLs stopped falling), which a model on a "
                  "plateau also earns.", "", _md_table(header, rows), ""]
        if "c_recovered" in cf:
            lines.append(" ".join(_verdict(cf[k]) for k in ("c_recovered", "c_ordering", "delta_bleu_follows_c")
                                  if k in cf))
            lines.append("")
        elif "note" in cf:
            lines += [f"*{cf['note']}*", ""]
    t2 = controlled.get("table2")
    if t2:
        header, rows = _metrics_rows(_read_metrics(out / "controlled", t2["methods"]), False)
        lines += [f"### Table 2 and Figure 5 on `{t2['dataset']}`", "", _md_table(header, rows), "",
                  f"C of `{t2['dataset']}`: exact {_f(t2.get('c_true_bits_per_token'), 3)}, estimated "
                  f"{_f(t2['c_bits_per_token'], 3)}{_ci(t2.get('c_ci95'), 3)} bits/token (Figure 5 draws both). "
                  f"Pearson r(L_MPLE, BLEU) = {r_text(t2['correlation'])}.", "",
                  *([f"![L_MPLE against BLEU](controlled/{t2['correlation']['figure']})", ""]
                    if t2["correlation"]["figure"] else []),
                  f"![Figure 5 on the controlled benchmark](controlled/{t2['figure5']})", ""]
        if "note" in cf:
            lines += [f"*{cf['note']}*", ""]
        else:
            lines += [" ".join(_verdict(cf[k]) for k in ("kd_lowers_l_nat_below_c", "all_but_raw_below_c",
                                                         "r_mple_bleu", "lowest_mple_is_best_bleu",
                                                         "kd_beats_raw_bleu") if k in cf), ""]
    f1 = controlled.get("figure1")
    if f1:
        header, rows = figure1_rows(f1)
        lines += [f"### Figure 1 on `{(t2 or {}).get('dataset', '')}`", "", _md_table(header, rows), "",
                  f"![Figure 1 on the controlled benchmark](controlled/{f1['figure']})", ""]
        if "note" not in cf:
            lines += [_discussion_figure1(cf.get("figure1")), ""]
    return lines


def render_markdown(report: dict[str, Any], out: Path) -> str:
    """``report.md`` from the ``report.json`` document ``report``."""
    plan, results, f = report["plan"], report["results"], report["findings"]
    corpus = plan["corpus"]
    lines = [f"# mple demo: the paper in miniature ({plan['mode']} mode)", "",
             f"Huang et al., *On the Learning of Non-Autoregressive Transformers* (ICML 2022), reproduced at small "
             + ("scale, first on a controlled benchmark whose C is known exactly (Part 1), then "
                if controlled_results(results) else "scale ")
             + f"on the bundled Spanish→English Bible corpus by the package's own estimators. Units: {UNITS}.",
             "", "## Setup", "",
             f"- **Data**: a sample of the bundled corpus, verses of at most {corpus['max_words']} words on both sides: "
             f"{_split_sizes(results)} (seed {corpus['seed']}); valid and test keep all their English references (the target and its independent extra references). "
             f"Synthetic A and B (Appendix B) are built from the sample's English side.",
             f"- **Models**: `{plan['size']}` Transformers, one {plan['tokenizer_kind']} tokenizer of {plan['vocab_size']} "
             f"pieces per dataset, trained by plain MLE (no label smoothing) on `{plan['device']}`, batches of "
             f"{plan['max_tokens']} tokens, peak learning rate {plan['lr']:g}, at most "
             f"{plan['max_epochs']} epochs, early-stopped on the valid split (patience {plan['patience']})"
             + (f", at most {plan['max_steps']} updates" if plan["max_steps"] else "") + ".",
             f"- **Shared work**: Table 1's MLE NAT is Table 2's raw row and Figure 1's θ0; Table 1's AT is the KD "
             f"teacher (beam {plan['kd_beam']}); the KD NAT is OaXE's start ({plan['oaxe_epochs']} epochs at a constant "
             f"learning rate {plan['fine_tune_lr']:g}, as the paper fine-tunes) and, in `--full`, the input predictor's "
             f"frozen vanilla NAT. Every NAT of Tables 2 and 3 copies the raw NAT's schedule and changes only its proxy.",
             f"- **Budget**: {plan['budget_minutes']:g} minutes planned; {report['computed_seconds'] / 60:.1f} minutes "
             f"of computing in all ({', '.join(f'{k} {v / 60:.1f}' for k, v in report['step_seconds'].items())} "
             f"minutes per step, as first computed); this invocation took {report['wall_seconds'] / 60:.1f} minutes.",
             f"- **Machine**: {report['machine']['platform']}, {report['machine']['cpus']} CPUs, "
             f"{report['machine']['torch_threads']} torch threads, GPU: {report['machine']['cuda'] or 'none'}.",
             "- **Versions**: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items() if k != "build") + ".",
             ""]
    if controlled_results(results):
        lines += _controlled_markdown(results, f, plan, out)
        lines += ["## Part 2: the bundled corpus", ""]
    if "table1" in results:
        header, rows = table1_rows(results["table1"])
        lines += ["## Table 1: C and the AT–NAT gap", "", "Measured (test split, BLEU against all the references):",
                  "", _md_table(header, rows), "", "The paper (Transformer-base):", "",
                  _md_table(["dataset", "C", "ΔBLEU", "BLEU_AT", "BLEU_NAT"],
                            [[n, *(f"{v:.2f}" for v in vals)] for n, *vals in paper.TABLE1]), "",
                  _discussion(f, lambda: _discussion_table1(f, results["table1"], plan)), ""]
    if "table2" in results:
        t2 = results["table2"]
        header, rows = _metrics_rows(_read_metrics(out, t2["methods"]), False)
        lines += ["## Table 2: proxy targets", "", "Measured (test split, vanilla input, L_input = 0):", "",
                  _md_table(header, rows), "",
                  f"Pearson r(L_MPLE, BLEU) = {r_text(t2['correlation'])} (95% bootstrap interval over methods).",
                  "", "The paper (WMT14 En-De; |r| = 0.99):", "",
                  _md_table(["method", "L_NAT", "L_target", "L_MPLE", "BLEU"],
                            [[n, *(f"{v:.2f}" for v in vals)] for n, *vals in paper.TABLE2]), "",
                  *([f"![L_MPLE against BLEU]({t2['correlation']['figure']})", ""] if t2["correlation"]["figure"] else []),
                  "**Figure 5** in miniature: each method's L_NAT against the bundled sample's Ĉ.", "",
                  f"![Figure 5]({t2['figure5']})", "", _discussion(f, lambda: _discussion_table2(f)), ""]
    if "figure1" in results:
        f1 = results["figure1"]
        header, rows = figure1_rows(f1)
        lines += ["## Figure 1: the landscape through three checkpoints", "",
                  f"θ0 is the MLE NAT; θ1 and θ2 are θ0 fine-tuned for {plan['fine_tune_epochs']} epochs with MLE and "
                  f"with GLAT + KD. A {f1['settings']['grid']} grid (margin {f1['settings']['margin']}) on "
                  f"{f1['settings']['max_sentences']} valid sentences; NLL of the raw references and corpus BLEU of "
                  f"argmax decoding at the predicted length. The table gives each checkpoint's values at its own "
                  f"weights (what `mple evaluate` gives it), not those of a grid cell.", "", _md_table(header, rows), "",
                  f"![Figure 1]({f1['figure']})", "", f"The paper: {paper.FIGURE1}", "",
                  _discussion(f, lambda: _discussion_figure1(f.get("figure1"))), ""]
    if "table3" in results:
        t3 = results["table3"]
        header, rows = _metrics_rows(_read_metrics(out, t3["methods"]), True)
        s, d = t3["correlation_sample"], t3["correlation_default"]
        lines += ["## Table 3: proxy inputs (KD targets)", "", _md_table(header, rows), "",
                  f"r(L_MPLE, sample BLEU) = {r_text(s)}; r(L_MPLE, default BLEU) = {r_text(d)} "
                  f"(the paper: |r| = 0.99 and 0.37).", "", "The paper:", "",
                  _md_table(["method", "L_input", "L_NAT", "L_MPLE", "Sample", "Default"],
                            [[n, *(f"{v:.2f}" for v in vals)] for n, *vals in paper.TABLE3]), "",
                  _discussion(f, lambda: _verdict(f["table3_r"])), ""]
    if "dynamic_kd" in results:
        dk = results["dynamic_kd"]
        header, rows = _metrics_rows(dk["rows"], False)
        lines += ["## Dynamic KD (Table 9's ablation)", "",
                  "Candidates: the raw target and the outputs of two AT teachers of different widths.", "",
                  _md_table(header, rows), "", "The paper (vanilla NAT rows of Table 9): "
                  + ", ".join(f"{n} {v:.2f}" for n, v in paper.TABLE9_VANILLA) + " BLEU.", "",
                  _discussion(f, lambda: _verdict(f["dynamic_kd"])), ""]
    lines += ["## Commands", "",
              "The demo calls the library; these commands compute the same numbers (paths relative to the work "
              "directory):", "", "```", *report["commands"], "```", ""]
    return "\n".join(lines)
