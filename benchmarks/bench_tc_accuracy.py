"""Accuracy of the C estimator against ground truth: known-C datasets, default settings.

For each dataset: the exact C (enumerated from the generator), the estimate with its 95% interval,
the relative error (absolute where C = 0), whether the estimate says it converged, the wall time
on this machine's threads, and Theorem 1's bound: the NAT cannot beat sum_i H(y_i|X), so
NLL_NAT - H(Y|X) >= C must hold up to the estimate's sampling error.

  python benchmarks/bench_tc_accuracy.py                      # all datasets, ~35 min on 2 cores
  python benchmarks/bench_tc_accuracy.py --only kmodes-2x8 iid --work /tmp/tc-acc --json acc.json

Runs resume: each dataset's models live under --work and are reused by a rerun.  The target is an
estimate within 5% of the truth (0.05 bits per token absolute where C = 0).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from mple_metrics.data import write_known_c
from mple_metrics.estimators.tc_pipeline import estimate_tc_by_training
from mple_metrics.estimators.tc_training import TCTrainingSettings

#: name -> write_known_c arguments (20,000 training sentences each).
DATASETS: dict[str, dict] = {
    "kmodes-2x8": dict(kind="kmodes", k=2, m=8),
    "kmodes-4x4": dict(kind="kmodes", k=4, m=4),
    "kmodes-2x16": dict(kind="kmodes", k=2, m=16),
    "iid": dict(kind="iid", m=8, j=4),
    "deterministic": dict(kind="deterministic", m=8),
    "mixture": dict(kind="mixture", m=6, k=3, j=3, seed=7),
}
TARGET_RELATIVE = 0.05
TARGET_ABSOLUTE_BITS_PER_TOKEN = 0.05


def run_one(name: str, work: Path, args: argparse.Namespace) -> dict:
    spec = dict(DATASETS[name])
    data = work / name / "data"
    if not (data / "truth.json").is_file():
        write_known_c(data, **spec)
    truth = json.loads((data / "truth.json").read_text(encoding="utf-8"))
    # Known-C truth is per word: the word tokenizer keeps one token per word.
    settings = TCTrainingSettings(data=str(data), out=str(work / name / "estimate"), quiet=True,
                                  tokenizer_kind="word", size=args.size, max_epochs=args.max_epochs,
                                  patience=args.patience)
    started = time.perf_counter()
    report = estimate_tc_by_training(settings, bleu=False, n_resamples=args.resamples)
    seconds = time.perf_counter() - started
    e = report.estimate
    true_token = truth["c_bits_per_token"]
    error = e.c_bits_per_token - true_token
    relative = error / true_token if true_token > 0 else None
    within = (abs(relative) <= TARGET_RELATIVE) if relative is not None \
        else abs(error) <= TARGET_ABSOLUTE_BITS_PER_TOKEN
    half_width = (e.ci95_bits_per_sentence[1] - e.ci95_bits_per_sentence[0]) / 2
    gap = e.nll_nat_bits_per_sentence - truth["h_y_given_x_bits"]
    runs = report.extra["training"]["runs"][0]
    return {
        "dataset": name, "spec": spec, "truth_bits_per_token": true_token,
        "truth_bits_per_sentence": truth["c_bits_per_sentence"],
        "estimate_bits_per_token": e.c_bits_per_token, "ci95_bits_per_token": list(e.ci95_bits_per_token),
        "estimate_bits_per_sentence": e.c_bits_per_sentence,
        "ci95_bits_per_sentence": list(e.ci95_bits_per_sentence),
        "relative_error": relative, "absolute_error_bits_per_token": error, "within_target": within,
        "converged": report.extra["converged"], "convergence_note": report.extra["convergence_note"],
        "theorem1_nll_nat_minus_h_bits_per_sentence": gap,
        "theorem1_holds": gap >= truth["c_bits_per_sentence"] - half_width,
        "nat_epochs": runs["nat"]["epochs_completed"], "at_epochs": runs["at"]["epochs_completed"],
        "seconds": seconds, "threads": torch.get_num_threads(),
        "note": "seconds = this process's wall time; 0 when the models were reused from --work",
    }


def table(rows: list[dict]) -> str:
    lines = ["| dataset | C true (bits/tok) | Ĉ (bits/tok) | 95% CI | error | within 5% | converged | "
             "NLL_NAT − H(Y|X) ≥ C | epochs NAT/AT | wall (s) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        error = (f"{100 * r['relative_error']:+.1f}%" if r["relative_error"] is not None
                 else f"{r['absolute_error_bits_per_token']:+.3f} bits")
        lo, hi = r["ci95_bits_per_token"]
        lines.append(f"| {r['dataset']} | {r['truth_bits_per_token']:.4f} | {r['estimate_bits_per_token']:.4f} | "
                     f"[{lo:.4f}, {hi:.4f}] | {error} | {'yes' if r['within_target'] else 'no'} | "
                     f"{'yes' if r['converged'] else 'no'} | "
                     f"{r['theorem1_nll_nat_minus_h_bits_per_sentence']:.3f} ≥ {r['truth_bits_per_sentence']:.3f}: "
                     f"{'yes' if r['theorem1_holds'] else 'no'} | {r['nat_epochs']}/{r['at_epochs']} | "
                     f"{r['seconds']:.0f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=sorted(DATASETS), default=list(DATASETS))
    parser.add_argument("--work", type=Path, default=Path("bench-tc-accuracy"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--max-epochs", type=int, default=TCTrainingSettings.max_epochs)
    parser.add_argument("--patience", type=int, default=TCTrainingSettings.patience)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    rows = []
    for name in args.only:
        rows.append(run_one(name, args.work, args))
        print(json.dumps(rows[-1]), flush=True)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
