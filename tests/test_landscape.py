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


def _counted_plane(runs):
    """The three checkpoints' state dicts, their plane, a model to load cells into, and a metric
    (the first weight) that appends to ``calls`` each time it is evaluated."""
    from mple_metrics.models import ModelConfig

    states = [load_checkpoint(p)["model"] for p in _three(runs)]
    model = build_model(ModelConfig.from_dict(load_checkpoint(runs["init"])["model_config"]))
    calls = []

    def metric(m):
        calls.append(1)
        return _first_weight(m)

    return states, Plane.from_state_dicts(states), model, calls, [Metric("w", "units", True, metric)]


def test_kill_and_resume_computes_only_the_missing_cells(runs, tmp_path):
    states, plane, model, calls, metrics = _counted_plane(runs)
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
    assert two.points_complete and one.points_complete  # the checkpoints, dealt to the ranks like cells
    np.testing.assert_array_equal(two.points["bleu"], one.points["bleu"])
    np.testing.assert_allclose(two.points["nll"], one.points["nll"], rtol=1e-6, atol=1e-9)
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


# -- the checkpoints themselves, the data, the proxy, damaged files, the pictures --------------------

def _evaluate(runs, key: str, tmp_path: Path, data: str | None = None) -> dict:
    """``mple evaluate`` of a checkpoint on the valid split (its JSON)."""
    json_path = tmp_path / f"evaluate-{key}.json"
    assert main(["evaluate", "--ckpt", str(runs[key]), "--data", str(data or runs["data"]), "--split", "valid",
                 "--json", str(json_path), "--quiet"]) == 0
    return json.loads(json_path.read_text())


def test_default_grid_reports_each_checkpoint_exactly_as_mple_evaluate(runs, tmp_path, capsys):
    """No --data (the checkpoints' own data, not the bundled corpus) and the default 21x21 grid, whose
    nodes miss the checkpoints: the table and landscape.json give each checkpoint what `mple evaluate`
    gives it, to the last bit."""
    out = tmp_path / "default"
    assert main(["landscape", *[x for c in _three(runs) for x in ("--ckpt", c)], "--quiet", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    summary = json.loads((out / "landscape.json").read_text())
    assert summary["grid"] == [21, 21] and summary["data"] == str(runs["data"]) and summary["split"] == "valid"
    assert summary["warnings"] == []
    for row, key in zip(summary["checkpoints"], ("init", "mle", "fast")):
        want = _evaluate(runs, key, tmp_path)
        assert row["nll"] == want["nll_bits_per_token"] and row["bleu"] == want["bleu"], key
        # the grid has no node on the checkpoint: its nearest cell is another point (the old report)
        assert (row["nearest_cell"]["a"], row["nearest_cell"]["b"]) != (row["a"], row["b"])
        assert row["nearest_cell"]["nll"] != want["nll_bits_per_token"]
        line = next(text for text in table.splitlines() if text.startswith(row["label"]))
        assert f"{want['nll_bits_per_token']:.4f}" in line and f"{want['bleu']:.4f}" in line
    saved = Landscape.load(out)
    assert saved.points_done.all() and saved.complete
    # random directions: the centre checkpoint is the point (a 2x2 grid has no node at it)
    capsys.readouterr()
    assert main(["landscape", "--ckpt", str(runs["mle"]), "--directions", "random", "--grid", "2x2", "--quiet",
                 "--out", str(tmp_path / "random")]) == 0
    centre = json.loads((tmp_path / "random" / "landscape.json").read_text())["checkpoints"]
    want = _evaluate(runs, "mle", tmp_path)
    assert len(centre) == 1 and (centre[0]["nll"], centre[0]["bleu"]) == (want["nll_bits_per_token"], want["bleu"])


def test_checkpoints_resume_and_old_files_get_them(runs, tmp_path):
    """The checkpoints are saved like cells: a run stopped after them keeps them, and a landscape file
    written before they existed (version 1) is resumed by computing only them."""
    states, plane, model, calls, metrics = _counted_plane(runs)
    loaders = [lambda s=s: s for s in states]
    a, b = grid_axes(plane, 3, 2, 0.25)

    def stop(y, x):
        raise _Stop

    with pytest.raises(_Stop):
        evaluate_grid(plane, model, metrics, a, b, tmp_path, progress=False, on_cell=stop, checkpoints=loaders)
    partial = Landscape.load(tmp_path)
    assert partial.points_done.all() and partial.done.sum() == 1
    np.testing.assert_array_equal(partial.points["w"], [float(s["src_embed.weight"].double()[3, 1]) for s in states])
    calls.clear()
    resumed = evaluate_grid(plane, model, metrics, a, b, tmp_path, progress=False, checkpoints=loaders)
    assert len(calls) == 6 - 1 and resumed.complete and resumed.points_complete
    # a version-1 file: no checkpoint arrays
    with np.load(tmp_path / "landscape.npz") as data:
        arrays = {k: data[k] for k in data.files if not k.startswith("checkpoint_metric_") and k != "checkpoint_done"}
    meta = json.loads(str(arrays["meta"]))
    arrays["meta"] = np.asarray(json.dumps({**meta, "version": 1}))
    np.savez(tmp_path / "landscape.npz", **arrays)
    old = Landscape.load(tmp_path)
    assert not old.points_done.any() and np.isnan(old.points["w"]).all() and old.complete
    calls.clear()
    again = evaluate_grid(plane, model, metrics, a, b, tmp_path, progress=False, checkpoints=loaders)
    assert len(calls) == 3 and again.points_complete
    np.testing.assert_array_equal(again.points["w"], partial.points["w"])


def _with_recorded_data(source: Path, target: Path, data: str) -> Path:
    payload = torch.load(source, weights_only=True)
    payload["train_config"]["data"] = data
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, target)
    return target


def _exit_line(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return code, err[0]


def test_data_defaults_to_the_checkpoints_and_other_data_warns(runs, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(runs["data"], copy)
    args = ["landscape", "--ckpt", str(runs["mle"]), "--ckpt", str(runs["fast"]), "--grid", "2", "--metrics", "nll",
            "--max-sentences", "2", "--quiet"]
    assert main([*args, "--data", str(copy), "--out", str(tmp_path / "other")]) == 0
    err = capsys.readouterr().err
    warning = next(line for line in err.splitlines() if line.startswith("warning:"))
    assert f"--data {copy}" in warning and str(runs["data"]) in warning
    summary = json.loads((tmp_path / "other" / "landscape.json").read_text())
    assert summary["data"] == str(copy) and len(summary["warnings"]) == 1 and str(runs["data"]) in summary["warnings"][0]
    # the same data named otherwise is no warning
    assert main([*args, "--data", str(runs["data"]) + "/", "--out", str(tmp_path / "same")]) == 0
    assert "warning" not in capsys.readouterr().err
    # checkpoints of different recorded data, and no --data: refused, naming both
    moved = _with_recorded_data(runs["fast"], tmp_path / "moved" / "last.pt", str(copy))
    code, line = _exit_line(["landscape", "--ckpt", str(runs["mle"]), "--ckpt", str(moved), "--grid", "2",
                             "--out", str(tmp_path / "refused")], capsys)
    assert code == 2 and "--data is not given" in line and str(copy) in line and str(runs["data"]) in line
    # recorded data that is not there
    gone = _with_recorded_data(runs["fast"], tmp_path / "gone" / "last.pt", str(tmp_path / "no-such-data"))
    code, line = _exit_line(["landscape", "--ckpt", str(gone), "--directions", "random", "--grid", "2",
                             "--out", str(tmp_path / "refused")], capsys)
    assert code == 2 and "no-such-data" in line and "--data" in line
    assert not (tmp_path / "refused").exists()


def test_l_nat_proxy_must_match_the_data(runs, tmp_path, capsys):
    """kd scores a teacher's outputs: refused on raw data; raw refused on a KD dataset (kd.json)."""
    base = ["landscape", "--ckpt", str(runs["mle"]), "--ckpt", str(runs["fast"]), "--grid", "2", "--metrics",
            "nll,l_nat", "--max-sentences", "2", "--quiet"]
    code, line = _exit_line([*base, "--proxy", "kd", "--data", str(runs["data"]), "--out", str(tmp_path / "a")], capsys)
    assert code == 2 and "--proxy kd" in line and str(runs["data"]) in line and "not a KD dataset" in line
    kd = tmp_path / "kd"
    shutil.copytree(runs["data"], kd)
    (kd / "kd.json").write_text("{}\n")
    code, line = _exit_line([*base, "--proxy", "raw", "--data", str(kd), "--out", str(tmp_path / "b")], capsys)
    assert code == 2 and "--proxy raw" in line and str(kd) in line and "KD dataset" in line
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert main([*base, "--proxy", "kd", "--data", str(kd), "--out", str(tmp_path / "c")]) == 0
    capsys.readouterr()
    l_nat = Landscape.load(tmp_path / "c").metrics[1]
    assert l_nat["name"] == "l_nat" and "'kd'" in l_nat["description"] and "KD (teacher) targets" in l_nat["description"]


@pytest.mark.parametrize("damage", ["empty", "truncated", "text", "other-npz"])
def test_damaged_landscape_files_exit_2_naming_them(runs, tmp_path, capsys, damage):
    out = tmp_path / "out"
    argv = ["landscape", "--ckpt", str(runs["mle"]), "--ckpt", str(runs["fast"]), "--grid", "2", "--metrics", "nll",
            "--max-sentences", "1", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    capsys.readouterr()
    npz = out / "landscape.npz"
    if damage == "empty":
        npz.write_bytes(b"")
    elif damage == "truncated":
        npz.write_bytes(npz.read_bytes()[:-200])
    elif damage == "text":
        npz.write_text("a,b\n1,2\n")
    else:
        np.savez(npz, x=np.arange(3))
    for command in (["landscape", "plot", str(out)], ["landscape", "plot", str(npz)], argv):
        code, line = _exit_line(command, capsys)
        assert code == 2, line
        assert f"{npz} is not a readable mple_metrics landscape file" in line
        assert "allow_pickle" not in line and "unsafe" not in line


def test_a_huge_grid_is_refused_before_anything_is_allocated(runs):
    from mple_metrics.landscape.grid import MAX_GRID_CELLS
    with pytest.raises(ValueError, match="10,000,000,000 cells"):
        parse_grid("100000x100000")
    assert parse_grid("1000x1000") == (1000, 1000) and MAX_GRID_CELLS == 1000 * 1000
    with pytest.raises(ValueError, match="cells"):
        parse_grid("1000001", line=True)
    states = [load_checkpoint(p)["model"] for p in _three(runs)]
    model = build_model(_model_config(runs))
    with pytest.raises(ValueError, match="1,002,001 cells"):
        evaluate_grid(Plane.from_state_dicts(states), model, [Metric("w", "units", True, _first_weight)],
                      np.zeros(1001), np.zeros(1001), progress=False)


def _model_config(runs):
    from mple_metrics.models import ModelConfig
    return ModelConfig.from_dict(load_checkpoint(runs["init"])["model_config"])


def _synthetic(span_b: float, axes: str = "orthonormal") -> Landscape:
    """A landscape without a model: a over [-0.25, 1.25], b over span_b times that."""
    a = np.linspace(-0.25, 1.25, 7)
    b = np.linspace(-0.25, 1.25, 9) * span_b
    grid_a, grid_b = np.meshgrid(a, b)
    metrics = [{"name": "nll", "unit": "bits/token", "higher_is_better": False},
               {"name": "bleu", "unit": "0-100", "higher_is_better": True}]
    plane = {"kind": "plane", "axes": axes, "labels": ["θ0 (x)", "θ1 (y)", "θ2 (z)"],
             "coordinates": [[0.0, 0.0], [1.0, 0.0], [0.3, span_b]]}
    return Landscape(a, b, {"nll": (grid_a - 0.5) ** 2 + grid_b, "bleu": grid_a + grid_b},
                     np.ones(grid_a.shape, dtype=bool), np.zeros(grid_a.shape), metrics, plane,
                     {"data": "/data/wmt-sample", "split": "test", "sentences": 300},
                     {"nll": np.array([5.0, 4.0, 3.0]), "bleu": np.array([1.0, 2.0, 3.0])}, np.ones(3, dtype=bool))


@pytest.mark.parametrize("span_b", [3.0, 0.3])
def test_orthonormal_panels_keep_equal_scales_and_fill_the_figure(span_b):
    """A tall (or flat) orthonormal plane gives tall (or flat) panels that fill the figure, with equal
    scales and a colour bar as high as its panel; the title names the data and the split."""
    from mple_metrics.landscape.plots import draw

    figure = draw(_synthetic(span_b))
    figure.canvas.draw()
    width, height = figure.get_size_inches()
    panels = [ax for ax in figure.axes if ax.get_xlabel()]
    bars = [ax for ax in figure.axes if not ax.get_xlabel()]
    assert len(panels) == 2 and len(bars) == 2
    covered = 0.0
    for ax, bar in zip(panels, bars):
        box = ax.get_position()
        box_w, box_h = box.width * width, box.height * height
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        assert (box_h / box_w) == pytest.approx((y1 - y0) / (x1 - x0), rel=0.01)  # equal scales
        assert (y1 - y0) / (x1 - x0) == pytest.approx(span_b, rel=1e-9)  # the grid's own extent
        assert bar.get_position().height == pytest.approx(box.height, rel=0.01)
        covered += box_w * box_h
    assert covered / (width * height) > 0.22  # the old fixed 10.4 x 4.4 figure left 0.13-0.15
    title = figure._suptitle.get_text()
    assert "/data/wmt-sample" in title and "test split" in title and "300 sentences" in title
    labels = [t.get_text() for t in panels[0].texts]
    assert any(t.startswith("θ1 (y)") and "4" in t for t in labels)  # the checkpoint's own value is marked
