"""Sequence-level knowledge distillation (Kim & Rush 2016): translate every source sentence of a
dataset with a teacher and write the outputs as the targets of a new dataset directory.

Resumable: sentences are decoded in chunks; each finished chunk is written atomically to
``KD_DIR/.kd_parts/{split}.{chunk}.txt`` and skipped when the command runs again.  When a split is
complete, ``{split}.src`` / ``{split}.tgt`` (the teacher's output) are written atomically, the
original target and references are kept as ``{split}.raw.tgt`` / ``{split}.raw.refN`` (not read
as references by the dataset reader), and the parts are removed.  ``kd.json`` records the teacher,
the decoding options and the counts.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..data import SPLIT_NAMES, Split, load_dataset, resolve_dataset_path, write_split
from ..atomic_write import atomic_write_text
from ..train.checkpoint import load_model
from .generate import DecodeOptions, translate_encoded

PARTS_DIR = ".kd_parts"


def distill(teacher: str | Path, data: str | Path, out: str | Path, splits: Sequence[str] = SPLIT_NAMES,
            options: DecodeOptions = DecodeOptions(beam=5), max_tokens: int = 4096, chunk_size: int = 1000,
            device: str = "cpu", quiet: bool = False) -> dict[str, Any]:
    """Write the KD dataset of ``data`` (all ``splits``) translated by ``teacher`` into ``out``.
    Returns the manifest also written to ``out/kd.json``."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    model, tokenizers, payload = load_model(teacher, device)
    if payload["model_config"]["kind"] != "at":
        raise ValueError(f"teacher {payload['path']} is a {payload['model_config']['kind']!r} model; "
                         f"sequence-level KD expects an AT teacher")
    dataset = load_dataset(resolve_dataset_path(data), splits=tuple(splits))
    out = Path(out)
    parts = out / PARTS_DIR
    parts.mkdir(parents=True, exist_ok=True)
    total = sum(len(dataset[name]) for name in splits)
    bar = None
    if not quiet:
        from tqdm.auto import tqdm
        bar = tqdm(total=total, unit="sent", desc="distill", dynamic_ncols=True)
    counts = {}
    for name in splits:
        split = dataset[name]
        outputs: list[str] = []
        for start in range(0, len(split), chunk_size):
            part = parts / f"{name}.{start // chunk_size:06d}.txt"
            sources = split.src[start:start + chunk_size]
            if part.is_file():
                lines = part.read_text(encoding="utf-8").split("\n")[:-1]
                if len(lines) == len(sources):
                    outputs.extend(lines)
                    if bar is not None:
                        bar.update(len(sources))
                    continue
            encoded = tokenizers.src.encode_batch(sources)
            hyps = translate_encoded(model, encoded, options, max_tokens=max_tokens, device=device,
                                     progress=bar.update if bar is not None else None)
            lines = [tokenizers.tgt.decode(h) for h in hyps]
            atomic_write_text(part, "".join(line + "\n" for line in lines))
            outputs.extend(lines)
        # The dataset reader rejects empty target lines: an empty teacher output keeps the raw
        # target, and kd.json counts how often that happened.
        empty = [i for i, line in enumerate(outputs) if not line.strip()]
        targets = [split.tgt[i] if not outputs[i].strip() else outputs[i] for i in range(len(split))]
        write_split(out, Split(name, list(split.src), targets))
        raw = Split(f"{name}.raw", list(split.src), list(split.tgt), [list(r) for r in split.refs])
        write_split(out, raw)
        (out / f"{name}.raw.src").unlink(missing_ok=True)  # identical to {name}.src
        counts[name] = {"sentences": len(split), "empty_outputs_replaced_by_raw_target": len(empty)}
    if bar is not None:
        bar.close()
    manifest = {"teacher": str(payload["path"]), "data": str(data), "decode": options.to_dict(),
                "splits": counts, "teacher_model_config": payload["model_config"]}
    atomic_write_text(out / "kd.json", json.dumps(manifest, indent=1) + "\n")
    shutil.rmtree(parts, ignore_errors=True)
    return manifest


def translate_lines(model, tokenizers, lines: Sequence[str], options: DecodeOptions, max_tokens: int = 4096,
                    device: str | torch.device = "cpu", progress=None) -> list[str]:
    """Translate text lines with a loaded model; returns detokenized outputs in order."""
    encoded = tokenizers.src.encode_batch(lines)
    empty = [i + 1 for i, e in enumerate(encoded) if not e]
    if empty:
        raise ValueError(f"input line {empty[0]} is empty ({len(empty)} empty lines); every line must "
                         f"hold a sentence")
    hyps = translate_encoded(model, encoded, options, max_tokens=max_tokens, device=device, progress=progress)
    return [tokenizers.tgt.decode(h) for h in hyps]
