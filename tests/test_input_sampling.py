"""Input Sampling decoding: the limits of the head (all masked = default decoding, all revealed =
the predictor's output), the kept candidate and its confidence against a direct computation,
independence of batching, and clear errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mple_metrics.decode import DecodeOptions, generate, nat_argmax, nat_input_sampling
from mple_metrics.models import ModelConfig, NATModel

pytestmark = pytest.mark.usefixtures("one_thread")


def _nat(seed: int) -> NATModel:
    torch.manual_seed(seed)
    config = ModelConfig.preset("tiny", kind="nat", src_vocab_size=30, tgt_vocab_size=30, d_model=16, ffn_dim=32,
                                n_heads=2, encoder_layers=1, decoder_layers=1, dropout=0.0)
    return NATModel(config).eval()


def _src(batch: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 8, (batch,), generator=g)
    src = torch.zeros(batch, int(lengths.max()), dtype=torch.long)
    for b, n in enumerate(lengths.tolist()):
        src[b, :n] = torch.randint(6, 30, (n,), generator=g)
    return src, lengths


def _with_head_bias(model: NATModel, bias: float) -> NATModel:
    with torch.no_grad():
        model.mask_head.weight.zero_()
        model.mask_head.bias.fill_(bias)
    return model


def test_a_head_that_always_says_masked_gives_default_decoding():
    model, predictor = _with_head_bias(_nat(0), 50.0), _nat(1)
    src, lengths = _src()
    sampled = nat_input_sampling(model, predictor, src, lengths, samples=3)
    assert sampled.hypotheses.tokens == nat_argmax(model, src, lengths).tokens
    assert float(sampled.revealed.max()) == 0.0


def test_a_head_that_always_says_revealed_copies_the_predictor():
    model, predictor = _with_head_bias(_nat(0), -50.0), _nat(1)
    src, lengths = _src()
    sampled = nat_input_sampling(model, predictor, src, lengths)
    out_lengths = model.predict_lengths(model.encode(src, lengths))[0][:, 0]
    expected = nat_argmax(predictor, src, lengths, tgt_lengths=out_lengths).tokens
    assert sampled.hypotheses.tokens == expected and float(sampled.revealed.min()) == 1.0
    torch.testing.assert_close(sampled.output_logp, torch.zeros_like(sampled.output_logp))  # all copied


@torch.no_grad()
def test_kept_candidate_and_confidence_match_a_direct_computation():
    model, predictor = _nat(2), _nat(3)
    with torch.no_grad():
        model.mask_head.bias.fill_(0.0)  # about half revealed
    src, lengths = _src(batch=4, seed=4)
    result = nat_input_sampling(model, predictor, src, lengths, samples=4, seed=7)
    enc = model.encode(src, lengths)
    out_lengths = model.predict_lengths(enc)[0][:, 0]
    width = int(out_lengths.max())
    hidden, _ = model.decode_hidden(enc, out_lengths, width)
    p_mask = torch.sigmoid(model.mask_head(hidden).squeeze(-1)).double()
    guess_logp, guess = F.log_softmax(predictor(src, lengths, out_lengths).logits, -1).max(-1)
    for b in range(4):
        n = int(out_lengths[b])
        g = torch.Generator().manual_seed((7 * 1_000_003 + b) % (2 ** 63))
        u = torch.rand(4, n, generator=g)
        scores, outputs = [], []
        for s in range(4):
            reveal = (u[s] < 1 - p_mask[b, :n].float())
            z = torch.zeros(1, width, dtype=torch.bool)
            z[0, :n] = reveal
            out = model.decode(enc.index_select(torch.tensor([b])), out_lengths[b:b + 1], width,
                               input_tokens=guess[b:b + 1], reveal=z)
            logp = F.log_softmax(out.logits[0, :n], -1).double()
            top, tokens = logp.max(-1)
            tokens = torch.where(reveal, guess[b, :n], tokens)
            log_input = torch.where(reveal, torch.log1p(-p_mask[b, :n]) + guess_logp[b, :n].double(),
                                    torch.log(p_mask[b, :n])).sum() / n
            log_output = top.masked_fill(reveal, 0.0).sum() / n
            scores.append((float(log_input + log_output), float(log_input), float(log_output)))
            outputs.append(tokens.tolist())
        best = max(range(4), key=lambda s: scores[s][0])
        assert result.hypotheses.tokens[b] == [t for t in outputs[best] if t > 5]
        assert float(result.input_logp[b]) == pytest.approx(scores[best][1], abs=1e-5)
        assert float(result.output_logp[b]) == pytest.approx(scores[best][2], abs=1e-5)


def test_outputs_do_not_depend_on_batching():
    model, predictor = _nat(4), _nat(5)
    with torch.no_grad():
        model.mask_head.bias.fill_(0.3)
    src, lengths = _src(batch=6, seed=9)
    options = DecodeOptions(strategy="input-sampling", samples=3, seed=2)
    together = generate(model, src, lengths, options, predictor, torch.arange(6)).tokens
    alone = [generate(model, src[b:b + 1, :int(lengths[b])], lengths[b:b + 1], options, predictor,
                      torch.tensor([b])).tokens[0] for b in range(6)]
    assert together == alone


def test_bad_decoding_settings_are_clear_errors():
    with pytest.raises(ValueError, match="strategy must be one of"):
        DecodeOptions(strategy="beam")
    with pytest.raises(ValueError, match="use --samples, not --length-beam"):
        DecodeOptions(strategy="input-sampling", length_beam=3)
    model = _nat(0)
    src, lengths = _src()
    with pytest.raises(ValueError, match="needs the input predictor"):
        generate(model, src, lengths, DecodeOptions(strategy="input-sampling"))
    other = NATModel(ModelConfig.preset("tiny", kind="nat", src_vocab_size=31, tgt_vocab_size=31, d_model=16,
                                        ffn_dim=32, n_heads=2, encoder_layers=1, decoder_layers=1))
    with pytest.raises(ValueError, match="target vocabulary"):
        nat_input_sampling(model, other, src, lengths)



def test_default_decoding_confidence_is_the_argmax_log_probability_and_the_full_mask():
    from mple_metrics.decode import decoding_confidence

    model = _nat(8)
    src, lengths = _src(batch=6, seed=8)
    sources = [src[b, :int(n)].tolist() for b, n in enumerate(lengths)]
    confidence = decoding_confidence(model, None, sources)
    hyps = nat_argmax(model, src, lengths)
    out_lengths = model.predict_lengths(model.encode(src, lengths))[0][:, 0].double()
    expected = float((hyps.scores.double() * out_lengths).sum() / out_lengths.sum())
    assert confidence["output_logp_nats"] == pytest.approx(expected, rel=1e-5)
    with torch.no_grad():
        enc = model.encode(src, lengths)
        hidden, pad = model.decode_hidden(enc, out_lengths.long(), int(out_lengths.max()))
        log_masked = F.logsigmoid(model.mask_head(hidden).squeeze(-1)).masked_fill(pad, 0.0).double()
    assert confidence["input_logp_nats"] == pytest.approx(float(log_masked.sum() / out_lengths.sum()), rel=1e-5)
    assert confidence["revealed_fraction"] == 0.0


def test_noisy_parallel_decoding_keeps_the_candidate_the_at_prefers():
    from mple_metrics.decode.rerank import at_rerank
    from mple_metrics.models import ATModel, score_targets
    from mple_metrics.data import EncodedSplit, collate

    torch.manual_seed(9)
    at = ATModel(ModelConfig.preset("tiny", kind="at", src_vocab_size=30, tgt_vocab_size=30, d_model=16, ffn_dim=32,
                                    n_heads=2, encoder_layers=1, decoder_layers=1, dropout=0.0)).eval()
    src, lengths = _src(batch=3, seed=10)
    g = torch.Generator().manual_seed(1)
    candidates = [[torch.randint(6, 30, (int(torch.randint(1, 7, (1,), generator=g)),), generator=g).tolist()
                   for _ in range(4)] + [[]] for _ in range(3)]
    choice = at_rerank(at, src, lengths, candidates)
    for b, cands in enumerate(candidates):
        scores = []
        for c in cands:
            if not c:
                scores.append(-math.inf)
                continue
            one = collate(EncodedSplit([src[b, :int(lengths[b])].tolist()], [c]), [0])
            scores.append(-float(score_targets(at, one, unit="nats")) / (len(c) + 1))
        assert int(choice[b]) == max(range(len(cands)), key=lambda k: scores[k])
    # In decoding: the length-beam candidate the AT prefers, among the candidates decoded at each length.
    model = _nat(10)
    reranked = nat_argmax(model, src, lengths, length_beam=3, reranker=at)
    top = model.predict_lengths(model.encode(src, lengths), beam=3)[0]
    for b in range(3):
        cands = [nat_argmax(model, src[b:b + 1], lengths[b:b + 1], tgt_lengths=top[b, k:k + 1]).tokens[0]
                 for k in range(3)]
        assert reranked.tokens[b] == cands[int(at_rerank(at, src[b:b + 1], lengths[b:b + 1], [cands])[0])]
