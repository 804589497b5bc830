"""Token-budget batching, bucketing, seeded shuffling and disjoint distributed shards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mple_metrics.data import (PAD_ID, BatchIterator, EncodedSplit, collate, shard,
                               token_budget_batches)


def _encoded(n: int = 500, seed: int = 0) -> EncodedSplit:
    rng = np.random.default_rng(seed)
    src = [rng.integers(6, 100, size=int(rng.integers(1, 40))).tolist() for _ in range(n)]
    tgt = [rng.integers(6, 100, size=int(rng.integers(0, 45))).tolist() for _ in range(n)]
    return EncodedSplit(src, tgt)


@pytest.mark.parametrize("max_tokens,max_sentences", [(64, None), (300, None), (1000, 16), (45, 1)])
def test_batches_cover_every_sentence_once_within_budget(max_tokens, max_sentences):
    enc = _encoded()
    src_len, tgt_len = enc.src_lengths(), enc.tgt_lengths()
    batches = token_budget_batches(src_len, tgt_len, max_tokens, max_sentences, seed=3)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(len(enc)))
    for b in batches:
        width = max(max(int(src_len[i]), int(tgt_len[i]), 1) for i in b)
        assert len(b) * width <= max_tokens
        if max_sentences is not None:
            assert len(b) <= max_sentences


def test_bucketing_pads_less_than_random_batches():
    enc = _encoded(2000)
    size = np.maximum(enc.src_lengths(), enc.tgt_lengths())
    batches = token_budget_batches(enc.src_lengths(), enc.tgt_lengths(), 400)
    padded = sum(len(b) * size[b].max() for b in batches)
    # The same batch sizes filled at random need far more padding.
    perm = np.random.default_rng(0).permutation(len(enc))
    start, random_padded = 0, 0
    for b in batches:
        chunk = perm[start:start + len(b)]
        random_padded += len(chunk) * size[chunk].max()
        start += len(b)
    assert padded < 0.75 * random_padded
    assert size.sum() / padded > 0.9


def test_collate_pads_with_pad_id():
    enc = EncodedSplit([[7, 8, 9], [10]], [[11], [12, 13, 14, 15]])
    batch = collate(enc, [1, 0])
    assert batch.src.dtype == torch.int64 and batch.src.shape == (2, 3)
    assert batch.src.tolist() == [[10, PAD_ID, PAD_ID], [7, 8, 9]]
    assert batch.tgt.tolist() == [[12, 13, 14, 15], [11, PAD_ID, PAD_ID, PAD_ID]]
    assert batch.src_lengths.tolist() == [1, 3] and batch.tgt_lengths.tolist() == [4, 1]
    assert batch.indices.tolist() == [1, 0] and batch.num_tokens == 5
    empty = collate(EncodedSplit([[5]], [[]]), [0])
    assert empty.tgt.shape == (1, 0) and empty.tgt_lengths.tolist() == [0]


def test_shuffle_is_seeded_and_changes_with_epoch():
    enc = _encoded()
    a = BatchIterator(enc, max_tokens=300, seed=5)
    b = BatchIterator(enc, max_tokens=300, seed=5)
    assert a.batch_indices() == b.batch_indices()
    first = a.batch_indices()
    a.set_epoch(1)
    assert a.batch_indices() != first
    assert sorted(map(tuple, a.batch_indices())) == sorted(map(tuple, first))
    c = BatchIterator(enc, max_tokens=300, seed=6)
    assert c.batch_indices() != first
    unshuffled = BatchIterator(enc, max_tokens=300, shuffle=False)
    widths = [max(max(len(enc.src[i]), len(enc.tgt[i])) for i in b) for b in unshuffled.batch_indices()]
    assert widths == sorted(widths)


@pytest.mark.parametrize("world_size", [1, 2, 3, 4, 7])
def test_distributed_shards_are_disjoint(world_size):
    enc = _encoded(700)
    iterators = [BatchIterator(enc, max_tokens=256, seed=2, rank=r, world_size=world_size)
                 for r in range(world_size)]
    for it in iterators:
        it.set_epoch(3)
    shards = [it.batch_indices() for it in iterators]
    assert len({len(s) for s in shards}) == 1  # same number of steps on every rank
    seen = [i for s in shards for b in s for i in b]
    assert len(seen) == len(set(seen))
    total = len(BatchIterator(enc, max_tokens=256, seed=2).batch_indices())
    assert sum(len(s) for s in shards) == total - total % world_size
    # Without dropping, the shards cover every sentence exactly once.
    full = [BatchIterator(enc, max_tokens=256, seed=2, rank=r, world_size=world_size,
                          drop_uneven=False).batch_indices() for r in range(world_size)]
    assert sorted(i for s in full for b in s for i in b) == list(range(len(enc)))


def test_iterating_yields_padded_tensors():
    enc = _encoded(100)
    it = BatchIterator(enc, max_tokens=200, seed=0)
    seen = 0
    for batch in it:
        assert batch.src.shape[0] == batch.tgt.shape[0] == len(batch)
        for row, i in enumerate(batch.indices.tolist()):
            assert batch.src[row, :batch.src_lengths[row]].tolist() == enc.src[i]
            assert (batch.src[row, batch.src_lengths[row]:] == PAD_ID).all()
        seen += len(batch)
    assert seen == len(enc) and len(it) == len(it.batch_indices())


def test_errors():
    with pytest.raises(ValueError, match="sentence 1 has 50 tokens, more than max_tokens=40"):
        token_budget_batches([3, 50], [3, 3], 40)
    with pytest.raises(ValueError, match="max_tokens must be >= 1"):
        token_budget_batches([3], [3], 0)
    with pytest.raises(ValueError, match="rank must be in"):
        shard([[0]], rank=2, world_size=2)
    with pytest.raises(ValueError, match="equal length"):
        token_budget_batches([1, 2], [1], 10)
