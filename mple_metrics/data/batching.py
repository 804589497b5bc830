"""Token-budget batching with length bucketing, seeded shuffling, and disjoint distributed shards.

Typical use by a trainer::

    pair = TokenizerPair.train(data.train.src, data.train.tgt, vocab_size=8000)
    encoded = EncodedSplit.encode(data.train, pair, add_eos=True)
    batches = BatchIterator(encoded, max_tokens=4096, shuffle=True, seed=1,
                            rank=rank, world_size=world_size)
    for epoch in range(n_epochs):
        batches.set_epoch(epoch)
        for batch in batches:   # Batch: src (B, Ls), src_lengths (B,), tgt (B, Lt), ... LongTensors
            ...

Batches are formed once per epoch from the lengths only: sentences are sorted by (longer side,
then the other side, then a seeded random key), cut greedily into batches whose padded size
``B * max(max src length, max tgt length)`` stays within ``max_tokens`` (and ``B <= max_sentences``),
and the batch order is shuffled with ``seed + epoch``.  Same seed and epoch -> same batches on every
machine.  With ``world_size > 1`` rank r takes batches r, r + W, r + 2W, ...: disjoint shards; with
``drop_uneven`` (default) the tail that not every rank can get is dropped, so all ranks run the same
number of steps (collectives would otherwise hang).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .dataset import Split
from .tokenizer import PAD_ID, TokenizerPair


@dataclass(frozen=True)
class EncodedSplit:
    """Token ids of a split: ``src[i]``, ``tgt[i]`` lists of ints (no padding)."""

    src: list[list[int]]
    tgt: list[list[int]]

    def __post_init__(self) -> None:
        if len(self.src) != len(self.tgt):
            raise ValueError(f"src has {len(self.src)} sequences but tgt has {len(self.tgt)}")

    def __len__(self) -> int:
        return len(self.src)

    @classmethod
    def encode(cls, split: Split, tokenizers: TokenizerPair, add_bos: bool = False,
               add_eos: bool = False) -> EncodedSplit:
        """Encode a split's sources and targets (bos/eos added to the targets only if asked)."""
        return cls(tokenizers.src.encode_batch(split.src),
                   tokenizers.tgt.encode_batch(split.tgt, add_bos=add_bos, add_eos=add_eos))

    def src_lengths(self) -> np.ndarray:
        return np.fromiter((len(s) for s in self.src), dtype=np.int64, count=len(self.src))

    def tgt_lengths(self) -> np.ndarray:
        return np.fromiter((len(t) for t in self.tgt), dtype=np.int64, count=len(self.tgt))


@dataclass(frozen=True)
class Batch:
    """A padded batch.  ``src`` (B, Ls) and ``tgt`` (B, Lt) int64, padded with ``PAD_ID`` to the
    batch maxima; ``src_lengths``/``tgt_lengths`` (B,) int64; ``indices`` (B,) int64, the
    sentences' positions in the split."""

    src: torch.Tensor
    src_lengths: torch.Tensor
    tgt: torch.Tensor
    tgt_lengths: torch.Tensor
    indices: torch.Tensor

    def __len__(self) -> int:
        return int(self.indices.numel())

    @property
    def num_tokens(self) -> int:
        """Non-padding target tokens."""
        return int(self.tgt_lengths.sum())

    @property
    def loss_tokens(self) -> int:
        """Target tokens a training loss is taken on: all of them here; a batch with a proxy input
        counts its hidden ones only."""
        return self.num_tokens

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        return Batch(*(t.to(device, non_blocking=non_blocking) for t in
                       (self.src, self.src_lengths, self.tgt, self.tgt_lengths, self.indices)))


def pad_sequences(sequences: Sequence[Sequence[int]], pad_id: int = PAD_ID) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, max length) int64 tensor padded with ``pad_id`` (width 0 when all are empty), and the
    (B,) lengths."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.int64)
    width = int(lengths.max()) if len(sequences) else 0
    out = torch.full((len(sequences), width), pad_id, dtype=torch.int64)
    for row, sequence in enumerate(sequences):
        if len(sequence):
            out[row, :len(sequence)] = torch.as_tensor(sequence, dtype=torch.int64)
    return out, lengths


def collate(encoded: EncodedSplit, indices: Sequence[int], pad_id: int = PAD_ID) -> Batch:
    """The :class:`Batch` of sentences ``indices`` of ``encoded``."""
    src, src_lengths = pad_sequences([encoded.src[i] for i in indices], pad_id)
    tgt, tgt_lengths = pad_sequences([encoded.tgt[i] for i in indices], pad_id)
    return Batch(src, src_lengths, tgt, tgt_lengths, torch.tensor(list(indices), dtype=torch.int64))


def token_budget_batches(src_lengths: Sequence[int] | np.ndarray, tgt_lengths: Sequence[int] | np.ndarray,
                         max_tokens: int, max_sentences: int | None = None,
                         seed: int = 0) -> list[list[int]]:
    """Group sentence indices into length-bucketed batches within a padded-token budget.

    Sentences are sorted by ``max(src, tgt)`` length, then by the other length, ties broken by a
    random key from ``seed`` (so equal-length sentences are not always batched together).  A batch
    is closed when adding the next sentence would make ``B * max length`` exceed ``max_tokens`` or
    ``B`` exceed ``max_sentences``.  Returned in length order; shuffle the list for training.

    Raises:
        ValueError: a sentence alone exceeds ``max_tokens`` (its index and length are named), or
            bad arguments.
    """
    src_lengths = np.asarray(src_lengths, dtype=np.int64)
    tgt_lengths = np.asarray(tgt_lengths, dtype=np.int64)
    if src_lengths.shape != tgt_lengths.shape or src_lengths.ndim != 1:
        raise ValueError(f"src_lengths {src_lengths.shape} and tgt_lengths {tgt_lengths.shape} must "
                         f"be 1-D and of equal length")
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    if max_sentences is not None and max_sentences < 1:
        raise ValueError(f"max_sentences must be >= 1 or None, got {max_sentences}")
    if (src_lengths < 0).any() or (tgt_lengths < 0).any():
        raise ValueError("lengths must be non-negative")
    size = np.maximum(np.maximum(src_lengths, tgt_lengths), 1)  # an empty pair still takes a row
    too_long = np.flatnonzero(size > max_tokens)
    if too_long.size:
        i = int(too_long[0])
        raise ValueError(f"sentence {i} has {int(size[i])} tokens, more than max_tokens={max_tokens} "
                         f"({too_long.size} such sentences); raise max_tokens or filter long ones")
    other = np.minimum(src_lengths, tgt_lengths)
    tie_break = np.random.default_rng(seed).permutation(size.size)
    order = np.lexsort((tie_break, other, size))
    batches: list[list[int]] = []
    current: list[int] = []
    current_max = 0
    for index in order.tolist():
        width = max(current_max, int(size[index]))
        full = (len(current) + 1) * width > max_tokens or (
            max_sentences is not None and len(current) + 1 > max_sentences)
        if current and full:
            batches.append(current)
            current, width = [], int(size[index])
        current.append(index)
        current_max = width
    if current:
        batches.append(current)
    return batches


def shard(batches: Sequence[list[int]], rank: int, world_size: int,
          drop_uneven: bool = True) -> list[list[int]]:
    """Batches ``rank, rank + world_size, ...``: disjoint across ranks, and their union is all
    batches (less the ``len % world_size`` last ones when ``drop_uneven``, so every rank gets the
    same count)."""
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    usable = len(batches) - len(batches) % world_size if drop_uneven else len(batches)
    return list(batches[rank:usable:world_size])


class BatchIterator:
    """Iterate over padded :class:`Batch` es of an :class:`EncodedSplit`.

    Args:
        encoded: the token ids.
        max_tokens: padded-token budget per batch (``B * max(Ls, Lt)``).
        max_sentences: optional cap on sentences per batch.
        shuffle: shuffle the batch order (with ``seed + epoch``) -- for training; evaluation keeps
            length order.
        seed: seeds the tie-breaking inside length buckets and the shuffle.
        rank, world_size: this process' shard of the batches (see :func:`shard`).
        drop_uneven: drop the batches not every rank can get (keep the default for training with
            collectives; pass False for evaluation on one process).
    """

    def __init__(self, encoded: EncodedSplit, max_tokens: int, max_sentences: int | None = None,
                 shuffle: bool = True, seed: int = 0, rank: int = 0, world_size: int = 1,
                 drop_uneven: bool = True, pad_id: int = PAD_ID) -> None:
        self.encoded = encoded
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.drop_uneven = drop_uneven
        self.pad_id = pad_id
        self.epoch = 0
        self._bucketed = token_budget_batches(encoded.src_lengths(), encoded.tgt_lengths(),
                                              max_tokens, max_sentences, seed=seed)
        shard(self._bucketed, rank, world_size, drop_uneven)  # validate rank/world_size now

    def set_epoch(self, epoch: int) -> None:
        """Choose the shuffle of this epoch (call before iterating, on every rank alike)."""
        self.epoch = int(epoch)

    def batch_indices(self) -> list[list[int]]:
        """This rank's batches of sentence indices for the current epoch."""
        batches = list(self._bucketed)
        if self.shuffle:
            permutation = np.random.default_rng([self.seed, self.epoch]).permutation(len(batches))
            batches = [batches[i] for i in permutation]
        return shard(batches, self.rank, self.world_size, self.drop_uneven)

    def __len__(self) -> int:
        return len(shard(self._bucketed, self.rank, self.world_size, self.drop_uneven))

    def __iter__(self) -> Iterator[Batch]:
        for indices in self.batch_indices():
            yield collate(self.encoded, indices, self.pad_id)
