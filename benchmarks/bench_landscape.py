"""Landscape throughput: cells per minute, and a cell against evaluating an already-loaded model.

Three untrained ``tiny`` NATs (seeds 0, 1, 2; throughput hardly depends on the weights) on one
SentencePiece tokenizer of the bundled corpus, evaluated on the first --max-sentences sentences of
the bundled valid split.

1. Correctness first: the grid's cell at θ0 equals ``reference_nll`` and ``bleu_scores`` of θ0.
2. A cell (write θ(a, b) in place + metrics + the npz write) against the same metrics of a model whose
   weights are already loaded (``reference_nll`` + ``translate_encoded`` + ``bleu_scores`` of
   ``mple evaluate``), NLL only and NLL + BLEU, medians of --repeats, interleaved.  Target: <= 1.1x.
3. ``mple landscape`` under ``torchrun --nproc_per_node 2`` (one thread per process) against one
   process on one thread, on the same grid; wall time of the whole command.  Target: >= 1.7x the
   cells per minute.

    OMP_NUM_THREADS=1 python benchmarks/bench_landscape.py [--max-sentences 200] [--cells 6]
        [--grid 4x3] [--repeats 3] [--no-torchrun] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from mple_metrics.data import EncodedSplit, Split, TokenizerPair, load_bundled, write_dataset
from mple_metrics.decode import DecodeOptions, translate_encoded
from mple_metrics.landscape import EvaluationSet, Plane, evaluate_grid, grid_axes, landscape_metrics
from mple_metrics.models import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, ModelConfig, build_model
from mple_metrics.train import bleu_scores, reference_nll, save_checkpoint, tokenizer_files

CELL_TARGET = 1.1
SPEEDUP_TARGET = 1.7


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-sentences", type=int, default=200, help="valid sentences per cell (0 = all 1,200)")
    parser.add_argument("--cells", type=int, default=6, help="cells timed per setting in part 2")
    parser.add_argument("--grid", default="4x3", help="grid of the torchrun comparison")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=4096)
    parser.add_argument("--no-torchrun", action="store_true", help="skip part 3")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    data = load_bundled()
    tokenizers = TokenizerPair.train(data.train.src, data.train.tgt, kind="spm", vocab_size=8000)
    count = len(data.valid) if args.max_sentences <= 0 else min(args.max_sentences, len(data.valid))
    valid = Split("valid", data.valid.src[:count], data.valid.tgt[:count], data.valid.refs[:count])
    states, config = [], None
    for seed in range(3):
        torch.manual_seed(seed)
        config = ModelConfig.preset("tiny", kind="nat", src_vocab_size=tokenizers.src.vocab_size,
                                    tgt_vocab_size=tokenizers.tgt.vocab_size, share_embeddings=True, dropout=0.0)
        states.append(build_model(config).state_dict())
    device = torch.device("cpu")
    model = build_model(config).eval()
    plane = Plane.from_state_dicts(states)
    evaluation = EvaluationSet(valid, tokenizers, args.max_tokens, device)
    encoded = EncodedSplit(evaluation.encoded.src, evaluation.encoded.tgt)
    reference = build_model(config).eval()
    reference.load_state_dict(states[0])

    def plain(with_bleu: bool) -> dict:
        result = {"nll": reference_nll(reference, encoded, args.max_tokens, device)["nll_bits_per_token"]}
        if with_bleu:
            hyps = translate_encoded(reference, encoded.src, DecodeOptions(), max_tokens=args.max_tokens, device=device)
            result["bleu"] = bleu_scores(hyps, valid.refs, tokenizers)["bleu"]
        return result

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for names in (["nll"], ["nll", "bleu"]):
            metrics = landscape_metrics(names, evaluation, model)
            check = evaluate_grid(plane, model, metrics, [0.0], [0.0], progress=False)
            want = plain("bleu" in names)
            if abs(check.values["nll"][0, 0] - want["nll"]) > 1e-6 * abs(want["nll"]) or (
                    "bleu" in names and check.values["bleu"][0, 0] != want["bleu"]):
                print(f"{names}: the cell at θ0 differs from evaluating θ0: {check.values} vs {want}", file=sys.stderr)
                return 1
            a = np.linspace(-0.2, 1.2, args.cells)
            cell_times, plain_times = [], []
            for repeat in range(args.repeats):
                out = Path(tmp) / f"{'_'.join(names)}_{repeat}"
                started = time.perf_counter()
                evaluate_grid(plane, model, metrics, a, [0.0], out, progress=False)
                cell_times.append((time.perf_counter() - started) / args.cells)
                started = time.perf_counter()
                for _ in range(args.cells):
                    plain("bleu" in names)
                plain_times.append((time.perf_counter() - started) / args.cells)
            cell, loaded = statistics.median(cell_times), statistics.median(plain_times)
            rows.append({"metrics": "+".join(names), "sentences": count, "seconds_per_cell": cell,
                         "cells_per_minute": 60.0 / cell, "loaded_model_seconds": loaded,
                         "ratio_cell_over_loaded": cell / loaded, "target": CELL_TARGET,
                         "meets_target": cell / loaded <= CELL_TARGET})
            print(f"{'+'.join(names):>8}: {60.0 / cell:7.1f} cells/min ({cell:.3f} s/cell, {count} sentences); "
                  f"loaded model {loaded:.3f} s; ratio {cell / loaded:.3f} (target <= {CELL_TARGET}; median of "
                  f"{args.repeats}, {torch.get_num_threads()} thread(s))")
        result = {"cells": rows, "threads": torch.get_num_threads(), "machine": platform.machine(),
                  "cpus": os.cpu_count(), "load_average": os.getloadavg(), "torch": torch.__version__}
        if not args.no_torchrun:
            result["torchrun"] = torchrun_comparison(args, Path(tmp), states, config, tokenizers, valid)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=1)
    return 0


def torchrun_comparison(args, tmp: Path, states, config, tokenizers, valid: Split) -> dict:
    data = write_dataset(tmp / "data", {"valid": valid})
    checkpoints = []
    for i, state in enumerate(states):
        path = tmp / f"ckpt{i}.pt"
        save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                               "model_config": asdict(config), "train_config": {}, "model": state,
                               "tokenizer": tokenizer_files(tokenizers)})
        checkpoints.append(str(path))
    common = ["landscape", *[x for c in checkpoints for x in ("--ckpt", c)], "--data", str(data), "--split", "valid",
              "--grid", args.grid, "--metrics", "nll,bleu", "--quiet", "--max-tokens", str(args.max_tokens)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    bin_dir = Path(sys.executable).parent
    timings = {}
    for name, launcher in (("1 process", [sys.executable, "-m", "mple_metrics.cli"]),
                           ("torchrun 2", [str(bin_dir / "torchrun"), "--standalone", "--nproc_per_node", "2",
                                           "-m", "mple_metrics.cli"])):
        out = tmp / name.replace(" ", "_")
        shutil.rmtree(out, ignore_errors=True)
        started = time.perf_counter()
        subprocess.run([*launcher, *common, "--out", str(out)], env=env, check=True, capture_output=True, text=True)
        timings[name] = time.perf_counter() - started
    from mple_metrics.landscape import Landscape

    one, two = (Landscape.load(tmp / n) for n in ("1_process", "torchrun_2"))
    if not (np.array_equal(one.values["bleu"], two.values["bleu"])
            and np.allclose(one.values["nll"], two.values["nll"], rtol=1e-6)):
        raise SystemExit("torchrun x2 and one process disagree")
    cells = one.done.size
    # the grid stage alone: one process sums its cells; rank r of 2 takes cells r, r+2, ... (row-major)
    grid_one = float(one.seconds.sum())
    flat = two.seconds.reshape(-1)
    grid_two = max(float(flat[r::2].sum()) for r in range(2))
    speedup = timings["1 process"] / timings["torchrun 2"]
    grid_speedup = grid_one / grid_two
    print(f"mple landscape {args.grid} (nll+bleu), whole command: 1 process {60 * cells / timings['1 process']:.1f} "
          f"cells/min, torchrun x2 {60 * cells / timings['torchrun 2']:.1f} cells/min, speedup {speedup:.2f}; "
          f"grid stage: {60 * cells / grid_one:.1f} vs {60 * cells / grid_two:.1f} cells/min, speedup "
          f"{grid_speedup:.2f} (target >= {SPEEDUP_TARGET}); results equal")
    return {"grid": args.grid, "seconds": timings, "grid_seconds": {"1 process": grid_one, "torchrun 2": grid_two},
            "speedup": speedup, "grid_speedup": grid_speedup, "target": SPEEDUP_TARGET,
            "meets_target": grid_speedup >= SPEEDUP_TARGET}


if __name__ == "__main__":
    sys.exit(main())
