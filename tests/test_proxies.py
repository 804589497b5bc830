"""Proxy targets (raw, kd, axe, oaxe, dynamic-kd): each loss against an independent reference,
proxy_target against what the loss was computed on, the behaviour the paper predicts on tiny
tasks, exact resume and DDP parity for every method, and clear errors for bad combinations."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import sacrebleu
import torch
import torch.multiprocessing as mp

from mple_metrics.data import BLANK_ID, Batch, EncodedSplit, Split, collate, load_dataset, write_split
from mple_metrics.models import ModelConfig, NATModel, score_targets
from mple_metrics.proxies import (AXETarget, DynamicKDTarget, KDTarget, OaXETarget, RawTarget,
                                  candidate_nll_bits_per_token, candidate_pairwise_bleu, make_target_proxy,
                                  read_target_text, sequence_nll)
from mple_metrics.train import CheckpointError, Trainer, TrainConfig, load_checkpoint
from mple_metrics.train.distributed import DistributedContext
from gloo_workers import run_gloo_worker
from test_train import WORDS, tiny_config, tiny_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------- fixtures
def _fake_kd(directory: Path, data: Path, transform, teacher: str) -> Path:
    """A KD dataset directory as mple distill writes it, with targets ``transform(target)``."""
    dataset = load_dataset(data, splits=("train", "valid"))
    directory.mkdir(parents=True)
    for name in ("train", "valid"):
        split = dataset[name]
        write_split(directory, Split(name, list(split.src), [transform(t) for t in split.tgt]))
        write_split(directory, Split(f"{name}.raw", list(split.src), list(split.tgt),
                                     [list(r) for r in split.refs]))
        (directory / f"{name}.raw.src").unlink()
    (directory / "kd.json").write_text(json.dumps({"teacher": teacher, "teacher_sha256": teacher}))
    return directory


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("proxies")
    data = tiny_dataset(root / "data")
    return {"data": data,
            "kd_reversed": _fake_kd(root / "kd_reversed", data, lambda t: " ".join(t.split()[::-1]), "reversed"),
            "kd_same": _fake_kd(root / "kd_same", data, lambda t: t, "same")}


def _nat(vocab: int = 20, seed: int = 0) -> NATModel:
    torch.manual_seed(seed)
    config = ModelConfig.preset("tiny", kind="nat", src_vocab_size=vocab, tgt_vocab_size=vocab, d_model=16,
                                ffn_dim=32, n_heads=2, encoder_layers=1, decoder_layers=1, dropout=0.0)
    return NATModel(config).eval()


def _batch(seed: int = 0, batch: int = 4, vocab: int = 20) -> Batch:
    g = torch.Generator().manual_seed(seed)
    src = [torch.randint(6, vocab, (int(torch.randint(2, 7, (1,), generator=g)),), generator=g).tolist()
           for _ in range(batch)]
    tgt = [torch.randint(6, vocab, (int(torch.randint(1, 7, (1,), generator=g)),), generator=g).tolist()
           for _ in range(batch)]
    return collate(EncodedSplit(src, tgt), list(range(batch)))


# ----------------------------------------------------------------------------- losses and T
@pytest.mark.parametrize("proxy", [RawTarget(), KDTarget()], ids=["raw", "kd"])
def test_mle_loss_is_the_float64_nll_of_its_proxy_target(proxy):
    model, batch = _nat(), _batch()
    out = proxy.forward(model, batch)
    loss, tokens = proxy.loss(batch, out, 0.0)
    target = proxy.proxy_target(batch, out)
    assert torch.equal(target, batch.tgt) and tokens == batch.num_tokens
    expected = score_targets(model.double(), batch, unit="nats").sum()
    torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=1e-5)
    # Label smoothing: (1 - eps) NLL + eps * sum over positions of mean_v(-log p_v).
    logp = out.log_probs.double()
    keep = batch.tgt != 0
    uniform = (-logp.mean(-1))[keep].sum()
    smoothed, _ = proxy.loss(batch, proxy.forward(model.float(), batch), 0.1)
    torch.testing.assert_close(smoothed.double(), 0.9 * sequence_nll(logp, target, batch.tgt_lengths).sum()
                               + 0.1 * uniform, rtol=1e-5, atol=1e-5)


def _brute_force_axe(logp: torch.Tensor, y: list[int], lp: int, delta: float) -> float:
    """Cheapest path through the AXE lattice of DESIGN.md §3 by exhaustive recursion over the
    moves into (i, j): align (cost G[i, j]), skip prediction j (E[j]), skip target i (δ G[i, j],
    at prediction 1 while no prediction is consumed)."""
    import functools

    g = lambda i, j: -float(logp[j - 1, y[i - 1]])  # noqa: E731 (1-based as in the design)
    e = lambda j: -float(logp[j - 1, BLANK_ID])  # noqa: E731

    @functools.lru_cache(maxsize=None)
    def best(i: int, j: int) -> float:
        if i == 0 and j == 0:
            return 0.0
        options = []
        if i > 0 and j > 0:
            options.append(best(i - 1, j - 1) + g(i, j))
        if j > 0:
            options.append(best(i, j - 1) + e(j))
        if i > 0 and lp > 0:
            options.append(best(i - 1, j) + delta * g(i, max(j, 1)))
        return min(options) if options else math.inf

    return best(len(y), lp)


@pytest.mark.parametrize("delta", [0.0, 1.0, 5.0])
@pytest.mark.parametrize("scale", [1.0, 1.5])
def test_axe_loss_is_the_best_alignment_and_its_target_a_subsequence_with_blanks(delta, scale):
    model, batch = _nat(seed=1), _batch(seed=1)
    proxy = AXETarget(delta, scale)
    out = proxy.forward(model, batch)
    out.log_probs = out.log_probs.detach()
    loss, tokens = proxy.loss(batch, out, 0.0)
    assert tokens == batch.num_tokens
    expected_lengths = torch.round(batch.tgt_lengths.double() * scale).long()
    assert torch.equal(out.pred_lengths, expected_lengths)
    brute = sum(_brute_force_axe(out.log_probs[b].double(), batch.tgt[b, :n].tolist(), int(out.pred_lengths[b]), delta)
                for b, n in enumerate(batch.tgt_lengths.tolist()))
    assert float(loss) == pytest.approx(brute, rel=1e-5)
    target = proxy.proxy_target(batch, out)
    for b, n in enumerate(batch.tgt_lengths.tolist()):
        row = target[b, :int(out.pred_lengths[b])].tolist()
        kept = [t for t in row if t != BLANK_ID]
        reference = batch.tgt[b, :n].tolist()
        it = iter(reference)
        assert all(t in it for t in kept), "T* without blanks is a subsequence of the reference"
    if delta == 0.0:  # then the loss is exactly the NLL of T* (ops.axe_align's contract)
        nll = sequence_nll(out.log_probs, target, out.pred_lengths).sum()
        assert float(loss) == pytest.approx(float(nll), rel=1e-5)


def test_oaxe_loss_is_the_best_permutation_and_its_target_that_permutation():
    model, batch = _nat(seed=2), _batch(seed=2)
    proxy = OaXETarget()
    out = proxy.forward(model, batch)
    out.log_probs = out.log_probs.detach()
    loss, _ = proxy.loss(batch, out, 0.0)
    target = proxy.proxy_target(batch, out)
    brute = 0.0
    for b, n in enumerate(batch.tgt_lengths.tolist()):
        y = batch.tgt[b, :n].tolist()
        brute += min(sum(-float(out.log_probs[b, j, t].detach()) for j, t in enumerate(p)) for p in itertools.permutations(y))
        assert sorted(target[b, :n].tolist()) == sorted(y)
    assert float(loss) == pytest.approx(brute, rel=1e-5)
    assert float(sequence_nll(out.log_probs, target, batch.tgt_lengths).sum()) == pytest.approx(float(loss), rel=1e-5)


def test_oaxe_pretrains_with_mle_then_switches_and_truncates_in_the_stated_base():
    model, batch = _nat(seed=3), _batch(seed=3)
    proxy = OaXETarget(pretrain_steps=2, truncate=0.05)
    out = proxy.forward(model, batch)
    proxy.update = 1
    assert torch.equal(proxy.proxy_target(batch, out), batch.tgt)
    mle, _ = RawTarget().loss(batch, out, 0.0)
    assert float(proxy.loss(batch, out, 0.0)[0]) == pytest.approx(float(mle))
    proxy.update = 2
    target = proxy.proxy_target(batch, out)
    selected = out.log_probs.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1).double()
    keep = (batch.tgt != 0) & (selected >= math.log(0.05))
    assert float(proxy.loss(batch, out, 0.0)[0]) == pytest.approx(float(-selected[keep].sum()), rel=1e-5)
    compat = OaXETarget(truncate=0.05, truncate_base="public-code")
    assert compat.effective_truncate() == pytest.approx(0.05 ** (1 / math.log(2)))  # -log2(p) vs ln NLL


# ----------------------------------------------------------------------------- dynamic KD
def _dynamic(candidates: list[list[list[int]]], texts: list[list[str]], **kwargs) -> DynamicKDTarget:
    return DynamicKDTarget({"train": candidates}, {"train": candidate_pairwise_bleu(texts)}, **kwargs)


def _candidate_batch(k: int, seed: int = 4):
    batch = _batch(seed=seed)
    g = torch.Generator().manual_seed(seed)
    candidates = [[torch.randint(6, 20, (int(torch.randint(1, 6, (1,), generator=g)),), generator=g).tolist()
                   for _ in range(k - 1)] + [batch.tgt[b, :n].tolist()] for b, n in enumerate(batch.tgt_lengths.tolist())]
    texts = [[" ".join(WORDS[t % len(WORDS)] for t in c) for c in row] for row in candidates]
    return batch, candidates, texts


def test_pairwise_bleu_of_candidates_is_sacrebleu_on_the_text(tmp_path):
    texts = [["the cat sat on the mat", "a cat sat on a mat", "the cat sat"], ["hello world", "hello there world", "x"]]
    matrix = candidate_pairwise_bleu(texts, cache_dir=tmp_path)
    for n, row in enumerate(texts):
        for i, j in itertools.product(range(3), range(3)):
            assert matrix[n, i, j] == pytest.approx(sacrebleu.sentence_bleu(row[i], [row[j]]).score, abs=1e-9)
    cached = list((tmp_path / ".pairwise_bleu").glob("*.npy"))
    assert len(cached) == 1
    np.save(cached[0], np.full_like(matrix, 7.0))  # the cache is what is read back
    assert (candidate_pairwise_bleu(texts, cache_dir=tmp_path) == 7.0).all()


def test_dynamic_kd_with_only_the_raw_target_picks_it():
    batch, candidates, texts = _candidate_batch(k=1)
    proxy = _dynamic(candidates, texts)
    chosen = proxy.prepare(_nat(), batch)
    assert proxy.last_choice.tolist() == [0] * len(batch)
    assert torch.equal(chosen.tgt, batch.tgt) and torch.equal(chosen.tgt_lengths, batch.tgt_lengths)


@pytest.mark.parametrize("k", [0, 1, 2])
def test_dynamic_kd_follows_a_huge_gamma(k):
    batch, candidates, texts = _candidate_batch(k=3)
    gamma = [1.0, 1.0, 1.0]
    gamma[k] = 1e6
    proxy = _dynamic(candidates, texts, gamma=gamma)
    proxy.prepare(_nat(), batch)
    distinct = [len({tuple(c) for c in row}) == 3 for row in candidates]
    assert all(choice == k for choice, ok in zip(proxy.last_choice.tolist(), distinct) if ok)


def test_dynamic_kd_without_regularizer_picks_the_candidate_of_least_nll_per_token():
    batch, candidates, texts = _candidate_batch(k=3, seed=5)
    model = _nat(seed=5)
    proxy = _dynamic(candidates, texts, regularizer=False)
    chosen = proxy.prepare(model, batch)
    # Independent reference: score every candidate as its own batch with score_targets.
    for b, row in enumerate(candidates):
        per_token = []
        for c in row:
            one = collate(EncodedSplit([batch.src[b, :int(batch.src_lengths[b])].tolist()], [c]), [0])
            per_token.append(float(score_targets(model, one)) / len(c))
        assert proxy.last_choice[b].item() == int(np.argmin(per_token))
        assert chosen.tgt[b, :len(row[proxy.last_choice[b]])].tolist() == row[proxy.last_choice[b]]
    scores = candidate_nll_bits_per_token(model, batch, candidates, max_length=255)
    torch.testing.assert_close(scores.min(1).values, scores.gather(1, proxy.last_choice[:, None]).squeeze(1))


def test_dynamic_kd_with_regularizer_minimises_nll_plus_weighted_pairwise_bleu():
    batch, candidates, texts = _candidate_batch(k=3, seed=6)
    model = _nat(seed=6)
    gamma, beta = [0.5, 1.5, 2.0], 0.2
    proxy = _dynamic(candidates, texts, gamma=gamma, beta=beta)
    proxy.prepare(model, batch)
    nll = candidate_nll_bits_per_token(model, batch, candidates, max_length=255)
    for b, row in enumerate(texts):
        objective = [float(nll[b, k]) - beta * sum(g * sacrebleu.sentence_bleu(row[k], [row[m]]).score
                                                  for m, g in enumerate(gamma)) for k in range(3)]
        assert proxy.last_choice[b].item() == int(np.argmin(objective))
    # The loss is taken on the chosen target, and proxy_target returns it.
    chosen = proxy.prepare(model, batch)
    out = proxy.forward(model, chosen)
    loss, tokens = proxy.loss(chosen, out, 0.0)
    assert tokens == chosen.num_tokens
    assert float(loss) == pytest.approx(float(sequence_nll(out.log_probs, proxy.proxy_target(chosen, out),
                                                            out.pred_lengths).sum()), rel=1e-5)


def test_dynamic_kd_never_chooses_candidates_that_do_not_fit():
    batch, candidates, texts = _candidate_batch(k=2, seed=7)
    for row in candidates:
        row[0] = [7] * 300
    proxy = _dynamic(candidates, [[("w " * 300).strip(), t[1]] for t in texts], gamma=[1e6, 1.0])
    proxy.prepare(_nat(), batch)
    assert proxy.last_choice.tolist() == [1] * len(batch)


# ----------------------------------------------------------------------------- training
def test_kd_data_lowers_the_training_nll_relative_to_raw(tmp_path):
    """Figure 5's direction: a deterministic teacher (one mode per source) is easier to fit than
    raw data whose targets mix two modes."""
    root = tmp_path
    rng = np.random.default_rng(0)
    src = [" ".join(rng.choice(WORDS[:6], size=4)) for _ in range(160)]
    mode = [lambda s: s.replace("a", "A"), lambda s: " ".join(s.split()[::-1])]
    tgt = [mode[int(rng.integers(2))](s) for s in src]
    data = root / "data"
    data.mkdir()
    for name, sl in (("train", slice(0, 128)), ("valid", slice(128, 160))):
        write_split(data, Split(name, src[sl], tgt[sl]))
    _fake_kd(root / "kd", data, lambda t: t, "t")
    kd_dataset = load_dataset(data, splits=("train", "valid"))
    for name in ("train", "valid"):  # the teacher always outputs the first mode
        split = kd_dataset[name]
        write_split(root / "kd", Split(name, list(split.src), [mode[0](s) for s in split.src]))
    runs = {}
    for target, extra in (("raw", {}), ("kd", {"kd": [str(root / "kd")]})):
        Trainer(tiny_config(data, root / target, model="nat", target=target, max_steps=60, valid_every_steps=60,
                            lr=1e-2, label_smoothing=0.0, max_tokens=256, **extra)).train()
        runs[target] = [json.loads(x)["loss_bits_per_token"] for x in (root / target / "train.jsonl").read_text().splitlines()]
    assert np.mean(runs["kd"][-10:]) < 0.8 * np.mean(runs["raw"][-10:])


def test_axe_with_a_huge_skip_penalty_on_equal_lengths_trains_like_mle(workspace, tmp_path):
    curves = []
    for target, extra in (("raw", {}), ("axe", {"skip_penalty": 1e4})):
        Trainer(tiny_config(workspace["data"], tmp_path / target, model="nat", target=target, max_steps=8,
                            **extra)).train()
        curves.append([json.loads(x)["loss_bits_per_token"] for x in (tmp_path / target / "train.jsonl").read_text().splitlines()])
    torch.testing.assert_close(torch.tensor(curves[0]), torch.tensor(curves[1]), rtol=1e-4, atol=1e-5)


def test_oaxe_fits_shuffled_targets_that_mle_cannot(tmp_path):
    rng = np.random.default_rng(1)
    src = [" ".join(rng.choice(WORDS[:8], size=5, replace=False)) for _ in range(96)]
    tgt = [" ".join(rng.permutation(s.split())) for s in src]  # the bag is known, the order is not
    data = tmp_path / "data"
    data.mkdir()
    for name, sl in (("train", slice(0, 80)), ("valid", slice(80, 96))):
        write_split(data, Split(name, src[sl], tgt[sl]))
    final = {}
    for target in ("raw", "oaxe"):
        Trainer(tiny_config(data, tmp_path / target, model="nat", target=target, max_steps=150,
                            valid_every_steps=150, lr=1e-2, label_smoothing=0.0, max_tokens=512,
                            dropout=0.0)).train()
        log = [json.loads(x)["loss_bits_per_token"] for x in (tmp_path / target / "train.jsonl").read_text().splitlines()]
        final[target] = float(np.mean(log[-10:]))
    assert final["oaxe"] < 0.3 and final["raw"] > 1.0, final


PROXY_RUNS = {
    "raw": {},
    "kd": {"kd": ["kd_reversed"]},
    "axe": {"skip_penalty": 5.0, "pred_length_scale": 1.5},
    "oaxe": {"oaxe_pretrain_steps": 2, "oaxe_truncate": 0.01},
    "dynamic-kd": {"kd": ["kd_reversed", "kd_same"], "gamma": [1.0, 2.0, 1.5]},
}


def _proxy_config(workspace, out: Path, target: str, **changes) -> TrainConfig:
    extra = dict(PROXY_RUNS[target])
    if "kd" in extra:
        extra["kd"] = [str(workspace[name]) for name in extra["kd"]]
    extra.update(changes)
    return tiny_config(workspace["data"], out, model="nat", target=target, **extra)


def _params(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


@pytest.mark.parametrize("target", list(PROXY_RUNS))
def test_resume_equals_uninterrupted_for_every_proxy(workspace, tmp_path, target):
    Trainer(_proxy_config(workspace, tmp_path / "a", target, max_steps=7)).train()
    Trainer(_proxy_config(workspace, tmp_path / "b", target, max_steps=4)).train()
    Trainer(_proxy_config(workspace, tmp_path / "b", target, max_steps=7, resume=True)).train()
    a, b = _params(tmp_path / "a" / "last.pt"), _params(tmp_path / "b" / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    logs = [[json.loads(x)["loss_bits_per_token"] for x in (tmp_path / d / "train.jsonl").read_text().splitlines()]
            for d in ("a", "b")]
    assert logs[0] == logs[1] and len(logs[0]) == 7
    valid = [json.loads(x) for x in (tmp_path / "a" / "valid.jsonl").read_text().splitlines()]
    if target != "raw":
        assert all("proxy_loss_bits_per_token" in v and v["selection"]["metric"] == "proxy" for v in valid)
    payload = load_checkpoint(tmp_path / "a" / "best.pt")
    assert payload["proxy"]["target"] == target
    if target == "dynamic-kd":  # the log says how often each candidate was chosen
        records = [json.loads(x) for x in (tmp_path / "a" / "train.jsonl").read_text().splitlines()]
        assert all(len(r["proxy_choice_fraction"]) == 3 and abs(sum(r["proxy_choice_fraction"]) - 1) < 1e-9
                   for r in records)


def _ddp_train(context: DistributedContext, workspace: dict, out: str, target: str) -> None:
    Trainer(_proxy_config(workspace, Path(out), target, dropout=0.0, max_steps=4, valid_every_steps=0),
            context).train()


def _ddp_worker(rank: int, world_size: int, store: str, workspace: dict, out: str, target: str) -> None:
    run_gloo_worker(rank, world_size, store, _ddp_train, workspace, out, target)


@pytest.mark.parametrize("target", ["axe", "oaxe", "dynamic-kd"])
def test_ddp_matches_one_process_for_proxies(workspace, tmp_path, target):
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "store"), workspace, str(tmp_path / "ddp"), target), nprocs=2,
             join=True)
    Trainer(_proxy_config(workspace, tmp_path / "single", target, dropout=0.0, max_steps=4, valid_every_steps=0,
                          update_freq=2)).train()
    a = _params(tmp_path / "ddp" / "last.pt")
    assert_runs_agree(tmp_path / "ddp", tmp_path / "single", 4,
                      ("out_proj.weight", "length_head.weight") if "out_proj.weight" in a else list(a)[:3])


def assert_runs_agree(first: Path, second: Path, updates: int, keys) -> None:
    """Two run directories logged the same ``updates`` loss values (to float tolerance) and end
    with the same parameters ``keys``: the check of 2-process DDP against 1 process."""
    curves = [[json.loads(x)["loss_bits_per_token"] for x in (run / "train.jsonl").read_text().splitlines()]
              for run in (first, second)]
    assert len(curves[0]) == updates
    torch.testing.assert_close(torch.tensor(curves[0]), torch.tensor(curves[1]), rtol=1e-5, atol=1e-6)
    a, b = _params(first / "last.pt"), _params(second / "last.pt")
    for key in keys:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)


def test_init_from_starts_from_the_weights_and_records_the_origin(workspace, tmp_path):
    Trainer(_proxy_config(workspace, tmp_path / "origin", "raw", max_steps=3)).train()
    trainer = Trainer(_proxy_config(workspace, tmp_path / "tuned", "oaxe", max_steps=2,
                                    init_from=str(tmp_path / "origin")))
    origin = _params(tmp_path / "origin" / "best.pt")
    assert all(torch.equal(trainer.raw_model.state_dict()[k], v) for k, v in origin.items())
    summary = trainer.train()
    assert summary["init_from"]["step"] == 3 and len(summary["init_from"]["sha256"]) == 64
    assert summary["steps"] == 2  # a fresh schedule and counter
    saved = json.loads((tmp_path / "tuned" / "config.json").read_text())
    assert saved["init_from"] == str(tmp_path / "origin")
    with pytest.raises(CheckpointError, match="another architecture.*d_model: 16 != 24"):
        Trainer(_proxy_config(workspace, tmp_path / "wide", "raw", init_from=str(tmp_path / "origin"),
                              model_overrides={"d_model": 24, "ffn_dim": 32, "n_heads": 2, "encoder_layers": 1,
                                               "decoder_layers": 1}))


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("changes, message", [
    ({"model": "nat", "target": "kd"}, "--target kd needs exactly one --kd"),
    ({"model": "nat", "target": "dynamic-kd"}, "needs at least one --kd"),
    ({"model": "at", "target": "axe"}, "trains a NAT"),
    ({"model": "nat", "target": "raw", "kd": ["x"]}, "--kd is for"),
    ({"model": "nat", "target": "raw", "skip_penalty": 5.0}, "--skip-penalty applies to --target axe"),
    ({"model": "nat", "target": "kd", "kd": ["x"], "gamma": [1.0]}, "--gamma applies to --target dynamic-kd"),
    ({"model": "nat", "target": "axe", "regularizer": False}, "--no-regularizer applies"),
    ({"model": "nat", "target": "oaxe", "oaxe_truncate": 1.5}, "--oaxe-truncate must be a probability"),
    ({"model": "nat", "target": "axe", "pred_length_scale": 0.5}, "--pred-length-scale must be"),
    ({"model": "nat", "target": "axe", "skip_penalty": -1.0}, "--skip-penalty must be"),
    ({"model": "nat", "target": "dynamic-kd", "kd": ["x"], "beta": float("nan")}, "--beta must be"),
    ({"model": "nat", "valid_bleu": False, "select_metric": "bleu"}, "--select-metric bleu needs"),
])
def test_bad_proxy_settings_are_clear_errors(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


def test_kd_data_that_does_not_match_the_corpus_is_refused(workspace, tmp_path):
    short = tmp_path / "short"
    _fake_kd(short, workspace["data"], lambda t: t, "x")
    lines = (short / "train.tgt").read_text().splitlines()
    (short / "train.tgt").write_text("\n".join(lines[:-1]) + "\n")
    (short / "train.src").write_text("\n".join((short / "train.src").read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(ValueError, match="has 47 sentences but the training data's has 48"):
        Trainer(_proxy_config(workspace, tmp_path / "run", "dynamic-kd", kd=[str(workspace["kd_same"]), str(short)],
                              gamma=None))
    with pytest.raises(ValueError, match="not a KD dataset directory"):
        Trainer(_proxy_config(workspace, tmp_path / "run2", "kd", kd=[str(workspace["data"])]))
    with pytest.raises(ValueError, match="needs one weight per candidate"):
        Trainer(_proxy_config(workspace, tmp_path / "run3", "dynamic-kd", gamma=[1.0]))


def test_read_target_text_orders_candidates_teachers_then_raw(workspace):
    train = load_dataset(workspace["data"], splits=("train",))["train"]
    text = read_target_text("dynamic-kd", [str(workspace["kd_reversed"]), str(workspace["kd_same"])], train)
    assert text.targets == list(train.tgt)
    assert text.candidates[0] == [" ".join(train.tgt[0].split()[::-1]), train.tgt[0], train.tgt[0]]
    assert make_target_proxy("raw").name == "raw"


def test_cli_refuses_bad_proxy_combinations_with_one_line(tmp_path):
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-m", "mple_metrics.cli", "train", "--model", "nat", "--target", "kd",
                             "--out", str(tmp_path / "r")], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--target kd needs exactly one --kd" in result.stderr

