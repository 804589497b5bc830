"""Time of a proxy-metrics pass (``mple estimate mple`` without decoding) against a plain loop.

On the bundled valid split (1,200 sentences, 4 references each) with a ``tiny`` NAT (word
tokenizer, one training update: speed does not depend on the weights), for the raw target:

* ours: :func:`mple_metrics.estimators.proxy_metrics` (L_NAT, L_target against the extra
  references with the BLEU kernels, bootstrap intervals), ``decode_bleu=False``;
* the plain loop: the same batched model forward + ``log_softmax`` + gather for L_NAT, and
  ``sacrebleu.sentence_bleu`` per (T, reference) pair for L_target.

Correctness first: both give the same L_NAT (to 1e-6 relative) and L_target (to 1e-9).  Target:
ours >= 5x faster than the loop, the time dominated by the model, not by BLEU.  Medians of
``--repeats``.  The script also times the two halves of the loop (model, sacrebleu): both sides run
the same model pass, so the whole-pass ratio cannot exceed (model + sacrebleu) / model; the
BLEU half is compared on its own.

    python benchmarks/bench_estimate.py [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import sacrebleu
import torch
import torch.nn.functional as F

from mple_metrics.data import BatchIterator, EncodedSplit, load_bundled
from mple_metrics.estimators import ProxyMetricSettings, proxy_metrics
from mple_metrics.models import load_model
from mple_metrics.train import TrainConfig, Trainer

TARGET_RATIO = 5.0


def make_checkpoint(directory: Path) -> Path:
    out = directory / "nat"
    Trainer(TrainConfig(data="bundled", out=str(out), model="nat", size="tiny", tokenizer_kind="word",
                        vocab_size=8000, max_steps=1, valid_bleu=False, quiet=True, keep_best=1)).train()
    return out / "last.pt"


def plain_loop(checkpoint: Path, beta: float = 0.2, halves: dict | None = None) -> tuple[float, float]:
    model, tokenizers, _ = load_model(checkpoint)
    valid = load_bundled()["valid"]
    encoded = EncodedSplit(tokenizers.src.encode_batch(valid.src), tokenizers.tgt.encode_batch(valid.tgt))
    total, tokens = 0.0, 0
    start = time.perf_counter()
    with torch.no_grad():
        for batch in BatchIterator(encoded, max_tokens=4096, shuffle=False, drop_uneven=False):
            logp = F.log_softmax(model(batch.src, batch.src_lengths, batch.tgt_lengths).logits.float(), dim=-1)
            nll = -logp.gather(-1, batch.tgt.unsqueeze(-1)).squeeze(-1)
            keep = batch.tgt != 0
            total += float(nll[keep].double().sum())
            tokens += int(keep.sum())
    middle = time.perf_counter()
    bleu = [np.mean([sacrebleu.sentence_bleu(t, [r]).score for r in refs[1:]]) for t, refs in
            zip(valid.tgt, valid.refs)]
    if halves is not None:
        halves.setdefault("model", []).append(middle - start)
        halves.setdefault("sacrebleu", []).append(time.perf_counter() - middle)
    return total / tokens / math.log(2.0), -beta * float(np.mean(bleu))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = make_checkpoint(Path(tmp))
        settings = ProxyMetricSettings(decode_bleu=False, n_resamples=1000)
        ours_times, loop_times, halves, kernel_bleu = [], [], {}, []
        valid = load_bundled()["valid"]
        from mple_metrics.metrics import BLEU
        for _ in range(args.repeats):
            start = time.perf_counter()
            metric = BLEU(tokenize="13a")
            metric.batch_sentence_scores([t for t, refs in zip(valid.tgt, valid.refs) for _ in refs[1:]],
                                         [[r] for refs in valid.refs for r in refs[1:]])
            kernel_bleu.append(time.perf_counter() - start)
            start = time.perf_counter()
            ours = proxy_metrics(checkpoint, "bundled", settings)
            ours_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            loop_nll, loop_target = plain_loop(checkpoint, halves=halves)
            loop_times.append(time.perf_counter() - start)
        assert abs(ours["l_nat_bits_per_token"] - loop_nll) <= 1e-6 * loop_nll, (ours["l_nat_bits_per_token"], loop_nll)
        assert abs(ours["l_target"] - loop_target) <= 1e-9, (ours["l_target"], loop_target)
    t_ours, t_loop = statistics.median(ours_times), statistics.median(loop_times)
    ratio = t_loop / t_ours
    print(f"proxy metrics, bundled valid ({ours['n_sentences']} sentences, 2 extra references each), tiny NAT, "
          f"{torch.get_num_threads()} threads")
    print(f"ours {t_ours:.2f} s (incl. 1000 bootstrap resamples)   plain loop {t_loop:.2f} s   "
          f"ratio {ratio:.1f}x (target >= {TARGET_RATIO:g}x){'' if ratio >= TARGET_RATIO else '  (target missed)'}")
    model_s, sacre_s, kernel_s = (statistics.median(halves["model"]), statistics.median(halves["sacrebleu"]),
                                  statistics.median(kernel_bleu))
    print(f"the loop's halves: model {model_s:.2f} s, sacrebleu {sacre_s:.2f} s -> the most any method sharing the "
          f"model pass can gain is {(model_s + sacre_s) / model_s:.1f}x")
    print(f"BLEU alone (2,400 pairs, 13a): kernels {kernel_s:.2f} s vs sacrebleu {sacre_s:.2f} s = "
          f"{sacre_s / kernel_s:.1f}x (the kernels' time is mostly sacrebleu's own 13a tokenizer)")
    if args.json:
        Path(args.json).write_text(json.dumps({"ours_s": t_ours, "loop_s": t_loop, "ratio": ratio, "loop_model_s": model_s,
                                               "loop_sacrebleu_s": sacre_s, "kernel_bleu_s": kernel_s}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
