"""The demo's data: a length-filtered sample of the bundled corpus and its Synthetic A and B versions.

The tiny models of the demo must converge within minutes on two CPU cores, so the demo trains on a
sample of the bundled training split (verses of at most ``max_words`` words on both sides) and
evaluates on samples of the valid and test splits, which keep all their English references.  The
sample is drawn with a fixed seed and keeps corpus order, so every run of the demo sees the same
sentences.  Synthetic A and B (Appendix B) are built from the sample's English side at the level of
the models' tokens, as the paper builds them: each is written with the SentencePiece tokenizer it
was built with (learnt on the sample's targets, of the demo's vocabulary size), and the models of
Table 1 read it with that tokenizer (see :mod:`mple_metrics.data.dataset_tokenizer`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..atomic_write import atomic_write_text
from ..data import (Dataset, Split, load_bundled, load_dataset, make_synthetic, synthetic_tokenizer,
                    write_dataset)

#: The demo's three datasets, in Table 1's order: the real corpus and its two denoising versions.
DATASETS: tuple[str, ...] = ("bundled", "synthetic-a", "synthetic-b")


@dataclass(frozen=True)
class CorpusPlan:
    """How many sentences of which length the demo samples from each bundled split."""

    max_words: int = 16
    train_sentences: int = 3500
    valid_sentences: int = 400
    test_sentences: int = 600
    seed: int = 1909
    #: Synthetic A/B corrupt the models' tokens (the paper's construction) or whitespace words.
    synthetic_level: str = "token"

    def sizes(self) -> dict[str, int]:
        return {"train": self.train_sentences, "valid": self.valid_sentences, "test": self.test_sentences}


def _sample(split: Split, size: int, max_words: int, rng: np.random.Generator) -> Split:
    short = [i for i in range(len(split))
             if len(split.src[i].split()) <= max_words and len(split.tgt[i].split()) <= max_words]
    if size < len(short):
        short = sorted(rng.choice(short, size=size, replace=False).tolist())
    return Split(split.name, [split.src[i] for i in short], [split.tgt[i] for i in short],
                 [list(split.refs[i]) for i in short])


def sample_bundled(plan: CorpusPlan) -> Dataset:
    """The demo's sample of the bundled corpus (module docstring)."""
    bundled = load_bundled()
    return Dataset({name: _sample(bundled[name], size, plan.max_words, np.random.default_rng([plan.seed, k]))
                    for k, (name, size) in enumerate(plan.sizes().items())})


def dataset_paths(out: str | Path) -> dict[str, Path]:
    """Where :func:`prepare_corpora` writes each of the three datasets under ``out``."""
    return {name: Path(out) / name for name in DATASETS}


def prepare_corpora(out: str | Path, plan: CorpusPlan, vocab_size: int = 1000) -> dict[str, Path]:
    """Write the three datasets under ``out`` (``out/<name>/``) and return their directories;
    ``vocab_size`` is the size of the synthetic datasets' tokenizer (the demo's).  A directory
    whose ``demo-corpus.json`` records the same plan is reused as it is."""
    manifest = {"plan": asdict(plan), "synthetic_vocab_size": vocab_size}
    paths = dataset_paths(out)
    if all((path / "demo-corpus.json").is_file() and
           json.loads((path / "demo-corpus.json").read_text(encoding="utf-8")) == {**manifest, "name": name}
           for name, path in paths.items()):
        return paths
    real = sample_bundled(plan)
    write_dataset(paths["bundled"], real)
    # One tokenizer for both synthetic sets; each set carries it, so their models read exactly the
    # tokens that were corrupted (word level: plain text, the models learn their own).
    tokenizer = synthetic_tokenizer(real, vocab_size) if plan.synthetic_level == "token" else None
    for name, kind in (("synthetic-a", "a"), ("synthetic-b", "b")):
        synthetic = make_synthetic(real, kind, seed=plan.seed, level=plan.synthetic_level, tokenizer=tokenizer)
        synthetic.write(paths[name])
    for name in DATASETS:
        atomic_write_text(paths[name] / "demo-corpus.json", json.dumps({**manifest, "name": name}) + "\n")
    return paths


def corpus_counts(path: str | Path) -> dict[str, dict[str, float]]:
    """Sentences and mean target words per split of a demo dataset (for the report)."""
    dataset = load_dataset(Path(path))
    return {name: {"sentences": len(split),
                   "target_words_per_sentence": float(np.mean([len(t.split()) for t in split.tgt]))}
            for name, split in dataset.items()}
