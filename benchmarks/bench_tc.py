"""Scoring throughput of the C estimator against a plain loop.

The estimator's scoring pass (``mple_metrics.estimators.scoring.score_encoded``) against the
simplest correct loop a user would write: the same length-bucketed batches, the model called
directly, ``log_softmax``, a gather of the target log-probabilities and a per-sentence sum (the
AT with its ``</s>`` term, the NAT with its length predictor: the ``include`` convention).
Correctness first: both must give the same per-sentence NLLs.  Then the median of --repeats timed
runs of each, interleaved, on the bundled test split (the corpus' tokenizer, untrained models:
throughput does not depend on the weights).  Target: ours <= 1.1x the loop's time.

    python benchmarks/bench_tc.py [--size tiny] [--repeats 5] [--max-tokens 4096] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from mple_metrics.data import BatchIterator, EncodedSplit, TokenizerPair, load_bundled
from mple_metrics.estimators.scoring import score_encoded
from mple_metrics.models import ATModel, ModelConfig, build_model, teacher_forcing

TARGET_RATIO = 1.1


@torch.no_grad()
def plain_loop(model, encoded: EncodedSplit, max_tokens: int) -> np.ndarray:
    out = np.zeros(len(encoded))
    for batch in BatchIterator(encoded, max_tokens=max_tokens, shuffle=False, drop_uneven=False):
        width = batch.tgt.shape[1]
        if isinstance(model, ATModel):
            logits = model(batch.src, batch.src_lengths, batch.tgt, batch.tgt_lengths)
            _, outputs = teacher_forcing(batch.tgt, batch.tgt_lengths)
            logp = F.log_softmax(logits.float(), dim=-1).gather(-1, outputs.unsqueeze(-1)).squeeze(-1)
            mask = torch.arange(width + 1)[None, :] <= batch.tgt_lengths[:, None]
            nll = -(logp * mask).double().sum(1)
        else:
            result = model(batch.src, batch.src_lengths, batch.tgt_lengths)
            logp = F.log_softmax(result.logits.float(), dim=-1).gather(-1, batch.tgt.unsqueeze(-1)).squeeze(-1)
            mask = torch.arange(width)[None, :] < batch.tgt_lengths[:, None]
            nll = -(logp * mask).double().sum(1)
            length_logits = model.length_logits(model.encode(batch.src, batch.src_lengths))
            nll = nll + F.cross_entropy(length_logits.float(), model.length_targets(batch.src_lengths,
                                                                                   batch.tgt_lengths),
                                        reduction="none").double()
        out[batch.indices.numpy()] = (nll / math.log(2)).numpy()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=4096)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    data = load_bundled()
    tokenizers = TokenizerPair.train(data.train.src, data.train.tgt, kind="spm", vocab_size=8000)
    encoded = EncodedSplit.encode(data.test, tokenizers)
    rows = []
    for kind in ("at", "nat"):
        torch.manual_seed(0)
        config = ModelConfig.preset(args.size, kind=kind, src_vocab_size=tokenizers.src.vocab_size,
                                    tgt_vocab_size=tokenizers.tgt.vocab_size, share_embeddings=True,
                                    dropout=0.0)
        model = build_model(config).eval()
        ours = score_encoded(model, encoded, "include", args.max_tokens)
        reference = plain_loop(model, encoded, args.max_tokens)
        if not np.allclose(ours, reference, rtol=1e-6, atol=1e-6):
            print(f"{kind}: scores differ from the plain loop (max |diff| "
                  f"{np.abs(ours - reference).max():.3g} bits)", file=sys.stderr)
            return 1
        times = {"ours": [], "loop": []}
        for _ in range(args.repeats):
            for name, run in (("ours", lambda: score_encoded(model, encoded, "include", args.max_tokens)),
                              ("loop", lambda: plain_loop(model, encoded, args.max_tokens))):
                started = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - started)
        ours_s, loop_s = statistics.median(times["ours"]), statistics.median(times["loop"])
        rows.append({"model": f"{kind}-{args.size}", "sentences": len(encoded),
                     "ours_sentences_per_s": len(encoded) / ours_s, "loop_sentences_per_s": len(encoded) / loop_s,
                     "ratio_time_ours_over_loop": ours_s / loop_s, "target": TARGET_RATIO,
                     "meets_target": ours_s / loop_s <= TARGET_RATIO})
        print(f"{kind}-{args.size}: ours {rows[-1]['ours_sentences_per_s']:.0f} sent/s, plain loop "
              f"{rows[-1]['loop_sentences_per_s']:.0f} sent/s, time ratio {ours_s / loop_s:.3f} "
              f"(target <= {TARGET_RATIO}; median of {args.repeats}, {torch.get_num_threads()} threads)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"rows": rows, "threads": torch.get_num_threads(), "machine": platform.machine(),
                       "torch": torch.__version__}, handle, indent=1)
    return 0 if all(r["meets_target"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
