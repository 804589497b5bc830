"""AXE loss, forward + backward: the C++ kernel against the public-style pure-PyTorch DP.

Peers, timed in the same process on the same inputs (B = 64, V = 1000, Lp = Ly):

* (a) the anti-diagonal DP as the public AXE implementation writes it: vectorised over the batch, a
  Python loop over anti-diagonals, and at every step three shifted copies of the whole table plus a
  full-table write-back of the new diagonal (so autograd can differentiate through it);
* (b) ``torch.nn.functional.ctc_loss`` on the same shapes, as a yardstick of a production DP loss
  (a different recurrence: a sum over alignments, not a minimum);
* the float64 reference DP of ``mple_metrics.ops.reference.axe`` (one diagonal per step, no table
  copies) for context.

Correctness first: the kernel's loss and gradient must match the float64 reference, and peer (a)'s
loss must match too, before anything is timed.  Times are medians of wall-clock time.  A second
table runs the kernel alone on one thread and reports its median CPU time per DP cell, which stays
flat when the time is linear in the table size (Lp + 1)(Ly + 1) (CPU time, so that other processes
on a shared machine do not distort the comparison between sizes).

Usage: OMP_NUM_THREADS=2 python benchmarks/bench_axe.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from mple_metrics.ops import axe_loss
from mple_metrics.ops.reference.axe import axe_loss_reference

BATCH, VOCAB, BLANK, DELTA = 64, 1000, 0, 1.0
MAX_PEER_LENGTH = 128


def axe_loss_public_style(log_probs: torch.Tensor, targets: torch.Tensor, pred_lengths: torch.Tensor,
                          target_lengths: torch.Tensor, blank: int, delta: float) -> torch.Tensor:
    """Peer (a): per-sequence A[Ly_b, Lp_b] by the public implementation's scheme, with the
    recurrences of DESIGN.md §3.  The table A is (B, Ly + 1, Lp + 1); step d computes the cells
    i + j = d from rolled copies of the whole table and writes them back through a full-size
    masked update."""
    batch, pred_width, _ = log_probs.shape
    target_width = targets.shape[1]
    # G[b, i, j] = -log P_j(Y_i) and E[b, j] = -log P_j(blank), padded with a zero row and column.
    g = -log_probs.gather(2, targets[:, None, :].expand(batch, pred_width, target_width)).transpose(1, 2)
    g = F.pad(g, (1, 0, 1, 0))
    e = F.pad(-log_probs[:, :, blank], (1, 0))[:, None, :]
    border_row = e[:, 0].cumsum(-1)  # A[0, j]
    border_col = F.pad((delta * g[:, 1:, 1]).cumsum(-1), (1, 0))  # A[i, 0]
    table = torch.zeros(batch, target_width + 1, pred_width + 1, dtype=log_probs.dtype)
    table = table + border_row[:, None, :] * (torch.arange(target_width + 1) == 0)[None, :, None]
    table = table + border_col[:, :, None] * (torch.arange(pred_width + 1) == 0)[None, None, :]
    rows = torch.arange(target_width + 1)[:, None]
    cols = torch.arange(pred_width + 1)[None, :]
    for d in range(2, target_width + pred_width + 1):
        on_diagonal = ((rows + cols) == d) & (rows >= 1) & (cols >= 1)
        if not bool(on_diagonal.any()):
            continue
        # Three shifted copies of the whole table: A[i-1, j-1], A[i, j-1], A[i-1, j].
        shifted = torch.stack((table.roll((1, 1), (1, 2)), table.roll(1, 2), table.roll(1, 1)), -1)
        ii, jj = on_diagonal.nonzero(as_tuple=True)
        candidates = shifted[:, ii, jj] + torch.stack(
            (g[:, ii, jj], e[:, 0, jj], delta * g[:, ii, jj]), -1)
        best = candidates.min(-1).values
        update = torch.zeros_like(table)
        update[:, ii, jj] = best
        table = torch.where(on_diagonal, update, table)
    return table[torch.arange(batch), target_lengths, pred_lengths]


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def median_cpu_time(fn, repeats: int) -> float:
    """Median CPU time of the calling thread, for single-threaded runs: unlike wall-clock time it
    does not count the time the thread waits while other processes hold the cores."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.thread_time()
        fn()
        times.append(time.thread_time() - start)
    return statistics.median(times)


def make_inputs(length: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(BATCH, length, VOCAB, generator=gen)
    log_probs = logits.log_softmax(-1)
    targets = torch.randint(1, VOCAB, (BATCH, length), generator=gen)
    lengths = torch.full((BATCH,), length, dtype=torch.int64)
    return log_probs, targets, lengths


def forward_backward(loss_fn, log_probs):
    x = log_probs.detach().requires_grad_()
    loss_fn(x).sum().backward()
    return x.grad


def check_correctness(length: int) -> None:
    log_probs, targets, lengths = make_inputs(length, seed=length + 1)
    x = log_probs.double().requires_grad_()
    kernel = axe_loss(x, targets, lengths, lengths, blank=BLANK, skip_penalty=DELTA, reduction="none")
    kernel.sum().backward()
    y = log_probs.double().requires_grad_()
    ref = axe_loss_reference(y, targets, lengths, lengths, blank=BLANK, skip_penalty=DELTA)
    ref.sum().backward()
    torch.testing.assert_close(kernel, ref, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(x.grad, y.grad, rtol=0, atol=1e-12)
    if length <= MAX_PEER_LENGTH:
        public = axe_loss_public_style(log_probs.double(), targets, lengths, lengths, BLANK, DELTA)
        torch.testing.assert_close(public, ref, rtol=1e-12, atol=1e-9)
    kernel32 = axe_loss(log_probs, targets, lengths, lengths, blank=BLANK, skip_penalty=DELTA,
                        reduction="none")
    torch.testing.assert_close(kernel32.double(), ref, rtol=1e-5, atol=1e-3)


def run(lengths: list[int], repeats: int) -> list[dict]:
    rows = []
    for length in lengths:
        check_correctness(length)
        log_probs, targets, lens = make_inputs(length, seed=length)
        kernel = lambda lp: axe_loss(lp, targets, lens, lens, blank=BLANK, skip_penalty=DELTA,  # noqa: E731
                                     reduction="none")
        public = lambda lp: axe_loss_public_style(lp, targets, lens, lens, BLANK, DELTA)  # noqa: E731
        reference = lambda lp: axe_loss_reference(lp, targets, lens, lens, blank=BLANK,  # noqa: E731
                                                  skip_penalty=DELTA)
        # CTC: (T, B, V) log-probs; zero_infinity because Lp = Ly leaves no room for repeats.
        ctc_lp = log_probs.transpose(0, 1)
        ctc = lambda lp: F.ctc_loss(lp, targets, lens, lens, blank=BLANK, reduction="none",  # noqa: E731
                                    zero_infinity=True)
        with torch.no_grad():
            t_fwd = median_time(lambda: kernel(log_probs), repeats)
        t_kernel = median_time(lambda: forward_backward(kernel, log_probs), repeats)
        peer_repeats = max(3, repeats // 8)
        # The pure-PyTorch DPs take seconds per call beyond Lp = Ly = 128; the kernel-only rows
        # still show how its time grows with the table.
        slow_peers = length <= MAX_PEER_LENGTH
        t_public = median_time(lambda: forward_backward(public, log_probs), peer_repeats) if slow_peers else math.nan
        t_reference = (median_time(lambda: forward_backward(reference, log_probs), peer_repeats)
                       if slow_peers else math.nan)
        t_ctc = median_time(lambda: forward_backward(ctc, ctc_lp), repeats)
        rows.append(dict(Lp=length, Ly=length, B=BATCH, V=VOCAB, kernel_fwd_ms=1e3 * t_fwd,
                         kernel_ms=1e3 * t_kernel, public_style_ms=1e3 * t_public,
                         reference_ms=1e3 * t_reference, ctc_ms=1e3 * t_ctc,
                         speedup_vs_public=t_public / t_kernel, speedup_vs_reference=t_reference / t_kernel,
                         ctc_over_kernel=t_ctc / t_kernel))
        print_row(rows[-1])
    return rows


HEADER = (f"{'Lp=Ly':>6} {'kernel fwd':>11} {'kernel f+b':>11} {'(a) public':>11} {'reference':>10} "
          f"{'(b) ctc':>9} {'vs (a)':>8} {'vs ref':>7} {'ctc/kern':>9}")


def print_row(r: dict) -> None:
    def ms(value, width, digits):
        return f"{'-':>{width}}  " if math.isnan(value) else f"{value:>{width}.{digits}f}ms"

    def ratio(value, width):
        return f"{'-':>{width}} " if math.isnan(value) else f"{value:>{width}.1f}x"

    print(f"{r['Lp']:>6} {ms(r['kernel_fwd_ms'], 9, 2)} {ms(r['kernel_ms'], 9, 2)} "
          f"{ms(r['public_style_ms'], 9, 1)} {ms(r['reference_ms'], 8, 1)} {ms(r['ctc_ms'], 7, 2)} "
          f"{ratio(r['speedup_vs_public'], 7)} {ratio(r['speedup_vs_reference'], 6)} "
          f"{r['ctc_over_kernel']:>8.2f}x", flush=True)


def run_scaling(lengths: list[int], repeats: int) -> list[dict]:
    """Kernel only, one thread, CPU time: how the cost grows with the table size (Lp + 1)(Ly + 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    try:
        for length in lengths:
            log_probs, targets, lens = make_inputs(length, seed=length)
            kernel = lambda lp: axe_loss(lp, targets, lens, lens, blank=BLANK, skip_penalty=DELTA,  # noqa: E731
                                         reduction="none")
            with torch.no_grad():
                t_fwd = median_cpu_time(lambda: kernel(log_probs), repeats)
            t_kernel = median_cpu_time(lambda: forward_backward(kernel, log_probs), repeats)
            cells = BATCH * (length + 1) * (length + 1)
            rows.append(dict(Lp=length, Ly=length, cells=cells, fwd_ms=1e3 * t_fwd, fwd_bwd_ms=1e3 * t_kernel,
                             fwd_ns_per_cell=1e9 * t_fwd / cells, fwd_bwd_ns_per_cell=1e9 * t_kernel / cells))
            r = rows[-1]
            print(f"{length:>6} {cells:>10} {r['fwd_ms']:>9.2f}ms {r['fwd_bwd_ms']:>9.2f}ms "
                  f"{r['fwd_ns_per_cell']:>12.2f} {r['fwd_bwd_ns_per_cell']:>12.2f}", flush=True)
    finally:
        torch.set_num_threads(threads)
    return rows


def run_single_thread_ratios(length: int, repeats: int) -> dict:
    """Kernel against the peers at one size, one thread, median CPU time: a ratio that other
    processes on a shared machine cannot distort (wall-clock time with two threads can be, when one
    of the two threads waits for a core)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        log_probs, targets, lens = make_inputs(length, seed=length)
        kernel = lambda lp: axe_loss(lp, targets, lens, lens, blank=BLANK, skip_penalty=DELTA,  # noqa: E731
                                     reduction="none")
        public = lambda lp: axe_loss_public_style(lp, targets, lens, lens, BLANK, DELTA)  # noqa: E731
        ctc = lambda lp: F.ctc_loss(lp, targets, lens, lens, blank=BLANK, reduction="none",  # noqa: E731
                                    zero_infinity=True)
        t_kernel = median_cpu_time(lambda: forward_backward(kernel, log_probs), repeats)
        t_public = median_cpu_time(lambda: forward_backward(public, log_probs), max(3, repeats // 8))
        t_ctc = median_cpu_time(lambda: forward_backward(ctc, log_probs.transpose(0, 1)), repeats)
    finally:
        torch.set_num_threads(threads)
    row = dict(Lp=length, Ly=length, kernel_ms=1e3 * t_kernel, public_style_ms=1e3 * t_public,
               ctc_ms=1e3 * t_ctc, speedup_vs_public=t_public / t_kernel, ctc_over_kernel=t_ctc / t_kernel)
    print(f"\nOne thread, median CPU time, forward+backward at Lp = Ly = {length}: kernel {row['kernel_ms']:.2f}ms, "
          f"(a) public-style {row['public_style_ms']:.1f}ms ({row['speedup_vs_public']:.1f}x), "
          f"(b) ctc_loss {row['ctc_ms']:.2f}ms ({row['ctc_over_kernel']:.1f}x the kernel)", flush=True)
    return row


def _json_safe(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Lp = Ly in {32, 64} and fewer repeats")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: OMP_NUM_THREADS or 2)")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads or int(os.environ.get("OMP_NUM_THREADS", "2")))
    lengths = [32, 64] if args.quick else [32, 64, 128, 256]
    repeats = args.repeats or (8 if args.quick else 40)
    print(f"AXE loss forward+backward, B={BATCH}, V={VOCAB}, float32, threads={torch.get_num_threads()}, "
          f"torch {torch.__version__}; medians of {repeats} runs ({max(3, repeats // 8)} for the pure-PyTorch DPs)")
    print(HEADER)
    rows = run(lengths, repeats)
    scaling_lengths = [32, 64] if args.quick else [32, 64, 128, 256, 512]
    print(f"\nScaling: kernel alone, 1 thread, median CPU time of {repeats} runs (B={BATCH}, V={VOCAB})")
    print(f"{'Lp=Ly':>6} {'cells':>10} {'fwd':>11} {'fwd+bwd':>11} {'fwd ns/cell':>12} {'f+b ns/cell':>12}")
    scaling = run_scaling(scaling_lengths, repeats)
    single = run_single_thread_ratios(64, repeats)
    at64 = [r for r in rows if r["Lp"] == 64]
    if args.json:
        with open(args.json + ".tmp", "w") as f:
            json.dump(_json_safe(dict(threads=torch.get_num_threads(), torch=torch.__version__, rows=rows,
                                      scaling=scaling, single_thread_64=single)), f, indent=2)
        os.replace(args.json + ".tmp", args.json)
    if at64 and at64[0]["speedup_vs_public"] < 20:
        print(f"target missed: {at64[0]['speedup_vs_public']:.1f}x < 20x against (a) at Lp = Ly = 64",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
