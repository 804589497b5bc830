"""AT/NAT models and decoding: incremental == full recomputation, beam 1 == greedy, beam search
against exhaustive search, NAT copy inputs, LPD, scoring against float64 references, overfitting a
tiny batch."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from mple_metrics.data import EOS_ID, MASK_ID, PAD_ID
from mple_metrics.decode import (beam_search, deduplicate, greedy_search, max_output_length,
                                 nat_argmax)
from mple_metrics.models import (ATModel, ModelConfig, NATModel, build_model, score_targets,
                                 teacher_forcing, uniform_copy_index)
from mple_metrics.train import smoothed_token_loss


# Tiny models run fastest on one thread, above all on a loaded machine (no OpenMP spinning).
pytestmark = pytest.mark.usefixtures("one_thread")


def _model(kind: str, vocab: int = 30, dtype=torch.float64, seed: int = 0, **overrides) -> ATModel | NATModel:
    torch.manual_seed(seed)
    config = ModelConfig.preset("tiny", kind=kind, src_vocab_size=vocab, tgt_vocab_size=vocab, dropout=0.0,
                                d_model=32, ffn_dim=64, n_heads=4, max_positions=64, **overrides)
    return build_model(config).to(dtype).eval()


def _batch(batch: int, vocab: int, seed: int, max_len: int = 9):
    g = torch.Generator().manual_seed(seed)
    src_lengths = torch.randint(1, max_len + 1, (batch,), generator=g)
    tgt_lengths = torch.randint(1, max_len + 1, (batch,), generator=g)
    src = torch.randint(6, vocab, (batch, int(src_lengths.max())), generator=g)
    tgt = torch.randint(6, vocab, (batch, int(tgt_lengths.max())), generator=g)
    src = src.masked_fill(torch.arange(src.shape[1]) >= src_lengths[:, None], PAD_ID)
    tgt = tgt.masked_fill(torch.arange(tgt.shape[1]) >= tgt_lengths[:, None], PAD_ID)
    return SimpleNamespace(src=src, src_lengths=src_lengths, tgt=tgt, tgt_lengths=tgt_lengths)


def test_presets_and_config_errors():
    assert ModelConfig.preset("base").d_model == 512 and ModelConfig.preset("base").encoder_layers == 6
    assert ModelConfig.preset("small", d_model=96).d_model == 96
    with pytest.raises(ValueError, match="size must be one of"):
        ModelConfig.preset("huge")
    with pytest.raises(ValueError, match="divisible by n_heads"):
        ModelConfig(d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="unknown model config field"):
        ModelConfig.from_dict({"d_modle": 3})
    with pytest.raises(ValueError, match="share_embeddings needs equal vocabularies"):
        ModelConfig(src_vocab_size=10, tgt_vocab_size=12)
    with pytest.raises(ValueError, match="kind='nat'"):
        NATModel(ModelConfig(kind="at"))


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_incremental_decoding_equals_full_recomputation(positions):
    model = _model("at", positions=positions)
    b = _batch(4, 30, seed=1)
    enc = model.encode(b.src, b.src_lengths)
    prefix = torch.randint(6, 30, (4, 7))
    prefix[:, 0] = 1
    full = model.decode_full(prefix, enc)
    caches = model.new_caches()
    steps = [model.decode_step(prefix[:, t], t, enc, caches) for t in range(prefix.shape[1])]
    torch.testing.assert_close(torch.stack(steps, 1), full, rtol=1e-10, atol=1e-10)


def test_beam_one_equals_greedy():
    model = _model("at", dtype=torch.float32, seed=3)
    b = _batch(6, 30, seed=2)
    greedy = greedy_search(model, b.src, b.src_lengths)
    beam = beam_search(model, b.src, b.src_lengths, beam=1)
    assert greedy.tokens == beam.tokens
    torch.testing.assert_close(greedy.scores, beam.scores)


@torch.no_grad()
def _all_sequence_scores(model: ATModel, src, src_lengths, steps: int, vocab: int):
    """Every output of at most ``steps`` tokens (ending with </s> unless it reaches ``steps``)
    with its log-probability, by full recomputation in one batch (float64)."""
    words = [t for t in range(vocab) if t != EOS_ID]
    seqs = [list(seq) for n in range(steps + 1) for seq in itertools.product(words, repeat=n)]
    prev = torch.tensor([[1] + s + [PAD_ID] * (steps - len(s)) for s in seqs])
    enc = model.encode(src, src_lengths).index_select(torch.zeros(len(seqs), dtype=torch.long))
    logp = F.log_softmax(model.decode_full(prev, enc), -1)
    scores = []
    for row, seq in enumerate(seqs):
        total = sum(float(logp[row, t, tok]) for t, tok in enumerate(seq))
        scores.append(total + (float(logp[row, len(seq), EOS_ID]) if len(seq) < steps else 0.0))
    return seqs, scores


def test_beam_search_is_exhaustive_when_the_beam_holds_every_prefix():
    vocab = 8
    model = _model("at", vocab=vocab, seed=5)
    b = _batch(2, vocab, seed=4, max_len=3)
    steps = max_output_length(model, b.src_lengths, 0.0, 3)
    found = beam_search(model, b.src, b.src_lengths, beam=vocab ** steps, length_penalty=0.0,
                        max_len_a=0.0, max_len_b=3)
    for row in range(2):
        seqs, scores = _all_sequence_scores(model, b.src[row:row + 1], b.src_lengths[row:row + 1], steps, vocab)
        best = max(range(len(seqs)), key=lambda k: scores[k])
        assert found.scores[row].item() == pytest.approx(scores[best], abs=1e-9)
        assert found.tokens[row] == [t for t in seqs[best] if t not in (0, 1, 2, 4, 5)]


@torch.no_grad()
def test_at_score_targets_matches_stepwise_log_probs():
    model = _model("at")
    b = _batch(5, 30, seed=6)
    scores = score_targets(model, b)
    no_eos = score_targets(model, b, include_eos=False, unit="nats")
    enc = model.encode(b.src, b.src_lengths)
    for i in range(5):
        n = int(b.tgt_lengths[i])
        caches = model.new_caches()
        row_enc = enc.index_select(torch.tensor([i]))
        tokens = [1] + b.tgt[i, :n].tolist()
        total = 0.0
        for t in range(n + 1):
            logp = F.log_softmax(model.decode_step(torch.tensor([tokens[t]]), t, row_enc, caches), -1)[0]
            total += float(logp[tokens[t + 1] if t < n else EOS_ID])
            if t == n - 1:
                before_eos = total
        assert scores[i].item() == pytest.approx(-total / torch.log(torch.tensor(2.0, dtype=torch.float64)).item(), rel=1e-9)
        assert no_eos[i].item() == pytest.approx(-before_eos, rel=1e-9)


def test_nat_uniform_copy_index_and_soft_copy_weights():
    src_lengths, tgt_lengths = torch.tensor([5, 1, 3, 7]), torch.tensor([5, 4, 1, 3])
    index = uniform_copy_index(src_lengths, tgt_lengths, 5)
    assert index[0].tolist() == [0, 1, 2, 3, 4]
    assert index[1].tolist() == [0, 0, 0, 0, 0]
    assert index[2, 0].item() == 0
    assert index[3, :3].tolist() == [0, 3, 6]  # first and last source positions are the ends
    model = _model("nat", nat_input="soft")
    b = _batch(3, 30, seed=7)
    enc = model.encode(b.src, b.src_lengths)
    copied = model.copy_input(enc, b.tgt_lengths, int(b.tgt_lengths.max()))
    # A soft copy is a convex combination of the sentence's own (unpadded) source embeddings.
    for i in range(3):
        emb = enc.embedded[i, :int(b.src_lengths[i])]
        weights = torch.linalg.lstsq(emb.T, copied[i].T).solution
        torch.testing.assert_close(emb.T @ weights, copied[i].T, atol=1e-8, rtol=0)


def test_nat_scoring_with_mask_and_reveal_inputs():
    model = _model("nat")
    b = _batch(4, 30, seed=8)
    hidden = torch.rand(b.tgt.shape) < 0.5
    input_tokens = b.tgt.masked_fill(hidden, MASK_ID)
    reveal = ~hidden & (b.tgt != PAD_ID)
    for kwargs in ({}, {"input_tokens": input_tokens}, {"input_tokens": input_tokens, "reveal": reveal}):
        out = model(b.src, b.src_lengths, b.tgt_lengths, **kwargs, with_mask_logits=True)
        assert out.mask_logits.shape == b.tgt.shape
        logp = F.log_softmax(out.logits, -1)
        expected = torch.stack([-logp[i, torch.arange(n), b.tgt[i, :n]].sum() for i, n in
                                enumerate(b.tgt_lengths.tolist())])
        torch.testing.assert_close(score_targets(model, b, unit="nats", **kwargs), expected)
        counted = score_targets(model, b, unit="nats", count_positions=hidden, **kwargs)
        keep = hidden & (b.tgt != PAD_ID)
        expected = torch.stack([-(logp[i].gather(-1, b.tgt[i].unsqueeze(-1)).squeeze(-1) * keep[i]).sum()
                                for i in range(4)])
        torch.testing.assert_close(counted, expected)
    # The decoder input really changes with the revealed tokens.
    a = model(b.src, b.src_lengths, b.tgt_lengths).logits
    c = model(b.src, b.src_lengths, b.tgt_lengths, input_tokens=input_tokens, reveal=reveal).logits
    assert not torch.allclose(a, c)
    with pytest.raises(ValueError, match="reveal needs input_tokens"):
        model(b.src, b.src_lengths, b.tgt_lengths, reveal=reveal)
    with pytest.raises(ValueError, match="tgt_lengths must be >= 1"):
        model(b.src, b.src_lengths, torch.zeros_like(b.tgt_lengths))


def test_nat_length_beam_picks_best_mean_log_prob():
    model = _model("nat", seed=9, max_length_offset=4)
    b = _batch(5, 30, seed=10)
    plain = nat_argmax(model, b.src, b.src_lengths)
    lpd = nat_argmax(model, b.src, b.src_lengths, length_beam=3)
    enc = model.encode(b.src, b.src_lengths)
    lengths, _ = model.predict_lengths(enc, beam=3)
    for i in range(5):
        means, outputs = [], []
        for length in lengths[i].tolist():
            out = model(b.src[i:i + 1], b.src_lengths[i:i + 1], torch.tensor([length]))
            best, tokens = F.log_softmax(out.logits, -1)[0].max(-1)
            means.append(best.mean().item())
            outputs.append(tokens.tolist())
        k = max(range(3), key=lambda j: means[j])
        assert lpd.scores[i].item() == pytest.approx(means[k], rel=1e-9)
        assert lpd.tokens[i] == [t for t in outputs[k] if t >= 6 or t == 3]
        if i == 0:
            assert plain.tokens[i] == [t for t in outputs[0] if t >= 6 or t == 3]
    longer = nat_argmax(model, b.src, b.src_lengths, length_factor=0.5)
    assert all(len(x) >= len(y) for x, y in zip(longer.tokens, plain.tokens))
    assert deduplicate([7, 7, 8, 7, 7, 7]) == [7, 8, 7]


@pytest.mark.parametrize("kind", ["at", "nat"])
def test_overfit_a_tiny_batch(kind):
    torch.manual_seed(0)
    model = _model(kind, vocab=20, dtype=torch.float32).train()
    b = _batch(4, 20, seed=11, max_len=6)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        if kind == "at":
            _, outputs = teacher_forcing(b.tgt, b.tgt_lengths)
            loss = smoothed_token_loss(model(b.src, b.src_lengths, b.tgt, b.tgt_lengths), outputs, 0.0)
            loss = loss / (b.tgt_lengths.sum() + 4)
        else:
            out = model(b.src, b.src_lengths, b.tgt_lengths)
            loss = smoothed_token_loss(out.logits, b.tgt, 0.0) / b.tgt_lengths.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    per_token = score_targets(model, b, unit="nats").sum() / (b.tgt_lengths.sum() + (4 if kind == "at" else 0))
    assert per_token.item() < 0.05
    if kind == "at":
        assert greedy_search(model, b.src, b.src_lengths).tokens == [
            b.tgt[i, :n].tolist() for i, n in enumerate(b.tgt_lengths.tolist())]
    else:
        decoded = nat_argmax(model, b.src, b.src_lengths, tgt_lengths=b.tgt_lengths).tokens
        assert decoded == [b.tgt[i, :n].tolist() for i, n in enumerate(b.tgt_lengths.tolist())]
