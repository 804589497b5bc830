"""Trainer overhead and decoding throughput.

1. Training: ``Trainer.train()`` for N updates against a minimal hand-written PyTorch loop (the
   floor of overhead) over the same model, the same batches in the same order, the same optimizer,
   schedule and loss.  Correctness first: both must end with the same parameters.  The trainer's
   time includes everything it does (collation, logging, progress accounting, its final validation
   on a small valid split and its checkpoint writes).  Target: trainer time <= 1.15x the loop's.
2. Decoding: sentences/s of NAT argmax (and LPD with 3 lengths) against AT greedy and beam 5 on the
   same sources and model size.  With ``--at-ckpt``/``--nat-ckpt`` (trained runs of one size) on
   the bundled valid split; without, untrained models whose outputs are held to the source length
   (special ids forbidden; AT: max length = source length; NAT: length = source length), so both
   emit the same number of tokens.

    python benchmarks/bench_trainer.py [--size tiny] [--steps 30] [--repeats 3]
        [--at-ckpt RUN --nat-ckpt RUN] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mple_metrics.data import BatchIterator, Split, load_bundled, write_dataset
from mple_metrics.decode import DecodeOptions, generate, translate_encoded
from mple_metrics.models import ModelConfig, build_model, teacher_forcing
from mple_metrics.train import TrainConfig, Trainer, inverse_sqrt_lr, load_model, set_lr, smoothed_token_loss

TARGET_RATIO = 1.15


def synthetic_dataset(directory: Path, n_train: int, seed: int = 0) -> Path:
    """Word-level pairs with bundled-corpus-like lengths (mean ~25 words), written as a dataset."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(2000)]

    def sentences(n: int) -> tuple[list[str], list[str]]:
        src, tgt = [], []
        for _ in range(n):
            length = int(np.clip(rng.normal(25, 7), 3, 60))
            s = rng.choice(words, size=length)
            src.append(" ".join(s))
            tgt.append(" ".join(rng.choice(words, size=max(2, length + int(rng.integers(-3, 4))))))
        return src, tgt

    write_dataset(directory, {"train": Split("train", *sentences(n_train)), "valid": Split("valid", *sentences(16))})
    return directory


def trainer_config(data: Path, out: Path, size: str, steps: int) -> TrainConfig:
    return TrainConfig(data=str(data), out=str(out), model="at", size=size, tokenizer_kind="word",
                       vocab_size=4000, max_tokens=4096, max_steps=steps, valid_every_steps=10 ** 9,
                       keep_best=1, patience=0, log_every=10, quiet=True, seed=3, warmup_steps=100)


def minimal_loop(config: TrainConfig, trainer: Trainer, steps: int) -> tuple[float, dict]:
    """The floor: model, AdamW, label-smoothed CE, clipping and the schedule, nothing else."""
    torch.manual_seed(config.seed)
    model = build_model(trainer.model_config)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=config.betas, eps=config.adam_eps,
                                  weight_decay=config.weight_decay)
    batches = BatchIterator(trainer.train_batches.encoded, max_tokens=config.max_tokens, seed=config.seed)
    batches.set_epoch(0)
    start = time.perf_counter()
    for step, batch in enumerate(batches, start=1):
        _, outputs = teacher_forcing(batch.tgt, batch.tgt_lengths)
        logits = model(batch.src, batch.src_lengths, batch.tgt, batch.tgt_lengths)
        loss = smoothed_token_loss(logits, outputs, config.label_smoothing) / (batch.num_tokens + len(batch))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
        set_lr(optimizer, inverse_sqrt_lr(step, config.lr, config.warmup_steps, config.warmup_init_lr))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step == steps:
            break
    return time.perf_counter() - start, model.state_dict()


def bench_training(size: str, steps: int, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        data = synthetic_dataset(Path(tmp) / "data", n_train=4000)
        # Correctness first, on a short run: both sides must make the same updates.  (After many
        # AdamW steps, rounding differences in near-zero gradients of rare embedding rows are
        # amplified by the normalised update, so parameters are compared early, not at the end.)
        check_steps = min(steps, 5)
        config = trainer_config(data, Path(tmp) / "check", size, check_steps)
        trainer = Trainer(config)
        trainer.train()
        _, loop_state = minimal_loop(config, trainer, check_steps)
        for key, value in trainer.raw_model.state_dict().items():
            torch.testing.assert_close(value, loop_state[key], rtol=1e-4, atol=1e-5, msg=key)
        trainer_times, loop_times = [], []
        for r in range(repeats):
            config = trainer_config(data, Path(tmp) / f"run{r}", size, steps)
            trainer = Trainer(config)  # set-up (data, tokenizer) is not timed; a loop needs it too

            def run_trainer() -> None:
                start = time.perf_counter()
                trainer.train()
                trainer_times.append(time.perf_counter() - start)

            def run_loop() -> None:
                loop_time, _ = minimal_loop(config, trainer, steps)
                loop_times.append(loop_time)

            # Alternate the order so that a drift in machine load does not favour either side.
            if r % 2 == 0:
                run_trainer()
                run_loop()
            else:
                run_loop()
                run_trainer()
        tokens = trainer.progress.tokens
    t, m = statistics.median(trainer_times), statistics.median(loop_times)
    return {"size": size, "steps": steps, "target_tokens_per_run": tokens, "trainer_s": t, "minimal_loop_s": m,
            "trainer_tokens_per_s": tokens / t, "loop_tokens_per_s": tokens / m, "ratio": t / m,
            "trainer_runs_s": trainer_times, "loop_runs_s": loop_times}


def bench_decoding(size: str, repeats: int, at_ckpt: str | None, nat_ckpt: str | None, sentences: int) -> dict:
    if at_ckpt and nat_ckpt:
        at, tokenizers, _ = load_model(at_ckpt)
        nat, nat_tokenizers, _ = load_model(nat_ckpt)
        valid = load_bundled().valid
        sources = tokenizers.src.encode_batch(valid.src[:sentences])
        if nat_tokenizers.src.encode_batch(valid.src[:50]) != sources[:50]:
            raise ValueError("the AT and NAT checkpoints use different tokenizers")
        setting = f"trained checkpoints on the bundled valid split ({len(sources)} sentences)"
        at_options = {"greedy": DecodeOptions(beam=1), "beam5": DecodeOptions(beam=5)}
        nat_kwargs: dict = {}
    else:
        torch.manual_seed(0)
        config = ModelConfig.preset(size, src_vocab_size=8000, tgt_vocab_size=8000, dropout=0.0)
        at, nat = build_model(config).eval(), build_model(config.replace(kind="nat")).eval()
        # An untrained model may emit </s> or other special ids (dropped from outputs); forbid them
        # so that both models emit exactly S word tokens per sentence.
        specials = torch.arange(6)
        for model in (at, nat):
            project = model.output_logits
            model.output_logits = (lambda project: lambda hidden: project(hidden).index_fill(
                -1, specials, float("-inf")))(project)
        rng = np.random.default_rng(0)
        sources = [rng.integers(6, 8000, size=int(np.clip(rng.normal(30, 8), 3, 80))).tolist() for _ in range(sentences)]
        setting = f"untrained {size} models, {len(sources)} random sources, outputs held to the source length"
        at_options = {"greedy": DecodeOptions(beam=1, max_len_a=1.0, max_len_b=0),
                      "beam5": DecodeOptions(beam=5, max_len_a=1.0, max_len_b=0)}
        nat_kwargs = {"gold_length": True}

    def run_nat(length_beam: int) -> list:
        if nat_kwargs.get("gold_length"):
            from mple_metrics.data import pad_sequences
            from mple_metrics.decode import nat_argmax
            out = []
            for start in range(0, len(sources), 128):
                src, lengths = pad_sequences(sources[start:start + 128])
                out += nat_argmax(nat, src, lengths, tgt_lengths=lengths).tokens
            return out
        return translate_encoded(nat, sources, DecodeOptions(length_beam=length_beam))

    def run_at(options: DecodeOptions) -> list:
        if nat_kwargs.get("gold_length"):
            from mple_metrics.data import pad_sequences
            out = []
            for start in range(0, len(sources), 128):
                src, lengths = pad_sequences(sources[start:start + 128])
                out += generate(at, src, lengths, options).tokens
            return out
        return translate_encoded(at, sources, options)

    cases = {"nat_argmax": lambda: run_nat(1), "at_greedy": lambda: run_at(at_options["greedy"]),
             "at_beam5": lambda: run_at(at_options["beam5"])}
    if not nat_kwargs:
        cases["nat_lpd3"] = lambda: run_nat(3)
    times: dict[str, list[float]] = {name: [] for name in cases}
    output_tokens: dict[str, int] = {}
    with torch.inference_mode():
        for _ in range(repeats):
            for name, fn in cases.items():  # interleaved, so load changes hit every case alike
                start = time.perf_counter()
                outputs = fn()
                times[name].append(time.perf_counter() - start)
                output_tokens[name] = sum(len(o) for o in outputs)
    result = {"setting": setting, "sentences": len(sources)}
    for name, values in times.items():
        median = statistics.median(values)
        result[name] = {"seconds": median, "sentences_per_s": len(sources) / median,
                        "output_tokens": output_tokens[name]}
    nat_time = result["nat_argmax"]["seconds"]
    result["speedup_nat_vs_at_greedy"] = result["at_greedy"]["seconds"] / nat_time
    result["speedup_nat_vs_at_beam5"] = result["at_beam5"]["seconds"] / nat_time
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="tiny", choices=("tiny", "small", "base"))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--at-ckpt", default=None)
    parser.add_argument("--nat-ckpt", default=None)
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--sentences", type=int, default=600, help="sentences decoded per case")
    parser.add_argument("--skip-decoding", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    results: dict = {}
    if not args.skip_training:
        tr = bench_training(args.size, args.steps, args.repeats)
        results["training"] = tr
        verdict = "OK" if tr["ratio"] <= TARGET_RATIO else "ABOVE TARGET"
        print(f"training ({args.size} AT, {tr['steps']} updates, {tr['target_tokens_per_run']} target tokens, "
              f"median of {args.repeats}):")
        print(f"  trainer       {tr['trainer_s']:8.3f} s  {tr['trainer_tokens_per_s']:9.0f} tok/s")
        print(f"  minimal loop  {tr['minimal_loop_s']:8.3f} s  {tr['loop_tokens_per_s']:9.0f} tok/s")
        print(f"  ratio trainer/loop = {tr['ratio']:.3f} (target <= {TARGET_RATIO}) {verdict}")
    if args.skip_decoding:
        if args.json:
            args.json.write_text(json.dumps(results, indent=1) + "\n")
        return
    dec = bench_decoding(args.size, args.repeats, args.at_ckpt, args.nat_ckpt, args.sentences)
    results["decoding"] = dec
    print(f"decoding ({dec['setting']}, median of {args.repeats}):")
    for name in ("nat_argmax", "nat_lpd3", "at_greedy", "at_beam5"):
        if name in dec:
            print(f"  {name:11s} {dec[name]['seconds']:8.3f} s  {dec[name]['sentences_per_s']:9.1f} sent/s  "
                  f"{dec[name]['output_tokens']} output tokens")
    print(f"  NAT argmax speed-up: {dec['speedup_nat_vs_at_greedy']:.1f}x vs AT greedy, "
          f"{dec['speedup_nat_vs_at_beam5']:.1f}x vs AT beam 5")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
