"""Loss landscapes: the plane and its coordinates, grid placement, agreement with ``mple evaluate`` at
the checkpoints, kill-and-resume, 2-process equality, plots from the npz alone, and clear errors."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from mple_metrics.cli import main
from mple_metrics.landscape import (Landscape, LandscapeSettings, Metric, Plane, evaluate_grid, grid_axes,
                                    parse_grid, plot, run_landscape)
from mple_metrics.models import CheckpointError, build_model, load_checkpoint
from mple_metrics.train import Trainer
from mple_metrics.train.distributed import DistributedContext
from gloo_workers import run_gloo_worker
from test_train import tiny_config, tiny_dataset

# Tiny models run fastest on one thread, above all on a loaded machine (no OpenMP spinning).
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Three tiny NAT checkpoints on one tokenizer: θ0 after 2 steps, θ1 after 6, θ2 after 6 at a higher
    learning rate; and a wider NAT (another architecture)."""
    root = tmp_path_factory.mktemp("landscape")
    data = tiny_dataset(root / "data")
    paths = {"data": data, "root": root}
    for name, changes in (("init", dict(max_steps=2)), ("mle", dict(max_steps=6)),
                          ("fast", dict(max_steps=6, lr=1e-2)),
                          ("wide", dict(max_steps=1, model_overrides={"d_model": 24, "ffn_dim": 32, "n_heads": 2,
                                                                      "encoder_layers": 1, "decoder_layers": 1}))):
        Trainer(tiny_config(data, root / name, model="nat", valid_every_steps=0, keep_best=1, dropout=0.0,
                            **changes)).train()
        paths[name] = root / name / "last.pt"
    return paths


def _three(runs) -> list[str]:
    return [str(runs[k]) for k in ("init", "mle", "fast")]


def _settings(runs, out: Path, **changes) -> LandscapeSettings:
    values = dict(checkpoints=_three(runs), data=str(runs["data"]), out=str(out), grid="3x3", margin=0.0,
                  quiet=True)
    values.update(changes)
    return LandscapeSettings(**values)


def test_cells_at_the_checkpoints_reproduce_mple_evaluate(runs, tmp_path, capsys):
    landscape = run_landscape(_settings(runs, tmp_path / "out"))
    assert landscape.complete and landscape.values["nll"].shape == (3, 3)
    # affine axes, no margin: θ0 at a=0,b=0 (cell [0, 0]), θ1 at a=1 ([0, 2]), θ2 at b=1 ([2, 0])
    for (y, x), key in (((0, 0), "init"), ((0, 2), "mle"), ((2, 0), "fast")):
        json_path = tmp_path / f"{key}.json"
        assert main(["evaluate", "--ckpt", str(runs[key]), "--data", str(runs["data"]), "--split", "valid",
                     "--json", str(json_path), "--quiet"]) == 0
        want = json.loads(json_path.read_text())
        assert landscape.values["nll"][y, x] == pytest.approx(want["nll_bits_per_token"], rel=1e-6, abs=1e-9)
        assert landscape.values["bleu"][y, x] == pytest.approx(want["bleu"], abs=1e-9)
    capsys.readouterr()
    saved = Landscape.load(tmp_path / "out")
    np.testing.assert_array_equal(saved.values["bleu"], landscape.values["bleu"])
    assert saved.meta["nat_length"] == "predicted" and saved.meta["versions"]["torch"] == torch.__version__
    assert saved.metrics[1]["signature"].startswith("BLEU|nrefs:1")
    assert (tmp_path / "out" / "landscape.png").stat().st_size > 1000
    assert json.loads((tmp_path / "out" / "landscape.json").read_text())["cells_done"] == 9


def _first_weight(model) -> float:
    return float(model.state_dict()["src_embed.weight"].double()[3, 1])


def test_non_square_grid_lands_in_the_right_cells(runs):
    states = [load_checkpoint(p)["model"] for p in _three(runs)]
    plane = Plane.from_state_dicts(states)
    from mple_metrics.models import ModelConfig
    model = build_model(ModelConfig.from_dict(load_checkpoint(runs["init"])["model_config"]))
    a, b = grid_axes(plane, 5, 3, margin=0.5)
    np.testing.assert_allclose(a, np.linspace(-0.5, 1.5, 5))
    np.testing.assert_allclose(b, np.linspace(-0.5, 1.5, 3))
    landscape = evaluate_grid(plane, model, [Metric("w", "units", True, _first_weight)], a, b, progress=False)
    w0, w1, w2 = (float(s["src_embed.weight"].double()[3, 1]) for s in states)
    expected = w0 + a[None, :] * (w1 - w0) + b[:, None] * (w2 - w0)
    assert landscape.values["w"].shape == (3, 5)
    np.testing.assert_allclose(landscape.values["w"], expected, rtol=1e-6, atol=1e-6)
    # the model is back at θ0, written in place
    torch.testing.assert_close(model.state_dict()["src_embed.weight"], states[0]["src_embed.weight"])


def test_write_is_in_place_and_exact_at_the_checkpoints(runs):
    from mple_metrics.models import ModelConfig
    states = [load_checkpoint(p)["model"] for p in _three(runs)]
    plane = Plane.from_state_dicts(states)
    model = build_model(ModelConfig.from_dict(load_checkpoint(runs["init"])["model_config"]))
    pointers = {k: v.data_ptr() for k, v in model.state_dict().items()}
    for (a, b), state in zip(plane.coordinates, states):
        plane.write(model, a, b)
        for key, value in model.state_dict().items():
            torch.testing.assert_close(value, state[key], rtol=0, atol=0, msg=key)
    assert {k: v.data_ptr() for k, v in model.state_dict().items()} == pointers


def test_orthonormal_coordinates_are_euclidean_distances(runs):
    states = [load_checkpoint(p)["model"] for p in _three(runs)]
    plane = Plane.from_state_dicts(states, axes="orthonormal")

    def distance(s, t):
        return math.sqrt(sum(float(((s[k].double() - t[k].double()) ** 2).sum()) for k in s if s[k].is_floating_point()))

    (x0, y0), (x1, y1), (x2, y2) = plane.coordinates
    assert (x0, y0) == (0.0, 0.0) and y1 == 0.0 and y2 > 0
    assert x1 == pytest.approx(distance(states[1], states[0]), rel=1e-9)
    assert math.hypot(x2, y2) == pytest.approx(distance(states[2], states[0]), rel=1e-9)
    assert math.hypot(x2 - x1, y2 - y1) == pytest.approx(distance(states[2], states[1]), rel=1e-9)
    for (a, b), state in zip(plane.coordinates, states):  # the point at a checkpoint's coordinates is it
        moved = plane.state(a, b)
        for key, value in state.items():
            if value.is_floating_point():
                torch.testing.assert_close(moved[key], value.double(), rtol=0, atol=1e-6)
    # u and v are orthonormal
    u, v = plane.d1, plane.d2
    dot = lambda p, q: sum(float((p[k] * q[k]).sum()) for k in p)  # noqa: E731
    assert dot(u, u) == pytest.approx(1.0) and dot(v, v) == pytest.approx(1.0) and abs(dot(u, v)) < 1e-9


def test_random_directions_are_filter_normalised_and_leave_1d_out(runs):
    state = load_checkpoint(runs["init"])["model"]
    plane = Plane.random(state, seed=3)
    again = Plane.random(state, seed=3)
    for key, theta in plane.origin.items():
        torch.testing.assert_close(plane.d1[key], again.d1[key], rtol=0, atol=0)
        if theta.dim() <= 1:
            assert not plane.d1[key].any() and not plane.d2[key].any(), key
        else:
            rows = theta.reshape(theta.shape[0], -1).norm(dim=1)
            torch.testing.assert_close(plane.d1[key].reshape(theta.shape[0], -1).norm(dim=1), rows)
    with_1d = Plane.random(state, seed=3, include_1d=True)
    bias = next(k for k, v in with_1d.origin.items() if v.dim() == 1 and v.norm() > 0)
    assert with_1d.d1[bias].norm() == pytest.approx(float(with_1d.origin[bias].norm()))
    a, b = grid_axes(plane, 3, 3, margin=0.0)
    np.testing.assert_allclose(a, [-1, 0, 1]) and np.testing.assert_allclose(b, [-1, 0, 1])


class _Stop(Exception):
    pass


def test_kill_and_resume_computes_only_the_missing_cells(runs, tmp_path):
    states = [load_checkpoint(p)["model"] for p in _three(runs)]
    plane = Plane.from_state_dicts(states)
    from mple_metrics.models import ModelConfig
    model = build_model(ModelConfig.from_dict(load_checkpoint(runs["init"])["model_config"]))
    calls = []

    def metric(m):
        calls.append(1)
        return _first_weight(m)

    metrics = [Metric("w", "units", True, metric)]
    a, b = grid_axes(plane, 4, 3, 0.25)

    def stop_after_five(y, x):
        if len(calls) == 5:
            raise _Stop

    with pytest.raises(_Stop):
        evaluate_grid(plane, model, metrics, a, b, tmp_path, progress=False, on_cell=stop_after_five,
                      meta={"settings": {"k": 1}})
    partial = Landscape.load(tmp_path)
    assert partial.done.sum() == 5 and np.isnan(partial.values["w"][~partial.done]).all()
    assert np.isfinite(partial.values["w"][partial.done]).all()
    assert not list(tmp_path.glob(".*.tmp"))
    calls.clear()
    resumed = evaluate_grid(plane, model, metrics, a, b, tmp_path, progress=False, meta={"settings": {"k": 1}})
    assert len(calls) == 12 - 5 and resumed.complete
    fresh = evaluate_grid(plane, model, metrics, a, b, None, progress=False)
    np.testing.assert_array_equal(resumed.values["w"], fresh.values["w"])
    with pytest.raises(ValueError, match=r"other settings: k \(1 vs 2\)"):
        evaluate_grid(plane, model, metrics, a, b, tmp_path, progress=False, meta={"settings": {"k": 2}})
    with pytest.raises(ValueError, match="other settings: the a coordinates"):
        evaluate_grid(plane, model, metrics, a[:3], b, tmp_path, progress=False, meta={"settings": {"k": 1}})


def _landscape(context: DistributedContext, settings: dict) -> None:
    run_landscape(LandscapeSettings(**settings), context)


def _worker(rank: int, world_size: int, store: str, settings: dict) -> None:
    run_gloo_worker(rank, world_size, store, _landscape, settings)


def test_two_processes_equal_one(runs, tmp_path):
    settings = _settings(runs, tmp_path / "two", grid="3x2", margin=0.1, max_sentences=5)
    fields = {k: getattr(settings, k) for k in ("checkpoints", "data", "out", "grid", "margin", "quiet",
                                                "max_sentences")}
    mp.spawn(_worker, args=(2, str(tmp_path / "store"), fields), nprocs=2, join=True)
    one = run_landscape(_settings(runs, tmp_path / "one", grid="3x2", margin=0.1, max_sentences=5))
    two = Landscape.load(tmp_path / "two")
    assert two.complete and two.meta["world_size"] == 2
    np.testing.assert_allclose(two.values["nll"], one.values["nll"], rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(two.values["bleu"], one.values["bleu"])
    assert not list((tmp_path / "two").glob("landscape.rank*.npz"))


def test_a_dead_rank_leaves_its_cells_and_a_rerun_finishes(runs, tmp_path):
    """A rank file (what a rank that died leaves) is merged on the next run."""
    out = tmp_path / "out"
    complete = run_landscape(_settings(runs, out, grid="2x2", max_sentences=3))
    partial = Landscape.load(out)
    partial.done[1, :] = False
    for values in partial.values.values():
        values[1, :] = np.nan
    (out / "landscape.npz").unlink()
    partial.save(out / "landscape.rank1.npz")
    resumed = run_landscape(_settings(runs, out, grid="2x2", max_sentences=3))
    np.testing.assert_array_equal(resumed.values["bleu"], complete.values["bleu"])
    assert not (out / "landscape.rank1.npz").exists()


def test_plot_from_the_npz_alone(runs, tmp_path, capsys):
    run_landscape(_settings(runs, tmp_path / "out", grid="2x2", max_sentences=3, metrics="nll,bleu,l_nat"))
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(tmp_path / "out" / "landscape.npz", alone / "landscape.npz")
    assert main(["landscape", "plot", str(alone), "--pdf", "--levels", "5"]) == 0
    assert (alone / "landscape.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (alone / "landscape.pdf").read_bytes()[:4] == b"%PDF"
    assert "l_nat [bits/token]" in capsys.readouterr().out
    written = plot(alone / "landscape.npz", tmp_path / "again.png")
    assert written == [tmp_path / "again.png"] and written[0].stat().st_size > 1000


def test_line_between_two_checkpoints(runs, tmp_path):
    landscape = run_landscape(_settings(runs, tmp_path / "line", checkpoints=_three(runs)[:2], grid="5",
                                        max_sentences=3, metrics="nll"))
    assert landscape.values["nll"].shape == (1, 5) and landscape.plane["kind"] == "line"
    np.testing.assert_allclose(landscape.a, np.linspace(0, 1, 5))
    assert (tmp_path / "line" / "landscape.png").stat().st_size > 1000
    assert parse_grid("41", line=True) == (41, 1) and parse_grid("7x3") == (7, 3)
    with pytest.raises(ValueError, match="one axis"):
        parse_grid("5x5", line=True)


def test_mismatched_checkpoints_are_clear_errors(runs, tmp_path):
    with pytest.raises(CheckpointError, match=r"different architectures: d_model: 16 != 24"):
        Plane.from_checkpoints([runs["init"], runs["wide"], runs["mle"]])
    payload = torch.load(runs["mle"], weights_only=True)
    payload["tokenizer"] = {name: data + b"\n" for name, data in payload["tokenizer"].items()}
    torch.save(payload, tmp_path / "other_tokenizer.pt")
    with pytest.raises(CheckpointError, match="different tokenizers"):
        Plane.from_checkpoints([runs["init"], tmp_path / "other_tokenizer.pt"])
    state = load_checkpoint(runs["init"])["model"]
    broken = dict(state)
    broken.pop("src_embed.weight")
    with pytest.raises(CheckpointError, match="different parameters: src_embed.weight"):
        Plane.from_state_dicts([state, broken])
    with pytest.raises(ValueError, match="lie on one line"):
        end = load_checkpoint(runs["mle"])["model"]
        mid = {k: (v.double() + 0.5 * (end[k].double() - v.double())) if v.is_floating_point() else v
               for k, v in state.items()}
        Plane.from_state_dicts([state, end, mid], axes="orthonormal")


def test_sigkill_and_rerun_of_the_command_finishes_the_grid(runs, tmp_path):
    """``mple landscape`` killed with SIGKILL mid-grid leaves a readable npz of finished cells; the same
    settings then finish it, equal to an uninterrupted run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "killed"
    argv = [sys.executable, "-m", "mple_metrics.cli", "landscape", *[x for c in _three(runs) for x in ("--ckpt", c)],
            "--data", str(runs["data"]), "--grid", "20x20", "--margin", "0", "--max-sentences", "2", "--quiet",
            "--out", str(out)]
    process = subprocess.Popen(argv, env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    done = 0
    while process.poll() is None and time.monotonic() < deadline:
        if (out / "landscape.npz").is_file():
            done = int(Landscape.load(out).done.sum())
            if done >= 5:
                break
        time.sleep(0.02)
    if process.poll() is not None:
        pytest.skip("the grid finished before it could be killed")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    partial = Landscape.load(out)
    assert 5 <= partial.done.sum() < 400
    assert np.isnan(partial.values["nll"][~partial.done]).all() and np.isnan(partial.values["bleu"][~partial.done]).all()
    settings = dict(grid="20x20", max_sentences=2)
    resumed = run_landscape(_settings(runs, out, **settings))
    fresh = run_landscape(_settings(runs, tmp_path / "fresh", **settings))
    assert resumed.complete
    np.testing.assert_array_equal(resumed.values["bleu"], fresh.values["bleu"])
    np.testing.assert_allclose(resumed.values["nll"], fresh.values["nll"], rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(resumed.values["bleu"][partial.done], partial.values["bleu"][partial.done])
