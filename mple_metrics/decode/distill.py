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
sentences.  A run whose teacher, options, chunk size or source sentences differ from the chunks
already written (or whose teacher or options differ from a finished ``kd.json``) is refused with
the differences named, before anything is decoded; ``overwrite=True`` (``mple distill
--overwrite``) discards them and starts over.  ``max_tokens`` and ``device`` are not compared: they
decide how sentences are batched, not what is decoded.  A finished KD dataset made from other data
(its ``{split}.src``, ``.raw.tgt`` or ``.raw.refN`` differ from this run's split) is refused the same
way: decoding again would replace them, and its raw data would be lost.

Several teachers (dynamic KD's candidates) go into a KD candidate directory
(:mod:`mple_metrics.data.kd_candidates`): ``CAND/kd0/``, ``CAND/kd1/``, ... are each the KD dataset
one teacher makes alone, byte for byte, and ``CAND/candidates.json`` lists them in order with their
names, teachers (path, SHA-256, model config) and, once finished, their split counts.  A teacher is
listed before its dataset is decoded, so an interrupted run resumes it; a teacher already listed
(the same SHA-256) is resumed, or reused as it is when its dataset is finished with the same
options and covers the splits asked for; a new teacher is appended as the next ``kdK``.  Every
candidate must be made from the same source sentences.  Each teacher decodes with its own
tokenizers, so teachers may differ in size and vocabulary.

Under ``torchrun`` (``torch.distributed`` initialised, or ``WORLD_SIZE`` > 1 in the environment, in
which case a gloo process group is started), rank r of W decodes chunks r, r+W, ... of every split
and writes them as above; after a barrier rank 0 checks and assembles the split files and the
manifests, and every rank returns the same manifest.  The output equals a one-process run's byte
for byte, and the chunks do not depend on W, so a run resumes with any number of processes.  The
output directory must be on a file system every rank sees.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from ..atomic_write import atomic_write_text, remove_orphan_temporaries
from ..data import (SPLIT_NAMES, Dataset, Split, is_candidate_dir, load_dataset, read_candidates_manifest,
                    resolve_dataset_path, write_candidates_manifest, write_split)
from ..data.kd_candidates import CANDIDATES_FILE, KD_MANIFEST
from ..models.checkpoint import load_checkpoint, load_model
from .generate import LATER_DEFAULTS, DecodeOptions, translate_encoded

PARTS_DIR = ".kd_parts"
CHUNK_HEADER = "#mple-kd-chunk "

_T = TypeVar("_T")


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
    """The SHA-256 of ``lines`` as a text file (``write_split`` writes each line and ``\\n``)."""
    return hashlib.sha256("".join(line + "\n" for line in lines).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- processes (torchrun)

@dataclass(frozen=True)
class _Ranks:
    """This process's place among the processes that distil together (one by default)."""

    rank: int = 0
    world_size: int = 1

    @classmethod
    def current(cls) -> _Ranks:
        """The initialised process group's ranks; under torchrun (``WORLD_SIZE`` > 1) without one,
        a gloo group is started (only CPU collectives are used, whatever the decoding device)."""
        if not dist.is_available():
            return cls()
        if not dist.is_initialized():
            if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
                return cls()
            dist.init_process_group("gloo")
        return cls(dist.get_rank(), dist.get_world_size())

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def owns(self, chunk: int) -> bool:
        return chunk % self.world_size == self.rank

    def on_main(self, work: Callable[[], _T]) -> _T:
        """``work()`` run on rank 0; every rank returns its result or raises its exception (a
        barrier: the other ranks wait for it)."""
        if not self.distributed:
            return work()
        box: list[Any] = [None]
        if self.rank == 0:
            try:
                box = [(work(), None)]
            except Exception as error:  # noqa: BLE001  (handed to every rank, then raised)
                box = [(None, _picklable(error))]
        dist.broadcast_object_list(box, src=0)
        result, error = box[0]
        if error is not None:
            raise error
        return result

    def all_succeeded(self, error: Exception | None) -> None:
        """A barrier at which every rank raises when any rank failed (its own error first)."""
        if not self.distributed:
            if error is not None:
                raise error
            return
        errors: list[Any] = [None] * self.world_size
        dist.all_gather_object(errors, None if error is None else _picklable(error))
        if error is not None:
            raise error
        for failed in errors:
            if failed is not None:
                raise failed


def _picklable(error: Exception) -> Exception:
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(error).__name__}: {error}")


# --------------------------------------------------------------------------- chunks and checks

@dataclass(frozen=True)
class _Chunk:
    split: str
    index: int
    start: int
    sources: list[str]
    sources_sha256: str

    def path(self, parts: Path) -> Path:
        return parts / f"{self.split}.{self.index:06d}.txt"


def _chunks(dataset: Dataset, splits: Sequence[str], chunk_size: int) -> dict[str, list[_Chunk]]:
    """Every split's chunks of ``chunk_size`` source sentences, in order."""
    plan = {}
    for name in splits:
        src = dataset[name].src
        plan[name] = [_Chunk(name, start // chunk_size, start, list(src[start:start + chunk_size]),
                             _lines_sha256(src[start:start + chunk_size]))
                      for start in range(0, len(src), chunk_size)]
    return plan


def _differences(found: dict[str, Any], wanted: dict[str, Any], where: str) -> list[str]:
    """What differs between the producer recorded in ``where`` and this run's, named for a user."""
    out = []
    if found.get("teacher_sha256") != wanted["teacher_sha256"]:
        out.append(f"teacher: {where} came from checkpoint {found.get('teacher', '?')} "
                   f"(sha256 {str(found.get('teacher_sha256'))[:12]}), this run's is {wanted['teacher']} "
                   f"(sha256 {wanted['teacher_sha256'][:12]})")
    found_decode, wanted_decode = found.get("decode") or {}, wanted["decode"]
    for key in sorted(set(found_decode) | set(wanted_decode)):
        if found_decode.get(key, LATER_DEFAULTS.get(key)) != wanted_decode.get(key, LATER_DEFAULTS.get(key)):
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


def _check_existing(out: Path, producer: dict[str, Any], chunks: dict[str, list[_Chunk]], data: str | Path) -> None:
    """Refuse chunks (and a finished kd.json) that this run's producer did not make, and chunks
    decoded from other source sentences than this run's."""
    parts = out / PARTS_DIR
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
    for name, split_chunks in chunks.items():
        for chunk in split_chunks:
            path = chunk.path(parts)
            if not path.is_file():
                continue
            header, _ = _read_chunk(path)
            if header is not None and header.get("sources_sha256") != chunk.sources_sha256:
                raise DistillMismatchError(
                    f"{path} was decoded from other source sentences than sentences {chunk.start + 1}-"
                    f"{chunk.start + len(chunk.sources)} of the {name} split of {data} (the data changed); "
                    f"pass --overwrite (overwrite=True) to start over")
    manifest = _read_kd_manifest(out)
    if manifest is not None:
        wanted = {key: value for key, value in producer.items() if key != "chunk_size"}
        differences = _differences(manifest, wanted, "the KD dataset there")
        if differences:
            raise DistillMismatchError(f"{out} holds a KD dataset made with other settings: "
                                       f"{'; '.join(differences)}; {rerun}")


def _raw_files(split: Split) -> dict[str, str]:
    """The SHA-256 of each file a KD dataset keeps of ``split``'s data (``_assemble`` writes them):
    ``{name}.src``, ``{name}.raw.tgt`` and ``{name}.raw.refN``."""
    files = {f"{split.name}.src": _lines_sha256(split.src), f"{split.name}.raw.tgt": _lines_sha256(split.tgt)}
    for k in range(1, max((len(r) - 1 for r in split.refs), default=0) + 1):
        files[f"{split.name}.raw.ref{k}"] = _lines_sha256([r[k] if len(r) > k else "" for r in split.refs])
    return files


def _check_same_data(out: Path, dataset: Dataset, splits: Sequence[str], data: str | Path) -> None:
    """Refuse a finished KD dataset in ``out`` made from other data than this run's: decoding again
    would replace its targets and its kept raw data (``.raw.tgt``/``.raw.refN``) with another
    corpus's.  A rerun on the same data (the same job, resumed or repeated) passes."""
    manifest = _read_kd_manifest(out)
    if manifest is None:
        return
    for name in splits:
        wanted = _raw_files(dataset[name])
        prefix = f"{name}.raw.ref"
        kept = {path.name: "" for path in out.glob(prefix + "*")  # extra ones would be removed
                if path.name[len(prefix):].isdigit()}
        for file, sha in {**kept, **wanted}.items():
            path = out / file
            same = path.is_file() and file_sha256(path) == sha
            if not same and (path.exists() or name in (manifest.get("splits") or {})):
                raise DistillMismatchError(
                    f"--out {out} holds a finished KD dataset made from other data ({manifest.get('data', '?')}): "
                    f"its {file} {'differs from' if path.exists() else 'is missing for'} the {name} split of "
                    f"--data {data}; distilling would replace it; use another --out, or pass --overwrite "
                    f"(overwrite=True) to replace it")


def _read_kd_manifest(out: Path) -> dict[str, Any] | None:
    """``out/kd.json`` parsed; None when there is none.  One that does not record the teacher's
    checksum is refused."""
    manifest_path = out / KD_MANIFEST
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict) or "teacher_sha256" not in manifest:
        raise DistillMismatchError(f"{manifest_path} does not record the teacher's checksum (written by "
                                   f"an older mple_metrics, or damaged); pass --overwrite (overwrite=True) "
                                   f"to replace the KD dataset in {out}")
    return manifest


def _producer(path: str, decode: DecodeOptions, chunk_size: int) -> dict[str, Any]:
    return {"teacher": path, "teacher_sha256": file_sha256(path), "decode": decode.to_dict(),
            "chunk_size": chunk_size}


# --------------------------------------------------------------------------- one KD dataset

def _distill_dataset(teacher: str | Path, data: str | Path, dataset: Dataset, out: Path, splits: Sequence[str],
                     options: DecodeOptions, max_tokens: int, chunk_size: int, device: str, quiet: bool,
                     overwrite: bool, ranks: _Ranks) -> dict[str, Any]:
    """Write the KD dataset of ``dataset`` translated by ``teacher`` into ``out``; returns kd.json."""
    error: Exception | None = None
    try:  # a rank that cannot load the teacher stops every rank
        model, tokenizers, payload = load_model(teacher, device)
        if payload["model_config"]["kind"] != "at":
            raise ValueError(f"teacher {payload['path']} is a {payload['model_config']['kind']!r} model; "
                             f"sequence-level KD expects an AT teacher")
    except Exception as failure:  # noqa: BLE001  (one process: raised below as it is)
        error = failure
    ranks.all_succeeded(error)
    parts = out / PARTS_DIR
    producer = _producer(str(payload["path"]), options, chunk_size)
    chunks = _chunks(dataset, splits, chunk_size)

    def prepare() -> None:
        if overwrite:
            shutil.rmtree(parts, ignore_errors=True)
            (out / KD_MANIFEST).unlink(missing_ok=True)
        else:
            _check_existing(out, producer, chunks, data)
            _check_same_data(out, dataset, splits, data)
        parts.mkdir(parents=True, exist_ok=True)
        remove_orphan_temporaries(out)  # left by writes an interrupted run did not finish
        remove_orphan_temporaries(parts)

    ranks.on_main(prepare)
    mine = [chunk for name in splits for chunk in chunks[name] if ranks.owns(chunk.index)]
    bar = None
    if not quiet and ranks.rank == 0:
        from tqdm.auto import tqdm
        bar = tqdm(total=sum(len(chunk.sources) for chunk in mine), unit="sent", desc="distill",
                   dynamic_ncols=True)
    decoded: dict[tuple[str, int], list[str]] = {}
    try:
        for chunk in mine:
            part = chunk.path(parts)
            if part.is_file():
                header, lines = _read_chunk(part)
                if header is not None and len(lines) == len(chunk.sources):
                    decoded[chunk.split, chunk.index] = lines
                    if bar is not None:
                        bar.update(len(chunk.sources))
                    continue
            encoded = tokenizers.src.encode_batch(chunk.sources)
            hyps = translate_encoded(model, encoded, options, max_tokens=max_tokens, device=device,
                                     progress=bar.update if bar is not None else None)
            lines = [tokenizers.tgt.decode(h) for h in hyps]
            header = {"producer": producer, "sources_sha256": chunk.sources_sha256, "sentences": len(lines)}
            atomic_write_text(part, CHUNK_HEADER + json.dumps(header, sort_keys=True) + "\n"
                              + "".join(line + "\n" for line in lines))
            decoded[chunk.split, chunk.index] = lines
    except Exception as failure:  # noqa: BLE001  (one process: raised below as it is)
        error = failure
    finally:
        if bar is not None:
            bar.close()
    ranks.all_succeeded(error)
    return ranks.on_main(lambda: _assemble(out, data, dataset, splits, chunks, decoded, producer, payload))


def _decoded_by_another_rank(chunk: _Chunk, parts: Path, producer: dict[str, Any]) -> list[str]:
    path = chunk.path(parts)
    header, lines = _read_chunk(path) if path.is_file() else (None, [])
    if header is None or _differences(header["producer"], producer, str(path)) \
            or header.get("sources_sha256") != chunk.sources_sha256 or len(lines) != len(chunk.sources):
        raise RuntimeError(f"{path} is missing or incomplete after every rank finished decoding; is "
                           f"{parts.parent} on a file system that every rank sees?")
    return lines


def _assemble(out: Path, data: str | Path, dataset: Dataset, splits: Sequence[str], chunks: dict[str, list[_Chunk]],
              decoded: dict[tuple[str, int], list[str]], producer: dict[str, Any],
              payload: dict[str, Any]) -> dict[str, Any]:
    """Write the split files and kd.json from the finished chunks, then remove the chunks."""
    parts = out / PARTS_DIR
    counts = {}
    for name in splits:
        split = dataset[name]
        outputs: list[str] = []
        for chunk in chunks[name]:
            key = (name, chunk.index)
            outputs.extend(decoded[key] if key in decoded else _decoded_by_another_rank(chunk, parts, producer))
        # The dataset reader rejects empty target lines: an empty teacher output keeps the raw
        # target, and kd.json counts how often that happened.
        empty = [i for i, line in enumerate(outputs) if not line.strip()]
        targets = [split.tgt[i] if not outputs[i].strip() else outputs[i] for i in range(len(split))]
        write_split(out, Split(name, list(split.src), targets))
        raw = Split(f"{name}.raw", list(split.src), list(split.tgt), [list(r) for r in split.refs])
        write_split(out, raw)
        (out / f"{name}.raw.src").unlink(missing_ok=True)  # identical to {name}.src
        counts[name] = {"sentences": len(split), "empty_outputs_replaced_by_raw_target": len(empty)}
    manifest = {"teacher": producer["teacher"], "teacher_sha256": producer["teacher_sha256"], "data": str(data),
                "decode": producer["decode"], "splits": counts, "teacher_model_config": payload["model_config"]}
    atomic_write_text(out / KD_MANIFEST, json.dumps(manifest, indent=1) + "\n")
    shutil.rmtree(parts, ignore_errors=True)
    return manifest


# --------------------------------------------------------------------------- candidate directories

@dataclass(frozen=True)
class _Member:
    """One teacher's place in a candidate directory: its manifest entry, and whether its finished
    KD dataset is reused as it is."""

    teacher: Path
    entry: dict[str, Any]
    reuse: bool


def _sources_differ(member: Path, kd: dict[str, Any], dataset: Dataset, splits: Sequence[str]) -> list[str]:
    """The splits asked for that the finished KD dataset ``member`` has from other source sentences."""
    return [name for name in splits if name in (kd.get("splits") or {})
            and (not (member / f"{name}.src").is_file()
                 or file_sha256(member / f"{name}.src") != _lines_sha256(dataset[name].src))]


def _plan_candidates(teachers: Sequence[Path], names: Sequence[str] | None, data: str | Path, dataset: Dataset,
                     out: Path, splits: Sequence[str], options: DecodeOptions, chunk_size: int,
                     overwrite: bool) -> list[_Member]:
    """Check every teacher against the candidate directory ``out``, list the new ones in its
    candidates.json (before anything is decoded, so an interrupted run resumes them) and return
    the members this run makes or reuses, in the order of ``teachers``."""
    if not is_candidate_dir(out) and ((out / KD_MANIFEST).is_file() or (out / PARTS_DIR).is_dir()):
        raise ValueError(f"--out {out} holds a single-teacher KD dataset ({KD_MANIFEST} or {PARTS_DIR}), not a "
                         f"KD candidate directory ({CANDIDATES_FILE}); several teachers (or --candidates) "
                         f"need another --out")
    entries = [dict(entry) for entry in read_candidates_manifest(out)["candidates"]] if is_candidate_dir(out) else []
    if out.is_dir():
        remove_orphan_temporaries(out)  # a candidates.json write an interrupted run did not finish
    chunks = _chunks(dataset, splits, chunk_size)
    members: list[_Member] = []
    given: dict[str, Path] = {}
    for k, teacher in enumerate(teachers):
        payload = load_checkpoint(teacher, nonfinite="ignore")
        kind = payload["model_config"]["kind"]
        if kind != "at":
            raise ValueError(f"--teacher {payload['path']} is a {kind!r} model; sequence-level KD expects an "
                             f"AT teacher")
        producer = _producer(str(payload["path"]), options, chunk_size)
        sha = producer["teacher_sha256"]
        if sha in given:
            raise ValueError(f"--teacher {teacher} is the same checkpoint as --teacher {given[sha]} (sha256 "
                             f"{sha[:12]}); give each teacher once")
        given[sha] = teacher
        name = names[k] if names is not None else None
        entry = next((e for e in entries if e.get("teacher_sha256") == sha), None)
        if entry is not None and name is not None and entry.get("name") != name:
            raise ValueError(f"--name {name!r}: teacher {payload['path']} is already listed in "
                             f"{out / CANDIDATES_FILE} as {entry.get('name')!r}; give that name or none")
        if entry is None:
            taken = {e["dir"] for e in entries}
            directory = next(f"kd{i}" for i in range(len(entries), len(entries) + len(taken) + 1)
                             if f"kd{i}" not in taken)
            if any(e.get("name") == (directory if name is None else name) for e in entries):
                what = f"--name {name!r} is" if name is not None else f"the default name {directory!r} is"
                raise ValueError(f"{what} already the name of another candidate in {out}; give "
                                 f"--name with a name of its own")
            name = directory if name is None else name
            entry = {"name": name, "dir": directory, "teacher": producer["teacher"], "teacher_sha256": sha,
                     "teacher_model_config": payload["model_config"]}
            entries.append(entry)
        member = out / entry["dir"]
        if not overwrite:
            _check_existing(member, producer, chunks, data)
        kd = None if overwrite else _read_kd_manifest(member)
        reuse = kd is not None and set(splits) <= set(kd.get("splits") or {})
        members.append(_Member(Path(teacher), entry, reuse))
    redone = {member.entry["dir"] for member in members if not member.reuse}
    for entry in entries:  # every candidate must have been made from this run's source sentences
        member = out / entry["dir"]
        kd = None if entry["dir"] in redone else _read_kd_manifest(member)
        differ = _sources_differ(member, kd, dataset, splits) if kd is not None else []
        if differ:
            raise ValueError(f"--data {data}: the {', '.join(differ)} source sentences differ from those of "
                             f"candidate {entry.get('name')!r} ({member}, made from {kd.get('data')}); the "
                             f"candidates of a directory translate one corpus, use another --out")
    write_candidates_manifest(out, entries)
    return members


def _finish_candidates(out: Path, members: Sequence[_Member]) -> dict[str, Any]:
    """Record each member's teacher path and split counts from its kd.json in candidates.json."""
    entries = read_candidates_manifest(out)["candidates"]
    for member in members:
        kd = json.loads((out / member.entry["dir"] / KD_MANIFEST).read_text(encoding="utf-8"))
        for entry in entries:
            if entry["dir"] == member.entry["dir"]:
                entry["teacher"], entry["splits"] = kd["teacher"], kd["splits"]
    write_candidates_manifest(out, entries)
    return read_candidates_manifest(out)


# --------------------------------------------------------------------------- the entry point

def distill(teachers: str | Path | Sequence[str | Path], data: str | Path, out: str | Path,
            splits: Sequence[str] = SPLIT_NAMES, options: DecodeOptions = DecodeOptions(beam=5),
            max_tokens: int = 4096, chunk_size: int = 1000, device: str = "cpu", quiet: bool = False,
            overwrite: bool = False, names: Sequence[str] | None = None,
            candidates: bool = False) -> dict[str, Any]:
    """Write the KD dataset of ``data`` (all ``splits``) translated by ``teachers`` into ``out``.

    One teacher (a path, or a list of one) and an ``out`` that is not a KD candidate directory:
    ``out`` becomes a KD dataset directory; returns the manifest also written to ``out/kd.json``.
    Several teachers, an ``out`` that is a candidate directory, or ``candidates=True``: ``out``
    becomes (or grows) a candidate directory, one member per teacher (see the module docstring);
    returns the manifest also written to ``out/candidates.json``.  ``names`` (one per teacher, in
    the same order) names new candidates; the default is the member's directory name ``kdK``.

    Resumes from the chunks an interrupted run left when they were made by the same teacher
    checkpoint (SHA-256), decoding options and chunk size; otherwise raises
    :class:`DistillMismatchError` naming the differences, unless ``overwrite`` discards them (the
    members of this run's teachers only).  Under torchrun every rank calls it with the same
    arguments (``device`` being the rank's own); see the module docstring.

    Raises:
        ValueError: bad arguments, named as the ``mple distill`` options (``--name`` count, a
            teacher given twice, an ``out`` holding a single-teacher KD dataset where a candidate
            directory is needed, a non-AT teacher, other source sentences than the candidates
            already in ``out``); :class:`DistillMismatchError` as above, and for a finished KD dataset
            in ``out`` made from other data (unless ``overwrite``).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    teachers = [Path(teachers)] if isinstance(teachers, (str, os.PathLike)) else [Path(t) for t in teachers]
    if not teachers:
        raise ValueError("--teacher (teachers) must name at least one teacher checkpoint")
    if names is not None:
        names = [str(name) for name in names]
        if len(names) != len(teachers):
            raise ValueError(f"--name (names) is given {len(names)} time(s) and --teacher {len(teachers)} "
                             f"time(s); give one --name per --teacher, in the same order")
        for name in names:
            if not name.strip() or any(not character.isprintable() for character in name):
                raise ValueError(f"--name {name!r} must be a non-empty printable name")
        if len(set(names)) != len(names):
            raise ValueError(f"--name (names) gives one name to several teachers: {names}")
    out = Path(out)
    ranks = _Ranks.current()
    as_candidates = candidates or len(teachers) > 1 or is_candidate_dir(out)
    if not as_candidates and names is not None:
        raise ValueError("--name (names) names the members of a KD candidate directory; give several "
                         "--teacher, an --out that is a candidate directory, or --candidates")
    dataset = load_dataset(resolve_dataset_path(data), splits=tuple(splits))
    if not as_candidates:
        return _distill_dataset(teachers[0], data, dataset, out, splits, options, max_tokens, chunk_size,
                                device, quiet, overwrite, ranks)
    members = ranks.on_main(lambda: _plan_candidates(teachers, names, data, dataset, out, splits, options,
                                                     chunk_size, overwrite))
    for member in members:
        if not member.reuse:
            _distill_dataset(member.teacher, data, dataset, out / member.entry["dir"], splits, options,
                             max_tokens, chunk_size, device, quiet, overwrite, ranks)
    return ranks.on_main(lambda: _finish_candidates(out, members))


def translate_lines(model, tokenizers, lines: Sequence[str], options: DecodeOptions, max_tokens: int = 4096,
                    device: str | torch.device = "cpu", progress=None, input_predictor=None,
                    reranker=None) -> list[str]:
    """Translate text lines with a loaded model; returns detokenized outputs in order."""
    encoded = tokenizers.src.encode_batch(lines)
    empty = [i + 1 for i, e in enumerate(encoded) if not e]
    if empty:
        raise ValueError(f"input line {empty[0]} is empty ({len(empty)} empty lines); every line must "
                         f"hold a sentence")
    hyps = translate_encoded(model, encoded, options, max_tokens=max_tokens, device=device, progress=progress,
                             input_predictor=input_predictor, reranker=reranker)
    return [tokenizers.tgt.decode(h) for h in hyps]
