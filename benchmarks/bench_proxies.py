"""Training-step time of every proxy target against the MLE step, on the same ``tiny`` NAT and the
same batches (bundled-corpus sentences, word tokenizer), with where the time goes.

A step is what the trainer does per update: the proxy's ``prepare`` (dynamic KD: the no-gradient
pass over all candidates), the decoder pass, the loss, backward, clipping and the AdamW update.
Each method starts from the same initial weights and runs the same batches; the timed quantity is
the median over steps of the per-step wall time (repeated ``--repeats`` times, median of medians).
Targets (2 CPU threads): AXE <= 1.15x MLE, OaXE <= 1.3x, dynamic KD with 3 candidates <= 2x; proxy
inputs CMLM <= 1.05x, GLAT (two passes) <= 1.5x, each measured without the input predictor's head
(its training adds a vanilla decoder pass to CMLM: reported in its own row).  Also the decoding
throughput of Input Sampling against default decoding, and the cost of noisy parallel decoding
(an AT reranking the length-beam candidates).

Correctness first: on the first batch every method's loss is checked against an independent
computation (MLE: float64 NLL; AXE with a huge skip penalty: the MLE loss; OaXE: the NLL of its own
proxy target; dynamic KD: the NLL of the chosen candidate).

    python benchmarks/bench_proxies.py [--sentences 2000] [--steps 20] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import copy
from dataclasses import replace
import json
import platform
import statistics
import time

import numpy as np
import torch

from mple_metrics.data import BatchIterator, EncodedSplit, TokenizerPair, collate, load_bundled
from mple_metrics.models import ModelConfig, NATModel, build_model
from mple_metrics.decode import DecodeOptions, generate
from mple_metrics.proxies import (AXETarget, DynamicKDTarget, InputProxy, OaXETarget, RawTarget, TargetProxy,
                                  candidate_pairwise_bleu, input_generator, make_input_proxy, sequence_nll)
from mple_metrics.train import length_loss

TARGETS = {"axe (τ=1)": 1.15, "axe (τ=10)": 1.15, "oaxe": 1.3, "dynamic-kd (3 candidates)": 2.0,
           "cmlm": 1.05, "glat": 1.5}


def perturbed(text: str, rng: np.random.Generator, kind: int) -> str:
    """A stand-in teacher output: the reference with one word dropped (kind 0) or two swapped (1)."""
    words = text.split()
    if len(words) > 2:
        i = int(rng.integers(len(words) - 1))
        if kind == 0:
            words = words[:i] + words[i + 1:]
        else:
            words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def setup(sentences: int, seed: int = 0):
    train = load_bundled()["train"]
    src, tgt = train.src[:sentences], train.tgt[:sentences]
    tokenizers = TokenizerPair.train(src, tgt, kind="word", vocab_size=4000)
    rng = np.random.default_rng(seed)
    texts = [[perturbed(t, rng, 0), perturbed(t, rng, 1), t] for t in tgt]
    encoded = EncodedSplit(tokenizers.src.encode_batch(src), tokenizers.tgt.encode_batch(tgt))
    keep = [i for i in range(len(encoded)) if 0 < len(encoded.src[i]) <= 255 and 0 < len(encoded.tgt[i]) <= 255]
    encoded = EncodedSplit([encoded.src[i] for i in keep], [encoded.tgt[i] for i in keep])
    texts = [texts[i] for i in keep]
    candidates = [[tokenizers.tgt.encode(c) for c in row] for row in texts]
    config = ModelConfig.preset("tiny", kind="nat", src_vocab_size=tokenizers.src.vocab_size,
                                tgt_vocab_size=tokenizers.tgt.vocab_size, share_embeddings=tokenizers.joint)
    torch.manual_seed(seed)
    model = NATModel(config)
    return encoded, candidates, texts, model


def make_proxies(candidates, texts) -> dict[str, tuple[TargetProxy, InputProxy | None]]:
    pairwise = candidate_pairwise_bleu(texts)
    return {"mle": (RawTarget(), None), "axe (τ=1)": (AXETarget(1.0), None), "axe (τ=10)": (AXETarget(10.0), None),
            "oaxe": (OaXETarget(), None),
            "dynamic-kd (3 candidates)": (DynamicKDTarget({"train": candidates}, {"train": pairwise}), None),
            "cmlm": (RawTarget(), make_input_proxy("cmlm")),
            "cmlm + input-predictor head": (RawTarget(), make_input_proxy("cmlm", train_mask_head=True)),
            "glat": (RawTarget(), make_input_proxy("glat")),
            "glat + input-predictor head": (RawTarget(), make_input_proxy("glat", train_mask_head=True))}


def one_step(model, optimizer, method: tuple[TargetProxy, InputProxy | None], batch, phases: dict[str, float],
             step: int = 0) -> float:
    proxy, inputs = method
    start = time.perf_counter()
    batch = proxy.prepare(model, batch, "train")
    if inputs is not None:
        batch = inputs.sample(model, batch, input_generator(0, step, batch.indices, "cpu"))
    t1 = time.perf_counter()
    out = proxy.forward(model, batch)
    t2 = time.perf_counter()
    loss, tokens = proxy.loss(batch, out, 0.1)
    loss = loss / tokens + 0.1 * length_loss(out.length_logits, model.length_targets(batch.src_lengths,
                                                                                    out.pred_lengths)) / len(batch)
    if out.mask_logits is not None:
        from mple_metrics.train import mask_head_loss
        loss = loss + mask_head_loss(out.mask_logits, batch.hidden, batch.tgt_lengths) / batch.num_tokens
    t3 = time.perf_counter()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    end = time.perf_counter()
    for name, seconds in (("prepare", t1 - start), ("forward", t2 - t1), ("loss", t3 - t2), ("backward+update", end - t3)):
        phases[name] = phases.get(name, 0.0) + seconds
    return end - start


@torch.no_grad()
def check(model, proxies, batch) -> None:
    """Each loss against an independent computation on the first batch."""
    model = copy.deepcopy(model).eval()
    proxies = {name: method[0] for name, method in proxies.items()}
    mle = proxies["mle"]
    out = mle.forward(model, batch)
    loss, _ = mle.loss(batch, out, 0.0)
    nll = sequence_nll(out.log_probs.double(), batch.tgt, batch.tgt_lengths).sum()
    assert abs(float(loss) - float(nll)) <= 1e-4 * float(nll), ("mle", float(loss), float(nll))
    huge = AXETarget(1e6)
    assert abs(float(huge.loss(batch, out, 0.0)[0]) - float(loss)) <= 1e-4 * float(loss), "axe(huge) != mle"
    oaxe = proxies["oaxe"]
    value = float(oaxe.loss(batch, out, 0.0)[0])
    assert abs(value - float(sequence_nll(out.log_probs, oaxe.proxy_target(batch, out), batch.tgt_lengths).sum())) \
        <= 1e-4 * value, "oaxe"
    dkd = proxies["dynamic-kd (3 candidates)"]
    chosen = dkd.prepare(model, batch)
    out = dkd.forward(model, chosen)
    value = float(dkd.loss(chosen, out, 0.0)[0])
    assert abs(value - float(sequence_nll(out.log_probs, dkd.proxy_target(chosen, out), out.pred_lengths).sum())) \
        <= 1e-4 * value, "dynamic-kd"


def decoding_throughput(model, encoded, sentences: int = 512, repeats: int = 3) -> dict[str, float]:
    """Sentences/s of default decoding and of Input Sampling (the same untrained model as its own
    predictor; speed does not depend on the weights), median of ``repeats``."""
    from mple_metrics.data import pad_sequences

    model = copy.deepcopy(model).eval()
    src, lengths = pad_sequences(encoded.src[:sentences])
    out = {"sentences": len(lengths)}
    at = build_model(replace(model.config, kind="at")).eval()  # an AT of the same size: the NPD reranker
    for name, options, reranker in (
            ("default", DecodeOptions(), None),
            ("input-sampling", DecodeOptions(strategy="input-sampling"), None),
            ("input-sampling x4", DecodeOptions(strategy="input-sampling", samples=4), None),
            ("length beam 3", DecodeOptions(length_beam=3), None),
            ("length beam 3 + NPD", DecodeOptions(length_beam=3), at)):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            generate(model, src, lengths, options, input_predictor=model, reranker=reranker)
            times.append(time.perf_counter() - start)
        out[name] = len(lengths) / statistics.median(times)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=4096)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    encoded, candidates, texts, initial = setup(args.sentences)
    proxies = make_proxies(candidates, texts)
    iterator = BatchIterator(encoded, max_tokens=args.max_tokens, shuffle=True, seed=1)
    iterator.set_epoch(0)
    batches = [collate(encoded, indices) for indices in iterator.batch_indices()[:args.steps]]
    check(initial, proxies, batches[0])
    results = {}
    for name, proxy in proxies.items():
        medians, phases = [], {}
        for _ in range(args.repeats):
            model = copy.deepcopy(initial).train()
            torch.manual_seed(0)
            optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4)
            one_step(model, optimizer, proxy, batches[0], {})  # warm-up (allocator, kernels)
            medians.append(statistics.median(one_step(model, optimizer, proxy, b, phases, step)
                                             for step, b in enumerate(batches)))
        total = sum(phases.values())
        results[name] = {"step_ms": 1e3 * statistics.median(medians),
                         "phases": {k: round(v / total, 3) for k, v in phases.items()}}
    base = results["mle"]["step_ms"]
    print(f"proxy training step, tiny NAT, {len(batches)} batches of <= {args.max_tokens} tokens, "
          f"{torch.get_num_threads()} threads; median ms per step")
    print(f"{'method':<28}{'ms/step':>10}{'× MLE':>8}{'target':>9}  time: prepare / forward / loss / backward+update")
    ok = True
    for name, r in results.items():
        ratio = r["step_ms"] / base
        r["ratio"] = ratio
        target = TARGETS.get(name)
        met = target is None or ratio <= target
        ok &= met
        p = r["phases"]
        print(f"{name:<28}{r['step_ms']:>10.1f}{ratio:>8.2f}{(f'<= {target}' if target else ''):>9}  "
              f"{p['prepare']:.0%} / {p['forward']:.0%} / {p['loss']:.0%} / {p['backward+update']:.0%}"
              f"{'' if met else '  (target missed)'}")
    decoding = decoding_throughput(initial, encoded)
    print(f"decoding, {decoding['sentences']} sentences: default {decoding['default']:.0f} sent/s, "
          f"Input Sampling (1 sample) {decoding['input-sampling']:.0f} sent/s "
          f"({decoding['default'] / decoding['input-sampling']:.2f}x slower), 4 samples "
          f"{decoding['input-sampling x4']:.0f} sent/s; length beam 3 {decoding['length beam 3']:.0f} sent/s, "
          f"with NPD (a tiny AT reranks) {decoding['length beam 3 + NPD']:.0f} sent/s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"results": results, "decoding_sentences_per_second": decoding, "threads": torch.get_num_threads(), "machine": platform.platform(),
                       "batches": len(batches)}, handle, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
