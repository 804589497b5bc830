"""GPU checks beyond the test suite, run by tools/gpu_check.sh on a machine with a GPU.

    python tools/gpu_cases.py checks [--out DIR]     # numeric checks against the CPU, a table
    python tools/gpu_cases.py sanitize CASE          # one small case, for compute-sanitizer
    python tools/gpu_cases.py bench [--out DIR]      # the kernels on the GPU, peers and floors

``checks``: every op on a non-default stream (and on cuda:1 when there are two GPUs); AXE at
B = 512, L = 256 in float32 and bfloat16 against the CPU; AXE with B·Lp·V > 2^31 (bfloat16: the
64-bit gradient indexing); BLEU with B = 0; pairwise BLEU at the shared-memory limit (12,288
tokens), one past it, and past the opt-in limit.  Writes ``checks.md`` and ``checks.json`` into
``--out`` and exits 1 if any check fails.

``sanitize CASE`` runs one small case (``axe``: B = 3, Lp = 300, Ly = 280, float32; ``lap40``,
``lap256``; ``pairwise``; ``ragged``: every op with ragged lengths and garbage padding) and
synchronises, for ``compute-sanitizer --tool racecheck|synccheck|memcheck|initcheck``.
``bench``: medians of CUDA-event timings of AXE forward+backward against ``F.ctc_loss`` on CUDA
(the DP yardstick), LAP against the CPU op, sentence and pairwise BLEU against the CPU kernels,
each with its floor beside it: bytes the kernel must move over the bandwidth of a measured
device-to-device copy, and, for the DP, its number of dependent steps (Lp + Ly + 1 diagonals; the
B = 1 row gives the measured time per step).  Writes ``bench.md``/``bench.json``.
Without a GPU every mode prints one line and exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch


def _axe_case(batch, pred, target, vocab, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    log_probs = torch.randn(batch, pred, vocab, generator=g).log_softmax(-1).to(dtype)
    targets = torch.randint(0, vocab - 1, (batch, target), generator=g)
    pred_lengths = torch.randint(max(1, pred // 2), pred + 1, (batch,), generator=g)
    target_lengths = torch.randint(max(1, target // 2), target + 1, (batch,), generator=g)
    return (log_probs.to(device), targets.to(device), pred_lengths.to(device), target_lengths.to(device),
            vocab - 1)


def _axe_against_cpu(batch, pred, target, vocab, dtype, device="cuda", rtol=0.0):
    from mple_metrics.ops import axe_align, axe_loss

    lp, tg, pl, tl, blank = _axe_case(batch, pred, target, vocab, dtype, device)
    x = lp.clone().requires_grad_()
    loss = axe_loss(x, tg, pl, tl, blank=blank, skip_penalty=1.0, reduction="sum")
    loss.backward()
    xc = lp.cpu().clone().requires_grad_()
    loss_cpu = axe_loss(xc, tg.cpu(), pl.cpu(), tl.cpu(), blank=blank, skip_penalty=1.0, reduction="sum")
    loss_cpu.backward()
    same_loss = torch.allclose(loss.cpu().double(), loss_cpu.double(), rtol=max(rtol, 1e-6), atol=0)
    same_grad = torch.equal(x.grad.cpu(), xc.grad)
    same_align = torch.equal(axe_align(lp, tg, pl, tl, blank=blank).cpu(),
                             axe_align(lp.cpu(), tg.cpu(), pl.cpu(), tl.cpu(), blank=blank))
    return same_loss and same_grad and same_align, f"loss {float(loss.detach()):.6g} vs {float(loss_cpu.detach()):.6g}"


def _every_op(device: str, stream: torch.cuda.Stream | None) -> tuple[bool, str]:
    from mple_metrics.ops import axe_loss, linear_sum_assignment, oaxe_loss, pairwise_bleu, sentence_bleu

    context = torch.cuda.stream(stream) if stream is not None else torch.cuda.device(device)
    with context:
        lp, tg, pl, tl, blank = _axe_case(4, 20, 15, 30, torch.float32, device)
        a = axe_loss(lp, tg, pl, tl, blank=blank, reduction="none")
        cost = torch.rand(3, 12, 15, device=device, dtype=torch.float64)
        s = linear_sum_assignment(cost)
        o = oaxe_loss(lp[:, :15].contiguous(), tg, tl, reduction="none")
        cands = torch.randint(0, 5, (2, 3, 20), device=device)
        p = pairwise_bleu(cands)
        hyps = torch.randint(0, 5, (4, 20), device=device)
        refs = torch.randint(0, 5, (4, 2, 20), device=device)
        b = sentence_bleu(hyps, refs)
    if stream is not None:
        stream.synchronize()
    cpu = (axe_loss(lp.cpu(), tg.cpu(), pl.cpu(), tl.cpu(), blank=blank, reduction="none"),
           linear_sum_assignment(cost.cpu()), oaxe_loss(lp[:, :15].cpu().contiguous(), tg.cpu(), tl.cpu(),
                                                         reduction="none"),
           pairwise_bleu(cands.cpu()), sentence_bleu(hyps.cpu(), refs.cpu()))
    got = (a, s, o, p, b)
    ok = all(torch.allclose(g.cpu().double(), c.double(), rtol=1e-5, atol=1e-9) for g, c in zip(got, cpu))
    return ok, "axe, lap, oaxe, pairwise and sentence BLEU"


def checks(out: Path) -> int:
    from mple_metrics.ops import pairwise_bleu_stats, sentence_bleu

    rows = []

    def check(name, fn):
        start = time.perf_counter()
        try:
            ok, detail = fn()
        except Exception as error:  # a failed check is reported, not raised
            ok, detail = False, f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"
        rows.append({"check": name, "ok": bool(ok), "detail": detail,
                     "seconds": round(time.perf_counter() - start, 2)})
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}", flush=True)

    check("every op on a non-default stream", lambda: _every_op("cuda", torch.cuda.Stream()))
    if torch.cuda.device_count() > 1:
        check("every op on cuda:1", lambda: _every_op("cuda:1", None))
    check("AXE B=512 L=256 float32 vs CPU", lambda: _axe_against_cpu(512, 256, 256, 64, torch.float32))
    check("AXE B=512 L=256 bfloat16 vs CPU", lambda: _axe_against_cpu(512, 256, 256, 64, torch.bfloat16))
    check("AXE B*Lp*V > 2^31 bfloat16 (64-bit gradient indexing)",
          lambda: _axe_against_cpu(2, 1100, 60, 1_000_000, torch.bfloat16))

    def bleu_empty():
        out = sentence_bleu(torch.zeros(0, 5, dtype=torch.long, device="cuda"),
                            torch.zeros(0, 2, 5, dtype=torch.long, device="cuda"))
        return out.shape == (0,), f"shape {tuple(out.shape)}"

    check("BLEU with B = 0", bleu_empty)
    for width in (12_288, 12_289, 60_000):
        def pairwise(width=width):
            g = torch.Generator().manual_seed(width)
            cands = torch.randint(0, 6, (2, 3, width), generator=g)
            return torch.equal(pairwise_bleu_stats(cands.cuda()).cpu(), pairwise_bleu_stats(cands)), f"width {width}"
        check(f"pairwise BLEU at width {width}", pairwise)
    out.mkdir(parents=True, exist_ok=True)
    (out / "checks.json").write_text(json.dumps(rows, indent=1))
    lines = ["| check | result | detail | s |", "|---|---|---|---:|"]
    lines += [f"| {r['check']} | {'pass' if r['ok'] else '**FAIL**'} | {r['detail']} | {r['seconds']} |" for r in rows]
    (out / "checks.md").write_text("\n".join(lines) + "\n")
    return 0 if all(r["ok"] for r in rows) else 1


def sanitize(case: str) -> int:
    from mple_metrics.ops import axe_align, axe_loss, linear_sum_assignment, pairwise_bleu, sentence_bleu

    if case == "axe":
        lp, tg, pl, tl, blank = _axe_case(3, 300, 280, 50, torch.float32, "cuda")
        x = lp.clone().requires_grad_()
        axe_loss(x, tg, pl, tl, blank=blank, reduction="sum").backward()
        axe_align(lp, tg, pl, tl, blank=blank)
    elif case in ("lap40", "lap256"):
        n = 40 if case == "lap40" else 256
        linear_sum_assignment(torch.rand(4, n, n, device="cuda", dtype=torch.float64))
    elif case == "pairwise":
        pairwise_bleu(torch.randint(0, 5, (3, 4, 50), device="cuda"))
    elif case == "ragged":
        lp, tg, pl, tl, blank = _axe_case(5, 40, 30, 20, torch.float32, "cuda")
        lp = lp.masked_fill((torch.arange(40, device="cuda") >= pl[:, None]).unsqueeze(-1), float("nan"))
        tg = tg.masked_fill(torch.arange(30, device="cuda") >= tl[:, None], -7)
        axe_loss(lp, tg, pl, tl, blank=blank)
        hyps = torch.randint(0, 5, (4, 20), device="cuda")
        refs = torch.randint(0, 5, (4, 2, 20), device="cuda")
        sentence_bleu(hyps, refs, torch.tensor([20, 3, 0, 7], device="cuda"),
                      torch.tensor([[20, 1], [5, 0], [2, 2], [19, 20]], device="cuda"))
        cost = torch.rand(3, 10, 12, device="cuda", dtype=torch.float64)
        linear_sum_assignment(cost, torch.tensor([10, 4, 0], device="cuda"), torch.tensor([12, 9, 3], device="cuda"))
    else:
        print(f"unknown case {case!r}", file=sys.stderr)
        return 2
    torch.cuda.synchronize()
    return 0


def _cuda_ms(fn, repeats: int = 10) -> float:
    """Median milliseconds of ``fn`` by CUDA events (after two warm-up calls)."""
    import statistics

    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def bench(out: Path) -> int:
    import torch.nn.functional as F

    from mple_metrics.ops import axe_loss, linear_sum_assignment, pairwise_bleu, sentence_bleu

    big = torch.empty(256 * 1024 * 1024, dtype=torch.uint8, device="cuda")
    copy_ms = _cuda_ms(lambda: big.clone())
    bandwidth = 2 * big.numel() / (copy_ms / 1e3)  # bytes per second, read + write
    # The DP's latency floor: its Lp + Ly + 1 dependent diagonals; the B = 1 row measures the time per
    # diagonal (kernel ms / diagonals) that a latency-bound launch cannot go below.
    rows = []

    def row(name, ms, peer_name, peer_ms, floor_ms, floor_what):
        rows.append({"case": name, "ms": ms, "peer": peer_name, "peer_ms": peer_ms, "floor_ms": floor_ms,
                     "floor": floor_what})
        peer = f", {peer_name} {peer_ms:.3f} ms ({peer_ms / ms:.1f}x)" if peer_ms else ""
        print(f"{name}: {ms:.3f} ms{peer}; floor {floor_ms:.4f} ms ({floor_what})", flush=True)

    for batch, length, vocab in ((512, 64, 64), (512, 256, 64), (1, 256, 64)):
        lp, tg, pl, tl, blank = _axe_case(batch, length, length, vocab, torch.float32, "cuda")
        pl.fill_(length)
        tl.fill_(length)
        x = lp.clone().requires_grad_()
        kernel = _cuda_ms(lambda: axe_loss(x, tg, pl, tl, blank=blank, reduction="sum").backward())
        ctc_lp = lp.transpose(0, 1).detach().requires_grad_()
        ctc_targets = tg.clamp(max=vocab - 2)
        ctc = _cuda_ms(lambda: F.ctc_loss(ctc_lp, ctc_targets, pl, tl, blank=blank, reduction="sum",
                                          zero_infinity=True).backward())
        moved = batch * length * length * 2 * 4 + batch * length * vocab * 4 * 2  # G and E reads, grad write
        floor = max(moved / bandwidth * 1e3, 0.0)
        row(f"AXE fwd+bwd B={batch} L={length} V={vocab} float32", kernel, "F.ctc_loss (CUDA)", ctc, floor,
            f"{moved / 1e6:.1f} MB at {bandwidth / 1e9:.0f} GB/s; {2 * length + 1} dependent diagonals")
    for n in (64, 256):
        cost = torch.rand(64, n, n, device="cuda", dtype=torch.float64)
        gpu = _cuda_ms(lambda: linear_sum_assignment(cost))
        import time
        start = time.perf_counter()
        linear_sum_assignment(cost.cpu())
        cpu = (time.perf_counter() - start) * 1e3
        row(f"LAP B=64 N={n} float64", gpu, "CPU op", cpu, cost.numel() * 8 / bandwidth * 1e3,
            "one read of the costs")
    hyps = torch.randint(0, 50, (4096, 40), device="cuda")
    refs = torch.randint(0, 50, (4096, 3, 40), device="cuda")
    gpu = _cuda_ms(lambda: sentence_bleu(hyps, refs))
    import time
    start = time.perf_counter()
    sentence_bleu(hyps.cpu(), refs.cpu())
    row("sentence BLEU B=4096 L=40 3 refs", gpu, "CPU kernel", (time.perf_counter() - start) * 1e3,
        (hyps.numel() + refs.numel()) * 8 / bandwidth * 1e3, "one read of the ids")
    cands = torch.randint(0, 50, (1024, 5, 40), device="cuda")
    gpu = _cuda_ms(lambda: pairwise_bleu(cands))
    start = time.perf_counter()
    pairwise_bleu(cands.cpu())
    row("pairwise BLEU B=1024 K=5 L=40", gpu, "CPU kernel", (time.perf_counter() - start) * 1e3,
        cands.numel() * 8 / bandwidth * 1e3, "one read of the ids")
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps({"copy_bandwidth_gb_s": bandwidth / 1e9, "rows": rows}, indent=1))
    lines = ["| case | ms | peer | peer ms | floor ms | floor from |", "|---|---:|---|---:|---:|---|"]
    lines += [f"| {r['case']} | {r['ms']:.3f} | {r['peer']} | {r['peer_ms']:.3f} | {r['floor_ms']:.4f} | {r['floor']} |"
              for r in rows]
    (out / "bench.md").write_text("\n".join(lines) + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("checks", "sanitize", "bench"))
    parser.add_argument("case", nargs="?", default=None)
    parser.add_argument("--out", default="gpu-check-out")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no GPU: nothing to check")
        return 0
    if args.mode == "bench":
        return bench(Path(args.out))
    return checks(Path(args.out)) if args.mode == "checks" else sanitize(args.case or "")


if __name__ == "__main__":
    sys.exit(main())
