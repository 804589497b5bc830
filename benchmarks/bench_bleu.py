"""Sentence and pairwise BLEU on token ids: our batched kernel against sacrebleu's fastest path.

Peer: one reused ``sacrebleu.BLEU(tokenize='none', effective_order=True)`` object and its
``sentence_score`` on pre-built id strings (the peer's best input format).  Ours: one call on padded
tensors; the list-input path (which includes padding the Python lists) is timed too.  Correctness is
checked first on every pair.  Reports medians and the throughput ratio, on 2 CPU threads.

    python benchmarks/bench_bleu.py [--pairs 10000] [--sources 2000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np
import sacrebleu
import torch

from mple_metrics.ops import pairwise_bleu, sentence_bleu
from mple_metrics.ops.bleu import prepare_bleu_batch
from mple_metrics.ops.reference.bleu import ids_to_text

TARGET_RATIO = 100.0


def noisy_copy(rng, base: np.ndarray, vocab: int, length: int) -> np.ndarray:
    out = rng.integers(0, vocab, size=length)
    keep = min(length, len(base))
    mask = rng.random(keep) < 0.7
    out[:keep][mask] = base[:keep][mask]
    return out


def make_pairs(rng, pairs: int, num_refs: int, vocab: int, mean_len: int):
    hyps, refs = [], []
    for _ in range(pairs):
        hyp = rng.integers(0, vocab, size=max(1, int(rng.normal(mean_len, 4))))
        hyps.append(hyp.tolist())
        refs.append([noisy_copy(rng, hyp, vocab, max(1, int(rng.normal(mean_len, 4)))).tolist()
                     for _ in range(num_refs)])
    return hyps, refs


DEVICE = torch.device("cpu")


def median_seconds(fn, repeats: int) -> float:
    """Median wall time of fn(); device work is synchronised before the clock is read."""
    fn()  # warm-up: first-call dispatch and allocations stay out of the numbers
    times = []
    for _ in range(repeats):
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_sentence(rng, pairs: int, num_refs: int, repeats: int) -> dict:
    hyps, refs = make_pairs(rng, pairs, num_refs, vocab=8000, mean_len=25)
    hyp_text = [ids_to_text(h) for h in hyps]
    ref_text = [[ids_to_text(r) for r in row] for row in refs]
    peer = sacrebleu.BLEU(tokenize="none", effective_order=True)
    tensors = [t.to(DEVICE) for t in prepare_bleu_batch(hyps, refs)]

    def run_peer():
        return [peer.sentence_score(h, r).score for h, r in zip(hyp_text, ref_text)]

    def run_ours():
        return torch.ops.mple.bleu_from_stats(torch.ops.mple.bleu_stats(*tensors), True)

    want, got = torch.tensor(run_peer(), dtype=torch.float64), run_ours().cpu()
    assert torch.allclose(got, want, rtol=0, atol=1e-9), "sentence BLEU differs from sacrebleu"
    assert torch.equal(sentence_bleu(hyps, refs), got)
    peer_s = median_seconds(run_peer, max(1, repeats // 5))
    ours_s = median_seconds(run_ours, repeats)
    lists_s = median_seconds(lambda: sentence_bleu(hyps, refs), repeats)
    return {"case": f"sentence BLEU, {pairs} pairs, {num_refs} ref(s), ~25 tokens",
            "sacrebleu_s": peer_s, "ours_s": ours_s, "ours_list_input_s": lists_s,
            "ratio": peer_s / ours_s, "ratio_list_input": peer_s / lists_s}


def bench_pairwise(rng, sources: int, k: int, repeats: int) -> dict:
    cands = []
    for _ in range(sources):
        base = rng.integers(0, 8000, size=25)
        cands.append([noisy_copy(rng, base, 8000, max(1, int(rng.normal(25, 4)))).tolist() for _ in range(k)])
    texts = [[ids_to_text(c) for c in row] for row in cands]
    width = max(len(c) for row in cands for c in row)
    padded = torch.zeros(sources, k, width, dtype=torch.int64)
    lengths = torch.zeros(sources, k, dtype=torch.int64)
    for b, row in enumerate(cands):
        for i, c in enumerate(row):
            padded[b, i, :len(c)] = torch.tensor(c)
            lengths[b, i] = len(c)
    peer = sacrebleu.BLEU(tokenize="none", effective_order=True)

    def run_peer():
        return [[[peer.sentence_score(row[i], [row[j]]).score for j in range(k)] for i in range(k)]
                for row in texts]

    padded, lengths = padded.to(DEVICE), lengths.to(DEVICE)

    def run_ours():
        return pairwise_bleu(padded, lengths)

    want, got = torch.tensor(run_peer(), dtype=torch.float64), run_ours().cpu()
    assert torch.allclose(got, want, rtol=0, atol=1e-9), "pairwise BLEU differs from sacrebleu"
    peer_s = median_seconds(run_peer, max(1, repeats // 5))
    ours_s = median_seconds(run_ours, repeats)
    return {"case": f"pairwise BLEU, K={k} over {sources} sources ({sources * k * k} pairs)",
            "sacrebleu_s": peer_s, "ours_s": ours_s, "ratio": peer_s / ours_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--sources", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="device for our kernels (cpu or cuda)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = [bench_sentence(rng, args.pairs, 1, args.repeats),
            bench_sentence(rng, args.pairs, 4, args.repeats),
            bench_pairwise(rng, args.sources, 5, args.repeats)]
    where = torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda" else f"{args.threads} CPU threads"
    print(f"\nBLEU on token ids, ours on {where}, sacrebleu on 1 CPU thread, torch {torch.__version__}, "
          f"sacrebleu {sacrebleu.__version__}, {platform.processor() or platform.machine()}")
    print(f"{'case':58s} {'sacrebleu':>11s} {'ours':>10s} {'ratio':>8s}  target (throughput ratio)")
    for row in rows:
        verdict = "met" if row["ratio"] >= TARGET_RATIO else "MISSED"
        print(f"{row['case']:58s} {row['sacrebleu_s'] * 1e3:9.1f}ms {row['ours_s'] * 1e3:8.2f}ms "
              f"{row['ratio']:7.0f}x  >= {TARGET_RATIO:.0f}x {verdict}")
        if "ours_list_input_s" in row:
            print(f"{'  same, from Python lists (padding included)':58s} {'':11s} "
                  f"{row['ours_list_input_s'] * 1e3:8.2f}ms {row['ratio_list_input']:7.0f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": str(DEVICE), "threads": args.threads, "torch": torch.__version__,
                       "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
