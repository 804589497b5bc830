"""DistributedDataParallel on 2 CPU processes (gloo) trains like one process with the same global
batch: rank r takes batches r, r+2, ... and one process with update_freq=2 takes them in pairs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from mple_metrics.train import Trainer, load_checkpoint
from mple_metrics.train.distributed import DistributedContext
from gloo_workers import run_gloo_worker
from test_train import tiny_config, tiny_dataset


# Tiny models run fastest on one thread, above all on a loaded machine (no OpenMP spinning).
pytestmark = pytest.mark.usefixtures("one_thread")


def _train(context: DistributedContext, data: str, out: str, model: str) -> None:
    Trainer(tiny_config(Path(data), Path(out), model=model, dropout=0.0, max_steps=5, valid_every_steps=0),
            context).train()


def _worker(rank: int, world_size: int, store: str, data: str, out: str, model: str) -> None:
    run_gloo_worker(rank, world_size, store, _train, data, out, model)


def test_two_process_ddp_matches_single_process_with_the_same_global_batch(tmp_path):
    """On a NAT: token and length losses, and a parameter (the "is masked" head) that gets no
    gradient, which DDP must be told about."""
    model = "nat"
    data = tiny_dataset(tmp_path / "data")
    mp.spawn(_worker, args=(2, str(tmp_path / "store"), str(data), str(tmp_path / "ddp"), model), nprocs=2, join=True)
    Trainer(tiny_config(data, tmp_path / "single", model=model, dropout=0.0, max_steps=5, valid_every_steps=0,
                        update_freq=2)).train()
    curves = [[json.loads(line)["loss_bits_per_token"] for line in (tmp_path / run / "train.jsonl").read_text().splitlines()]
              for run in ("ddp", "single")]
    assert len(curves[0]) == 5
    torch.testing.assert_close(torch.tensor(curves[0]), torch.tensor(curves[1]), rtol=1e-5, atol=1e-6)
    ddp, single = (load_checkpoint(tmp_path / run / "last.pt") for run in ("ddp", "single"))
    assert ddp["progress"]["step"] == single["progress"]["step"] == 5
    assert len(ddp["rng"]["torch"]) == 2  # every rank's RNG state is saved for exact resumption
    for key, value in single["model"].items():
        a, b = ddp["model"][key], value
        # Key biases have a zero true gradient (softmax is shift-invariant), so their values are
        # floating-point noise that Adam's normalisation amplifies; compare everything else.
        if key.endswith("qkv.bias"):
            d = a.numel() // 3
            a, b = torch.cat([a[:d], a[2 * d:]]), torch.cat([b[:d], b[2 * d:]])
        elif key.endswith("kv.bias"):
            a, b = a[a.numel() // 2:], b[b.numel() // 2:]
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=key)
    # The training moved the parameters (so the comparison is not between two initial states).
    assert curves[1][-1] < curves[1][0]
