"""Data: the dataset directory format, the bundled corpus, tokenizers, synthetic, known-C and
controlled-benchmark datasets, and batching.  See docs/data.md.

Main entry points::

    from mple_metrics.data import load_dataset, bundled_corpus, TokenizerPair, EncodedSplit, BatchIterator
    data = load_dataset(bundled_corpus())          # .train/.valid/.test, each with .src .tgt .refs
    pair = TokenizerPair.train(data.train.src, data.train.tgt, kind="spm", vocab_size=8000)
    batches = BatchIterator(EncodedSplit.encode(data.train, pair, add_eos=True), max_tokens=4096)
"""

from __future__ import annotations

from .batching import (Batch, BatchIterator, EncodedSplit, collate, pad_sequences, shard,
                       token_budget_batches)
from .bundled import BUNDLED_NAME, bundled_corpus, dataset_location, load_bundled, resolve_dataset_path
from .controlled import (CONTROLLED_KINDS, ControlledTask, SourceTruth, source_truth, split_truth,
                         write_controlled)
from .dataset import (SPLIT_NAMES, Dataset, Split, load_dataset, read_lines, read_tsv, split_lines,
                      write_dataset, write_split)
from .dataset_tokenizer import (DATASET_TOKENIZER_DIR, check_dataset_tokenizers, dataset_tokenizers,
                                same_tokenizers, save_dataset_tokenizers, save_tokenizers_whole)
from .kd_candidates import (CANDIDATES_FILE, is_candidate_dir, kd_dataset_dirs,
                            read_candidates_manifest, write_candidates_manifest)
from .known_c import (KNOWN_C_KINDS, PositionMixture, TotalCorrelation, kmodes_closed_form_bits,
                      make_mixture, total_correlation, write_known_c)
from .synthetic import SYNTHETIC_KINDS, SYNTHETIC_LEVELS, Synthetic, make_synthetic, synthetic_tokenizer
from .tokenizer import (BLANK_ID, BOS_ID, EOS_ID, MASK_ID, PAD_ID, SPECIAL_TOKENS, TOKENIZER_KINDS,
                        UNK_ID, SentencePieceTokenizer, Tokenizer, TokenizerPair, WordTokenizer,
                        load_tokenizer, normalise, train_tokenizer)
from .unknown_tokens import UNK_RATE_WARNING_THRESHOLD, UnkRate, unk_rate, unk_rate_warning

__all__ = [
    "Batch", "BatchIterator", "EncodedSplit", "collate", "pad_sequences", "shard",
    "token_budget_batches",
    "BUNDLED_NAME", "bundled_corpus", "dataset_location", "load_bundled", "resolve_dataset_path",
    "CONTROLLED_KINDS", "ControlledTask", "SourceTruth", "source_truth", "split_truth", "write_controlled",
    "SPLIT_NAMES", "Dataset", "Split", "load_dataset", "read_lines", "read_tsv", "split_lines",
    "write_dataset", "write_split",
    "DATASET_TOKENIZER_DIR", "check_dataset_tokenizers", "dataset_tokenizers", "same_tokenizers",
    "save_dataset_tokenizers", "save_tokenizers_whole",
    "CANDIDATES_FILE", "is_candidate_dir", "kd_dataset_dirs", "read_candidates_manifest",
    "write_candidates_manifest",
    "KNOWN_C_KINDS", "PositionMixture", "TotalCorrelation", "kmodes_closed_form_bits",
    "make_mixture", "total_correlation", "write_known_c",
    "SYNTHETIC_KINDS", "SYNTHETIC_LEVELS", "Synthetic", "make_synthetic", "synthetic_tokenizer",
    "BLANK_ID", "BOS_ID", "EOS_ID", "MASK_ID", "PAD_ID", "SPECIAL_TOKENS", "TOKENIZER_KINDS",
    "UNK_ID", "SentencePieceTokenizer", "Tokenizer", "TokenizerPair", "WordTokenizer",
    "load_tokenizer", "normalise", "train_tokenizer",
    "UNK_RATE_WARNING_THRESHOLD", "UnkRate", "unk_rate", "unk_rate_warning",
]
