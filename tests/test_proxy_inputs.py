"""Proxy inputs (vanilla, CMLM, GLAT and variants): exact log Q by enumeration, GLAT's glancing
number and its shared dropout masks, the copy mechanism in the loss, the input predictor's head,
exact resume and DDP parity for every input, clear errors."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from mple_metrics.data import EncodedSplit, collate
from mple_metrics.models import ModelConfig, NATModel
from mple_metrics.proxies import (GLATInput, INPUT_NAMES, InputBatch, RawTarget, make_input_proxy,
                                  sequence_nll)
from mple_metrics.train import TrainConfig, Trainer, load_checkpoint, mask_head_loss
from mple_metrics.train.distributed import DistributedContext
from gloo_workers import run_gloo_worker
from test_proxies import assert_runs_agree
from test_train import tiny_config, tiny_dataset

pytestmark = pytest.mark.usefixtures("one_thread")

SAMPLED_INPUTS = [name for name in INPUT_NAMES if name != "vanilla"]


def _nat(dropout: float = 0.0, seed: int = 0) -> NATModel:
    torch.manual_seed(seed)
    config = ModelConfig.preset("tiny", kind="nat", src_vocab_size=20, tgt_vocab_size=20, d_model=16, ffn_dim=32,
                                n_heads=2, encoder_layers=1, decoder_layers=1, dropout=dropout)
    return NATModel(config)


def _batch(lengths: list[int], seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    src = [torch.randint(6, 20, (4,), generator=g).tolist() for _ in lengths]
    tgt = [torch.randint(6, 20, (n,), generator=g).tolist() for n in lengths]
    return collate(EncodedSplit(src, tgt), list(range(len(lengths))))


def _all_reveals(length: int, width: int) -> torch.Tensor:
    rows = [list(bits) + [False] * (width - length) for bits in itertools.product([False, True], repeat=length)]
    return torch.tensor(rows, dtype=torch.bool)


@pytest.mark.parametrize("name, options", [("cmlm", {"cmlm_count": "fairseq"}), ("cmlm", {"cmlm_count": "paper"}),
                                           ("cmlm-fixed", {})])
@pytest.mark.parametrize("length", [1, 2, 3, 5, 6])
def test_cmlm_log_q_sums_to_one_over_every_input(name, options, length):
    proxy = make_input_proxy(name, **options)
    reveals = _all_reveals(length, 6)
    lengths = torch.full((reveals.shape[0],), length)
    total = torch.logsumexp(proxy.log_prob(reveals, lengths), dim=0)
    assert float(total) == pytest.approx(0.0, abs=1e-12)


def test_cmlm_samples_match_their_log_q_and_count_rule():
    batch = _batch([6] * 4000)
    sampled = make_input_proxy("cmlm").sample(_nat(), batch, torch.Generator().manual_seed(0))
    hidden = sampled.hidden.sum(1)
    assert int(hidden.min()) >= 1 and int(hidden.max()) <= 6  # fairseq: hidden uniform on 1..L
    counts = torch.bincount(hidden, minlength=7)[1:].double() / 4000
    assert torch.allclose(counts, torch.full((6,), 1 / 6, dtype=torch.float64), atol=0.03)
    expected = -math.log(6) - torch.tensor([math.log(math.comb(6, int(6 - h))) for h in hidden])
    torch.testing.assert_close(sampled.log_q, expected.double())
    fixed = make_input_proxy("cmlm-fixed").sample(_nat(), _batch([5, 10, 1]))
    assert fixed.reveal.sum(1).tolist() == [1, 2, 0]  # round(0.2 L)


def _constructed_log_probs(batch, wrong: list[list[int]]) -> torch.Tensor:
    """Log-probs whose argmax is the target except at the listed positions (shifted there)."""
    logp = torch.full((*batch.tgt.shape, 20), -10.0)
    predicted = batch.tgt.clone()
    for b, positions in enumerate(wrong):
        for j in positions:
            predicted[b, j] = 6 + (int(batch.tgt[b, j]) - 6 + 1) % 14
    logp.scatter_(2, predicted.unsqueeze(-1), 0.0)
    return logp.log_softmax(-1)


def test_glat_glancing_number_follows_the_schedule_and_the_distance():
    batch = _batch([6, 6, 4])
    logp = _constructed_log_probs(batch, [[0, 1, 2, 3, 4], [2], []])
    proxy = GLATInput("glat", anneal_steps=10)
    proxy.update = 0
    counts, weights = proxy.glancing(batch, logp.argmax(-1))
    assert counts.tolist() == [2, 0, 0] and bool((weights == 1).all())  # floor(0.5 * [5, 1, 0])
    proxy.update = 5
    assert proxy.ratio() == pytest.approx(0.4)
    proxy.update = 100  # after the annealing: 0.3
    assert proxy.glancing(batch, logp.argmax(-1))[0].tolist() == [1, 0, 0]
    # Levenshtein: a prediction shifted by one position is 2 edits away but 5 Hamming positions.
    shifted = batch.tgt.clone()
    shifted[0, 1:6] = batch.tgt[0, 0:5].clone()
    hamming, lev = GLATInput("glat"), GLATInput("glat-lev")
    assert int((shifted[0] != batch.tgt[0]).sum()) >= 4
    from mple_metrics.proxies import hamming_distance, levenshtein_distance
    h = int(hamming_distance(shifted, batch.tgt, batch.tgt_lengths)[0])
    d = int(levenshtein_distance(shifted, batch.tgt, a_lengths=batch.tgt_lengths, b_lengths=batch.tgt_lengths)[0])
    assert hamming.glancing(batch, shifted)[0][0] == h // 2 and lev.glancing(batch, shifted)[0][0] == d // 2
    assert d < h


@pytest.mark.parametrize("variant", ["glat", "glat-lev", "glat-pref", "glat-1-pref"])
@pytest.mark.parametrize("length", [1, 3, 6])
def test_glat_log_q_sums_to_one_over_every_input_of_the_drawn_size(variant, length):
    model = _nat(seed=1).eval()
    batch = _batch([length], seed=length)
    proxy = GLATInput(variant)
    _, predicted, p_target = proxy.first_pass(model, batch)
    counts, weights = proxy.glancing(batch, predicted, p_target)
    for count in range(length + 1):  # every glancing number the first pass could give
        reveals = _all_reveals(length, length)
        n = reveals.shape[0]
        values = proxy.log_prob(reveals, torch.full((n,), length), torch.full((n,), count), weights.expand(n, -1))
        assert float(torch.logsumexp(values, 0)) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("variant", ["glat", "glat-pref"])
def test_glat_samples_the_drawn_count_with_its_log_q(variant):
    torch.manual_seed(3)
    model = _nat(seed=2).eval()
    batch = _batch([6, 5, 4, 6], seed=4)
    proxy = GLATInput(variant)
    sampled = proxy.sample(model, batch)
    _, predicted, p_target = proxy.first_pass(model, batch)
    counts, weights = proxy.glancing(batch, predicted, p_target)
    assert torch.equal(sampled.reveal.sum(1), counts)
    torch.testing.assert_close(sampled.log_q, proxy.log_prob(sampled.reveal, batch.tgt_lengths, counts, weights))


def test_glat_first_and_second_pass_share_their_dropout_masks():
    model = _nat(dropout=0.3, seed=5).train()
    batch = _batch([6, 5], seed=5)
    proxy = GLATInput("glat", ratio_start=0.0, ratio_end=0.0, train_mask_head=True)  # reveals nothing
    torch.manual_seed(11)
    sampled = proxy.sample(model, batch)
    out = RawTarget().forward(model, sampled)
    first = model.output_logits(sampled.mask_features).log_softmax(-1)
    torch.testing.assert_close(out.log_probs, first)  # same input and same masks: same outputs
    other = model(batch.src, batch.src_lengths, batch.tgt_lengths).logits.log_softmax(-1)
    assert not torch.allclose(other, first)  # fresh masks differ: the check can fail


def test_revealed_positions_contribute_nothing_to_the_loss():
    model = _nat(seed=6).eval()
    batch = _batch([6, 4], seed=6)
    torch.manual_seed(0)
    sampled = make_input_proxy("cmlm").sample(model, batch)
    proxy = RawTarget()
    out = proxy.forward(model, sampled)
    loss, tokens = proxy.loss(sampled, out, 0.0)
    assert tokens == int(sampled.hidden.sum())
    hidden_only = out.log_probs.masked_fill(~sampled.hidden.unsqueeze(-1), 0.0)
    assert float(loss.detach()) == pytest.approx(float(sequence_nll(hidden_only.detach(), batch.tgt, batch.tgt_lengths).sum()), rel=1e-5)
    smoothed, _ = proxy.loss(sampled, out, 0.1)
    uniform = (-out.log_probs.mean(-1))[sampled.hidden].sum()
    assert float(smoothed.detach()) == pytest.approx(0.9 * float(loss.detach()) + 0.1 * float(uniform.detach()), rel=1e-5)


def test_the_input_predictor_head_learns(tmp_path):
    data = tiny_dataset(tmp_path / "data")
    trainer = Trainer(tiny_config(data, tmp_path / "run", model="nat", input="cmlm-fixed", max_steps=60, lr=3e-2, lr_schedule="constant",
                                  valid_every_steps=60))
    model = trainer.raw_model
    batch = collate(trainer.train_batches.encoded, list(range(16)))

    @torch.no_grad()
    def head_loss() -> float:
        torch.manual_seed(0)
        sampled = trainer.input_proxy.sample(model, batch)
        out = RawTarget().forward(model, sampled)
        return float(mask_head_loss(out.mask_logits, sampled.hidden, batch.tgt_lengths)) / batch.num_tokens

    before = head_loss()
    trainer.train()
    after = head_loss()
    # 80% of the positions are hidden: the best the head can do from X alone is about the binary
    # entropy H(0.8) = 0.500 nats per position; it starts well above and approaches it.
    assert after < before - 0.05 and after < 0.55, (before, after)


def _config(data: Path, out: Path, name: str, **changes) -> TrainConfig:
    return tiny_config(data, out, model="nat", input=name, **changes)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tiny_dataset(tmp_path_factory.mktemp("inputs_data"))


@pytest.mark.parametrize("name", SAMPLED_INPUTS)
def test_resume_equals_uninterrupted_for_every_input(data_dir, tmp_path, name):
    # GLAT anneals over the run as planned at its start; an explicit span makes the two runs' plans
    # equal although the interrupted one was started with a shorter --max-steps.
    extra = {"glat_anneal_steps": 6} if name.startswith("glat") else {}
    Trainer(_config(data_dir, tmp_path / "a", name, max_steps=7, **extra)).train()
    Trainer(_config(data_dir, tmp_path / "b", name, max_steps=4, **extra)).train()
    Trainer(_config(data_dir, tmp_path / "b", name, max_steps=7, resume=True, **extra)).train()
    a, b = (load_checkpoint(tmp_path / d / "last.pt")["model"] for d in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    logs = [[json.loads(x)["loss_bits_per_token"] for x in (tmp_path / d / "train.jsonl").read_text().splitlines()]
            for d in ("a", "b")]
    assert logs[0] == logs[1] and len(logs[0]) == 7
    valid = [json.loads(x) for x in (tmp_path / "a" / "valid.jsonl").read_text().splitlines()]
    assert all("proxy_nll_bits_per_token" in v for v in valid)
    assert load_checkpoint(tmp_path / "a" / "last.pt")["proxy"]["input"] == name


def test_glat_keeps_the_annealing_span_it_started_with(data_dir, tmp_path):
    Trainer(_config(data_dir, tmp_path / "r", "glat", max_steps=4)).train()
    resumed = Trainer(_config(data_dir, tmp_path / "r", "glat", max_steps=9, resume=True))
    resumed.train()
    assert resumed.progress.planned_updates == 4 and resumed.input_proxy.total_updates == 4


def _ddp_train(context: DistributedContext, data: str, out: str, name: str) -> None:
    Trainer(_config(Path(data), Path(out), name, dropout=0.0, max_steps=4, valid_every_steps=0), context).train()


def _ddp_worker(rank: int, world_size: int, store: str, data: str, out: str, name: str) -> None:
    run_gloo_worker(rank, world_size, store, _ddp_train, data, out, name)


@pytest.mark.parametrize("name", ["cmlm", "glat"])
def test_ddp_matches_one_process_for_inputs(data_dir, tmp_path, name):
    """Z is a function of (seed, update, sentences): 2 processes train like one with update_freq 2."""
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "store"), str(data_dir), str(tmp_path / "ddp"), name), nprocs=2,
             join=True)
    Trainer(_config(data_dir, tmp_path / "single", name, dropout=0.0, max_steps=4, valid_every_steps=0,
                    update_freq=2)).train()
    # The head's gradient is synchronised too.
    assert_runs_agree(tmp_path / "ddp", tmp_path / "single", 4, ("mask_head.weight", "length_head.weight"))


@pytest.mark.parametrize("changes, message", [
    ({"model": "nat", "input": "cmlm", "target": "axe"}, "cannot be combined with --target axe"),
    ({"model": "at", "input": "glat"}, "trains a NAT"),
    ({"model": "nat", "input": "glat", "cmlm_count": "paper"}, "--cmlm-count applies to --input cmlm"),
    ({"model": "nat", "input": "cmlm", "glat_anneal_steps": 3}, "--glat-anneal-steps applies"),
    ({"model": "nat", "input": "bogus"}, "--input must be one of"),
    ({"model": "nat", "input": "cmlm", "mask_head_weight": -1.0}, "--mask-head-weight must be"),
])
def test_bad_input_settings_are_clear_errors(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


def test_input_batch_counts_hidden_tokens():
    batch = _batch([3, 2])
    reveal = torch.tensor([[True, False, False], [False, False, False]])
    sampled = InputBatch(batch.src, batch.src_lengths, batch.tgt, batch.tgt_lengths, batch.indices, reveal,
                         torch.zeros(2, dtype=torch.float64))
    assert sampled.loss_tokens == 4 and batch.loss_tokens == 5


def test_a_proxy_input_combines_with_dynamic_kd_and_resumes_exactly(data_dir, tmp_path):
    """GLAT + dynamic KD (Appendix F's combination): T is chosen first, then Z drawn on it."""
    from test_proxies import _fake_kd

    kd = [str(_fake_kd(tmp_path / f"kd{k}", data_dir, transform, f"t{k}"))
          for k, transform in enumerate((lambda t: " ".join(t.split()[::-1]), lambda t: t))]
    extra = dict(target="dynamic-kd", kd=kd, glat_anneal_steps=6)
    Trainer(_config(data_dir, tmp_path / "a", "glat", max_steps=6, **extra)).train()
    Trainer(_config(data_dir, tmp_path / "b", "glat", max_steps=3, **extra)).train()
    Trainer(_config(data_dir, tmp_path / "b", "glat", max_steps=6, resume=True, **extra)).train()
    a, b = (load_checkpoint(tmp_path / d / "last.pt")["model"] for d in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    records = [json.loads(x) for x in (tmp_path / "a" / "train.jsonl").read_text().splitlines()]
    assert all(abs(sum(r["proxy_choice_fraction"]) - 1) < 1e-9 for r in records)
    proxy = load_checkpoint(tmp_path / "a" / "last.pt")["proxy"]
    assert proxy["target"] == "dynamic-kd" and proxy["input"] == "glat"
