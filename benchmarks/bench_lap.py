"""Batched linear assignment and the OaXE loss: our one-call kernel against per-sentence loops.

Peers, timed in the same process on the same batches (B = 256 square L x L problems, float32 costs as
a NAT produces them):

* ``scipy loop``: the public OaXE pattern (Du et al. 2021's fairseq criterion): detach, copy to NumPy,
  then per sentence count its non-pad length from a torch mask, slice the block, call
  ``scipy.optimize.linear_sum_assignment``, write the columns into a NumPy array, and turn that back
  into a LongTensor.
* ``lapjv loop``: the same loop with ``lap.lapjv`` (PyPI package ``lap``) instead of scipy, if it is
  installed; the benchmark says so when it is not.
* ``oaxe fwd+bwd``: the full loss, forward and backward, our :func:`mple_metrics.ops.oaxe_loss`
  against the public pattern (gather of the (B, L, L) log-probs, NumPy, scipy loop, gather, sum).

Costs: ``uniform`` (U[0, 1)) and ``-log-softmax`` (C[j, i] = -log P_j(Y_i) from random logits, the
OaXE case).  Correctness is checked first (equal optimal totals, equal losses).  Reports medians and
ratios (peer time / our time) on 2 CPU threads.

    python benchmarks/bench_lap.py [--batch 256] [--lengths 32 64 128] [--repeats 7] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment as scipy_lsa

from mple_metrics.ops import linear_sum_assignment, oaxe_loss

try:
    import lap as lap_package  # optional peer: pip install lap
except ImportError:  # pragma: no cover - depends on the environment
    lap_package = None

TARGET_VS_SCIPY = 3.0
TARGET_VS_LAPJV = 1.0
VOCAB = 1000


def median_ms(fns: dict, repeats: int) -> dict:
    """Median wall time in ms of each callable, timed in interleaved rounds so that load from other
    processes falls on all of them alike."""
    for fn in fns.values():
        fn()  # warm-up
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def make_costs(kind: str, batch: int, length: int, gen: torch.Generator) -> torch.Tensor:
    if kind == "uniform":
        return torch.rand(batch, length, length, generator=gen)
    logits = 3.0 * torch.randn(batch, length, VOCAB, generator=gen)
    targets = torch.randint(0, VOCAB, (batch, length), generator=gen)
    log_probs = torch.log_softmax(logits, dim=-1)
    return -log_probs.gather(2, targets[:, None, :].expand(batch, length, length))


def public_scipy_loop(cost: torch.Tensor, no_pad: torch.Tensor, solver) -> torch.Tensor:
    """The public OaXE assignment loop, with `solver(block) -> column per row`."""
    batch, length, _ = cost.shape
    best_match = np.repeat(np.arange(length).reshape(1, -1, 1), batch, axis=0)
    cost_numpy = cost.detach().cpu().numpy()
    for b in range(batch):
        no_pad_num = no_pad[b, 0].sum()
        best_match[b, :no_pad_num] = solver(cost_numpy[b, :no_pad_num, :no_pad_num]).reshape(-1, 1)
    return torch.Tensor(best_match).to(no_pad.device).long()


def scipy_columns(block: np.ndarray) -> np.ndarray:
    return scipy_lsa(block)[1]


def lapjv_columns(block: np.ndarray) -> np.ndarray:
    return lap_package.lapjv(block)[1]


def totals(cost: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    return cost.double().gather(2, columns.view(cost.shape[0], -1, 1)).sum(dim=(1, 2))


def bench_assignment(kind: str, batch: int, length: int, repeats: int, gen) -> dict:
    cost = make_costs(kind, batch, length, gen)
    lengths = torch.full((batch,), length, dtype=torch.int64)
    no_pad = torch.ones(batch, length, length, dtype=torch.bool)  # the public code's target.ne(pad)

    ours = linear_sum_assignment(cost, lengths, lengths)
    expected = totals(cost, public_scipy_loop(cost, no_pad, scipy_columns))
    torch.testing.assert_close(totals(cost, ours), expected, rtol=1e-9, atol=1e-9)
    fns = {"ours_ms": lambda: linear_sum_assignment(cost, lengths, lengths),
           "scipy_loop_ms": lambda: public_scipy_loop(cost, no_pad, scipy_columns)}
    if lap_package is not None:
        got = totals(cost, public_scipy_loop(cost, no_pad, lapjv_columns))
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
        fns["lapjv_loop_ms"] = lambda: public_scipy_loop(cost, no_pad, lapjv_columns)
    row = {"kind": kind, "L": length, "B": batch, **median_ms(fns, repeats)}
    row["vs_scipy"] = row["scipy_loop_ms"] / row["ours_ms"]
    if lap_package is not None:
        row["vs_lapjv"] = row["lapjv_loop_ms"] / row["ours_ms"]
    return row


def public_oaxe_loss(log_probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The public OaXE criterion's bipartite loss (no padding, no skip, no smoothing), summed."""
    batch, length = targets.shape
    target = targets.repeat(1, length).view(batch, length, length)
    no_pad = target.ne(-1)
    nll = -log_probs.gather(dim=-1, index=target) * no_pad
    best_match = public_scipy_loop(nll, no_pad, scipy_columns)
    return nll.gather(dim=-1, index=best_match).sum()


def bench_oaxe(batch: int, length: int, repeats: int, gen) -> dict:
    logits = 3.0 * torch.randn(batch, length, VOCAB, generator=gen)
    log_probs = torch.log_softmax(logits, dim=-1).requires_grad_()
    targets = torch.randint(0, VOCAB, (batch, length), generator=gen)
    lengths = torch.full((batch,), length, dtype=torch.int64)

    def ours():
        log_probs.grad = None
        loss = oaxe_loss(log_probs, targets, lengths, reduction="sum")
        loss.backward()
        return loss

    def public():
        log_probs.grad = None
        loss = public_oaxe_loss(log_probs, targets)
        loss.backward()
        return loss

    torch.testing.assert_close(ours().detach(), public().detach(), rtol=1e-5, atol=1e-3)
    row = {"kind": "oaxe fwd+bwd", "L": length, "B": batch,
           **median_ms({"ours_ms": ours, "scipy_loop_ms": public}, repeats)}
    row["vs_scipy"] = row["scipy_loop_ms"] / row["ours_ms"]
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lengths", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)
    if lap_package is None:
        print("lap (lap.lapjv) is not installed: the lapjv peer is skipped (pip install lap)")
    else:
        print(f"lapjv peer: lap {lap_package.__version__}")

    load_before = os.getloadavg()[0]
    rows = []
    for length in args.lengths:
        for kind in ("uniform", "-log-softmax"):
            rows.append(bench_assignment(kind, args.batch, length, args.repeats, gen))
        rows.append(bench_oaxe(args.batch, length, args.repeats, gen))

    load_after = os.getloadavg()[0]
    print(f"\nB={args.batch}, {args.threads} threads, medians of {args.repeats} runs; ratio = peer / ours; "
          f"1-min load average {load_before:.1f} before, {load_after:.1f} after, on {os.cpu_count()} CPUs")
    header = (f"{'case':<14}{'L':>5}{'ours ms':>10}{'scipy loop ms':>15}{'x scipy':>9}"
              f"{'lapjv loop ms':>15}{'x lapjv':>9}")
    print(header)
    print("-" * len(header))
    for r in rows:
        lapjv = (f"{r['lapjv_loop_ms']:>15.2f}{r['vs_lapjv']:>9.2f}" if "lapjv_loop_ms" in r
                 else f"{'-':>15}{'-':>9}")
        print(f"{r['kind']:<14}{r['L']:>5}{r['ours_ms']:>10.2f}{r['scipy_loop_ms']:>15.2f}"
              f"{r['vs_scipy']:>9.2f}{lapjv}")
    at_64 = [r for r in rows if r["L"] == 64 and r["kind"] != "oaxe fwd+bwd"]
    if at_64:
        worst_scipy = min(r["vs_scipy"] for r in at_64)
        print(f"\nL=64: >= {worst_scipy:.2f}x the scipy loop (target {TARGET_VS_SCIPY}x)", end="")
        if lap_package is not None:
            worst_lapjv = min(r["vs_lapjv"] for r in at_64)
            print(f", >= {worst_lapjv:.2f}x the lapjv loop (target {TARGET_VS_LAPJV}x)", end="")
        print()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "torch": torch.__version__, "cpus": os.cpu_count(),
                       "load_average": [load_before, load_after],
                       "lap": getattr(lap_package, "__version__", None), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
