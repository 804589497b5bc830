"""Sequence-level knowledge distillation (Kim & Rush 2016): translate every source sentence of a
dataset with a teacher and write the outputs as the targets of a new dataset directory.

Resumable: sentences are decoded in chunks; each finished chunk is written atomically to
``KD_DIR/.kd_parts/{split}.{chunk}.txt`` and skipped when the command runs again.  When a split is
complete, ``{split}.src`` / ``{split}.tgt`` (the teacher's output) are written atomically, the
original target and references are kept as ``{split}.raw.tgt`` / ``{split}.raw.refN`` (not read
as references by the dataset reader), and the parts are removed.  ``kd.json`` records the teacher
(path and SHA-256 of the checkpoint file), the decoding options and the counts.

Every chunk carries what produced it: its first line is ``#mple-kd-chunk {JSON}`` with the teacher
checkpoint's SHA-256, the decoding options, the chunk size and the SHA-256 of the chunk's source
sentences.  A run whose teacher, options or chunk size differ from the chunks already written (or
from a finished ``kd.json``) is refused with the differences named, before anything is decoded;
``overwrite=True`` (``mple distill --overwrite``) discards them and starts over.  ``max_tokens``
and ``device`` are not compared: they decide how sentences are batched, not what is decoded.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..data import SPLIT_NAMES, Split, load_dataset, resolve_dataset_path, write_split
from ..atomic_write import atomic_write_text, remove_orphan_temporaries
from ..models.checkpoint import load_model
from .generate import DecodeOptions, translate_encoded

PARTS_DIR = ".kd_parts"
CHUNK_HEADER = "#mple-kd-chunk "


class DistillMismatchError(ValueError):
    """Chunks or a KD dataset in the output directory were produced by another teacher, other
    decoding options or other source sentences than this run's."""


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _lines_sha256(lines: Sequence[str]) -> str:
    return hashlib.sha256("".join(line + "\n" for line in lines).encode("utf-8")).hexdigest()


def _differences(found: dict[str, Any], wanted: dict[str, Any], where: str) -> list[str]:
    """What differs between the producer recorded in ``where`` and this run's, named for a user."""
    out = []
    if found.get("teacher_sha256") != wanted["teacher_sha256"]:
        out.append(f"teacher: {where} came from checkpoint {found.get('teacher', '?')} "
                   f"(sha256 {str(found.get('teacher_sha256'))[:12]}), this run's is {wanted['teacher']} "
                   f"(sha256 {wanted['teacher_sha256'][:12]})")
    found_decode, wanted_decode = found.get("decode") or {}, wanted["decode"]
    for key in sorted(set(found_decode) | set(wanted_decode)):
        if found_decode.get(key) != wanted_decode.get(key):
            option = "--" + key.replace("_", "-")
            out.append(f"{option}: {where} used {found_decode.get(key)!r}, this run {wanted_decode.get(key)!r}")
    if "chunk_size" in wanted and found.get("chunk_size") != wanted["chunk_size"]:
        out.append(f"--chunk-size: {where} used {found.get('chunk_size')!r}, this run {wanted['chunk_size']!r}")
    return out


def _read_chunk(path: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """(header, lines) of a chunk file; the header is None when the file records none."""
    text = path.read_text(encoding="utf-8")
    first, _, rest = text.partition("\n")
    if not first.startswith(CHUNK_HEADER):
        return None, []
    try:
        header = json.loads(first[len(CHUNK_HEADER):])
    except ValueError:
        return None, []
    if not isinstance(header, dict) or not isinstance(header.get("producer"), dict):
        return None, []
    return header, rest.split("\n")[:-1]


def _check_existing(out: Path, parts: Path, producer: dict[str, Any]) -> None:
    """Refuse chunks (and a finished kd.json) that this run's producer did not make."""
    rerun = "run with the options that made them, or pass --overwrite (overwrite=True) to start over"
    for path in sorted(parts.glob("*.txt")) if parts.is_dir() else []:
        header, _ = _read_chunk(path)
        if header is None:
            raise DistillMismatchError(f"{path} records no teacher or decoding options (written by an "
                                       f"older mple_metrics, or damaged); pass --overwrite (overwrite=True) "
                                       f"to discard the chunks and start over")
        differences = _differences(header["producer"], producer, "the chunks already written")
        if differences:
            raise DistillMismatchError(f"{out} holds KD chunks made with other settings: "
                                       f"{'; '.join(differences)}; {rerun}")
    manifest_path = out / "kd.json"
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except ValueError:
            manifest = None
        if not isinstance(manifest, dict) or "teacher_sha256" not in manifest:
            raise DistillMismatchError(f"{manifest_path} does not record the teacher's checksum (written by "
                                       f"an older mple_metrics, or damaged); pass --overwrite (overwrite=True) "
                                       f"to replace the KD dataset in {out}")
        wanted = {key: value for key, value in producer.items() if key != "chunk_size"}
        differences = _differences(manifest, wanted, "the KD dataset there")
        if differences:
            raise DistillMismatchError(f"{out} holds a KD dataset made with other settings: "
                                       f"{'; '.join(differences)}; {rerun}")


def distill(teacher: str | Path, data: str | Path, out: str | Path, splits: Sequence[str] = SPLIT_NAMES,
            options: DecodeOptions = DecodeOptions(beam=5), max_tokens: int = 4096, chunk_size: int = 1000,
            device: str = "cpu", quiet: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Write the KD dataset of ``data`` (all ``splits``) translated by ``teacher`` into ``out``.
    Returns the manifest also written to ``out/kd.json``.

    Resumes from the chunks an interrupted run left in ``out`` when they were made by the same
    teacher checkpoint (SHA-256), decoding options and chunk size; otherwise raises
    :class:`DistillMismatchError` naming the differences, unless ``overwrite`` discards them."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    model, tokenizers, payload = load_model(teacher, device)
    if payload["model_config"]["kind"] != "at":
        raise ValueError(f"teacher {payload['path']} is a {payload['model_config']['kind']!r} model; "
                         f"sequence-level KD expects an AT teacher")
    dataset = load_dataset(resolve_dataset_path(data), splits=tuple(splits))
    out = Path(out)
    parts = out / PARTS_DIR
    producer = {"teacher": str(payload["path"]), "teacher_sha256": file_sha256(payload["path"]),
                "decode": options.to_dict(), "chunk_size": chunk_size}
    if overwrite:
        shutil.rmtree(parts, ignore_errors=True)
        (out / "kd.json").unlink(missing_ok=True)
    else:
        _check_existing(out, parts, producer)
    parts.mkdir(parents=True, exist_ok=True)
    remove_orphan_temporaries(out)  # left by writes an interrupted run did not finish
    remove_orphan_temporaries(parts)
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
            sources_sha256 = _lines_sha256(sources)
            if part.is_file():
                header, lines = _read_chunk(part)
                if header is not None and header.get("sources_sha256") != sources_sha256:
                    raise DistillMismatchError(
                        f"{part} was decoded from other source sentences than sentences {start + 1}-"
                        f"{start + len(sources)} of the {name} split of {data} (the data changed); pass "
                        f"--overwrite (overwrite=True) to start over")
                if header is not None and len(lines) == len(sources):
                    outputs.extend(lines)
                    if bar is not None:
                        bar.update(len(sources))
                    continue
            encoded = tokenizers.src.encode_batch(sources)
            hyps = translate_encoded(model, encoded, options, max_tokens=max_tokens, device=device,
                                     progress=bar.update if bar is not None else None)
            lines = [tokenizers.tgt.decode(h) for h in hyps]
            header = {"producer": producer, "sources_sha256": sources_sha256, "sentences": len(lines)}
            atomic_write_text(part, CHUNK_HEADER + json.dumps(header, sort_keys=True) + "\n"
                              + "".join(line + "\n" for line in lines))
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
    manifest = {"teacher": producer["teacher"], "teacher_sha256": producer["teacher_sha256"], "data": str(data),
                "decode": options.to_dict(), "splits": counts, "teacher_model_config": payload["model_config"]}
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
