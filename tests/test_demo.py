"""``mple demo``: the smoke mode runs every step (so the demo cannot rot), its report holds what the
steps computed, a rerun recomputes nothing, and bad input is refused with one line."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from mple_metrics.cli import main
from mple_metrics.demo import make_plan
from mple_metrics.demo.report import (NOT_REPRODUCED, REPRODUCED, SMOKE_NOTE, UNDECIDED, findings,
                                      render_markdown)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo_out"
    start = time.perf_counter()
    assert main(["demo", "--smoke", "--quiet", "--out", str(out)]) == 0
    return out, time.perf_counter() - start


def test_smoke_writes_every_table_figure_and_the_report(smoke):
    out, _ = smoke
    report = json.loads((out / "report.json").read_text())
    bundled_steps = {"table1", "kd", "table2", "figure1"}
    assert set(report["results"]) == bundled_steps | {"table3", "dynamic_kd"} | {f"controlled_{s}" for s in bundled_steps}
    results = report["results"]
    figures = [results["table2"]["figure5"], results["figure1"]["figure"]] + [
        c["figure"] for c in (results["table2"]["correlation"], results["table3"]["correlation_sample"],
                              results["table3"]["correlation_default"]) if c["pearson_r"] is not None]
    figures += ["controlled/" + results["controlled_table2"]["figure5"], "controlled/" + results["controlled_figure1"]["figure"]]
    for figure in figures:  # a correlation that is undefined (a constant BLEU) has no scatter plot
        assert (out / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", figure
    markdown = (out / "report.md").read_text()
    for heading in ("## Part 1: the controlled benchmark", "### Table 1: Ĉ against the exact C", "## Part 2",
                    "## Table 1", "## Table 2", "## Figure 1", "## Table 3", "## Dynamic KD", "## Commands"):
        assert heading in markdown
    assert markdown.index("## Part 1") < markdown.index("## Part 2") < markdown.index("\n## Table 1")
    assert "bits per target token" in markdown and "mple estimate tc --data data/bundled" in markdown
    assert "mple data controlled --kind phrasing --out controlled/data/phrasing" in markdown
    # A smoke run's numbers mean nothing: the report states no finding.
    assert report["findings"] == {"note": SMOKE_NOTE}
    assert markdown.count("smoke mode: no findings") == 7 and "**reproduced**" not in markdown
    assert report["wall_seconds"] > 0 and set(report["step_seconds"]) == set(report["results"])


def test_report_numbers_are_the_estimators_outputs(smoke):
    """Table 1 is tc.json of each estimate; Table 2's r is Pearson's r of the metric files' L_MPLE and
    BLEU, recomputed here with numpy; every reported estimate says whether it converged."""
    out, _ = smoke
    report = json.loads((out / "report.json").read_text())
    for row in report["results"]["table1"]["rows"]:
        tc = json.loads((out / row["tc_json"]).read_text())
        assert row["c_bits_per_token"] == tc["c_bits_per_token"]
        assert isinstance(row["converged"], bool)
        low, high = row["ci95_bits_per_token"]
        assert low <= row["c_bits_per_token"] <= high
    table2 = report["results"]["table2"]
    rows = [json.loads((out / path).read_text()) for path in table2["metrics"].values()]
    assert [r["method"] for r in rows] == ["raw", "kd", "kd+axe(tau=1)", "kd+axe(tau=5)", "kd+axe(tau=10)", "kd+oaxe"]
    for r in rows:
        assert r["l_mple"] == pytest.approx(r["l_nat_bits_per_token"] + r["l_input_bits_per_token"] + r["l_target"])
    x = np.array([r["l_mple"] for r in rows])
    y = np.array([r["bleu_default"] for r in rows])
    if table2["correlation"]["pearson_r"] is None:  # smoke models may all decode nothing right
        assert np.ptp(x) == 0 or np.ptp(y) == 0, table2["correlation"]["undefined"]
    else:
        assert table2["correlation"]["pearson_r"] == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-9)
    c = report["results"]["table1"]["rows"][0]
    assert report["results"]["table2"]["c_bits_per_token"] == c["c_bits_per_token"]
    # The controlled benchmark: the exact C beside each estimate is that of the dataset's truth.json,
    # "recovers" is the tolerance applied to the two, and Table 2 runs on the main dataset's Ĉ.
    controlled = report["results"]["controlled_table1"]["rows"]
    assert [r["dataset"] for r in controlled] == list(report["plan"]["controlled"]["kinds"])
    for row in controlled:
        truth = json.loads((out / "controlled" / "data" / row["dataset"] / "truth.json").read_text())["splits"]["test"]
        assert row["c_true_bits_per_token"] == truth["c_true_bits_per_token"]
        assert row["nat_above_floor_bits_per_token"] == pytest.approx(
            row["nll_nat_bits_per_token"] - truth["nat_nll_floor_bits_per_token"])
        assert row["at_above_floor_bits_per_token"] == pytest.approx(
            row["nll_at_bits_per_token"] - truth["h_y_given_x_bits_per_token"])
        error = abs(row["c_bits_per_token"] - row["c_true_bits_per_token"])
        assert row["recovers"] == (error <= max(0.1 * row["c_true_bits_per_token"], 0.05))
        tc = json.loads((out / row["tc_json"]).read_text())
        assert row["c_bits_per_token"] == tc["c_bits_per_token"]
    main_row = next(r for r in controlled if r["dataset"] == report["plan"]["controlled"]["main"])
    assert report["results"]["controlled_table2"]["c_bits_per_token"] == main_row["c_bits_per_token"]
    assert report["results"]["controlled_table2"]["c_true_bits_per_token"] == main_row["c_true_bits_per_token"]
    landscape = report["results"]["figure1"]["landscape"]
    assert [p["label"] for p in landscape["checkpoints"]] == ["θ0 (mle-nat)", "θ1 (mle-fine-tuned)",
                                                            "θ2 (glat-kd-fine-tuned)"]


def test_a_second_run_reuses_every_step(smoke, capsys):
    out, first = smoke
    before = {p: p.stat().st_mtime_ns for p in (out / "results").iterdir()}
    start = time.perf_counter()
    assert main(["demo", "--smoke", "--out", str(out)]) == 0
    again = time.perf_counter() - start
    printed = capsys.readouterr().out
    assert printed.count("(reused from an earlier run)") == 10 and "Table 2 (test split" in printed
    assert "Table 1, controlled benchmark" in printed
    assert {p: p.stat().st_mtime_ns for p in (out / "results").iterdir()} == before
    assert again < first / 2, (again, first)


def test_a_work_directory_of_another_plan_is_refused(smoke, capsys):
    out, _ = smoke
    assert main(["demo", "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "holds a demo run with other settings" in error[0] and "mode" in error[0]


@pytest.mark.parametrize("argv, message", [
    (["--budget-minutes", "0"], "--budget-minutes"),
    (["--budget-minutes", "nan"], "--budget-minutes"),
    (["--smoke", "--full"], "not allowed with argument"),
    (["--size", "huge"], "--size"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--out", str(tmp_path / "x"), *argv])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0]


def test_budget_scales_the_sample_and_epochs_and_is_recorded():
    default = make_plan("default")
    larger = make_plan("default", budget_minutes=4 * default.budget_minutes)
    assert larger.corpus.train_sentences == 2 * default.corpus.train_sentences
    assert larger.max_epochs == 2 * default.max_epochs
    assert larger.controlled == default.controlled  # the controlled benchmark is a fixed check
    assert make_plan("full").full and not default.full
    with pytest.raises(ValueError, match="mode must be one of"):
        make_plan("huge")


def test_a_step_killed_before_its_result_was_kept_is_recomputed_to_the_same_numbers(smoke):
    """A kill after some of Table 2's metric files were written: the rerun keeps those, recomputes
    the missing one from the finished training run, and the step's numbers come out the same."""
    out, _ = smoke
    before = json.loads((out / "results" / "table2.json").read_text())
    oaxe = json.loads((out / "metrics" / "kd+oaxe.json").read_text())
    (out / "results" / "table2.json").unlink()
    (out / "metrics" / "kd+oaxe.json").unlink()
    assert main(["demo", "--smoke", "--quiet", "--out", str(out)]) == 0
    after = json.loads((out / "results" / "table2.json").read_text())
    again = json.loads((out / "metrics" / "kd+oaxe.json").read_text())
    assert again["l_nat_bits_per_token"] == oaxe["l_nat_bits_per_token"] and again["l_mple"] == oaxe["l_mple"]
    assert after["correlation"]["pearson_r"] == pytest.approx(before["correlation"]["pearson_r"], abs=1e-12) \
        if before["correlation"]["pearson_r"] is not None else after["correlation"]["pearson_r"] is None


def test_smoke_demo_refuses_a_budget(tmp_path, capsys):
    """--smoke runs a fixed plan: a budget would be ignored, so it is refused before any work."""
    assert main(["demo", "--smoke", "--budget-minutes", "5", "--quiet", "--out", str(tmp_path / "x")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "--budget-minutes 5 does not apply to --smoke" in error[0]
    assert not (tmp_path / "x").exists()
    with pytest.raises(ValueError, match="--budget-minutes"):
        make_plan("smoke", budget_minutes=1.0)


def test_quiet_rerun_prints_the_report_path_only(smoke, capsys):
    out, _ = smoke
    assert main(["demo", "--smoke", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and str(out / "report.md") in printed[0], printed


def _table1(c: dict[str, tuple[float, float, float]], converged: bool = True) -> dict:
    return {"rows": [{"dataset": name, "c_bits_per_token": value, "ci95_bits_per_token": [low, high],
                      "converged": converged, "delta_bleu": 1.0} for name, (value, low, high) in c.items()]}


C_ORDERED = {"bundled": (2.0, 1.9, 2.1), "synthetic-b": (1.5, 1.4, 1.6), "synthetic-a": (0.9, 0.8, 1.0)}


@pytest.mark.parametrize("c, converged, verdict, basis", [
    (C_ORDERED, True, REPRODUCED, "pairwise disjoint and in the paper's order"),
    (C_ORDERED, False, UNDECIDED, "not converged"),
    # The point estimates are in the paper's order, the intervals are not separate.
    ({"bundled": (2.0, 1.5, 2.5), "synthetic-b": (1.9, 1.4, 2.4), "synthetic-a": (0.9, 0.8, 1.0)}, True, UNDECIDED,
     "bundled and synthetic-b overlap"),
    # Separate intervals in the paper's order, but a negative Ĉ: the models cannot measure C.
    ({"bundled": (0.5, 0.4, 0.6), "synthetic-b": (0.2, 0.1, 0.3), "synthetic-a": (-0.5, -0.6, -0.4)}, True,
     UNDECIDED, "Ĉ ≤ 0 for synthetic-a"),
    # The smoke run's numbers: overlapping intervals around 0, one negative Ĉ.
    ({"bundled": (0.006, -0.04, 0.05), "synthetic-b": (0.022, -0.02, 0.06), "synthetic-a": (-0.51, -0.57, -0.46)},
     True, UNDECIDED, "Ĉ ≤ 0"),
    ({"bundled": (1.0, 0.9, 1.1), "synthetic-b": (1.5, 1.4, 1.6), "synthetic-a": (0.5, 0.4, 0.6)}, True,
     NOT_REPRODUCED, "synthetic-b lies above that of bundled"),
])
def test_c_ordering_is_decided_by_the_intervals(tmp_path, c, converged, verdict, basis):
    found = findings({"table1": _table1(c, converged)}, tmp_path, "default")["c_ordering"]
    assert found["verdict"] == verdict and basis in found["basis"], found
    for value, low, high in c.values():  # the finding names the numbers it rests on
        assert f"{value:.2f} [{low:.2f}, {high:.2f}]" in found["basis"]
    assert found["numbers"]["bundled"]["ci95"] == list(c["bundled"][1:])
    # ΔBLEU has no interval: its finding is never decided.
    assert findings({"table1": _table1(c, converged)}, tmp_path)["delta_bleu_follows_c"]["verdict"] == UNDECIDED


def _table2(out, kd: tuple[float, float, float], r: tuple[float, float, float]) -> dict:
    (out / "metrics").mkdir(exist_ok=True)
    rows = {"raw": (3.0, 2.9, 3.1), "kd": kd}
    for method, (value, low, high) in rows.items():
        (out / "metrics" / f"{method}.json").write_text(json.dumps({
            "method": method, "l_nat_bits_per_token": value, "l_mple": value - 5, "bleu_default": 10.0,
            "ci95": {"l_nat_bits_per_token": [low, high]}}))
    return {"methods": list(rows), "c_bits_per_token": 2.0, "c_ci95": [1.9, 2.1],
            "correlation": {"pearson_r": r[0], "interval": {"low": r[1], "high": r[2]}, "n_methods": 2}}


@pytest.mark.parametrize("kd, verdict", [((1.5, 1.4, 1.6), REPRODUCED), ((2.05, 1.95, 2.2), UNDECIDED),
                                         ((2.5, 2.3, 2.7), NOT_REPRODUCED)])
@pytest.mark.parametrize("r, r_verdict", [((-0.9, -0.99, -0.5), REPRODUCED), ((-0.9, -0.99, 0.7), UNDECIDED),
                                          ((0.6, 0.2, 0.9), NOT_REPRODUCED)])
def test_table2_findings_are_decided_by_the_intervals(tmp_path, kd, verdict, r, r_verdict):
    results = {"table1": _table1(C_ORDERED), "table2": _table2(tmp_path, kd, r)}
    found = findings(results, tmp_path, "default")
    assert found["kd_lowers_l_nat_below_c"]["verdict"] == verdict
    assert f"kd {kd[0]:.2f} [{kd[1]:.2f}, {kd[2]:.2f}]" in found["kd_lowers_l_nat_below_c"]["basis"]
    assert found["r_mple_bleu"]["verdict"] == r_verdict and f"[{r[1]:.3f}, {r[2]:.3f}]" in found["r_mple_bleu"]["basis"]
    assert found["lowest_mple_is_best_bleu"]["verdict"] == found["kd_beats_raw_bleu"]["verdict"] == UNDECIDED
    results["table1"] = _table1(C_ORDERED, converged=False)  # an unconverged C decides nothing
    assert findings(results, tmp_path, "default")["kd_lowers_l_nat_below_c"]["verdict"] == UNDECIDED


def test_the_report_of_a_real_mode_states_each_verdict_with_its_numbers(smoke):
    """render_markdown with the findings a non-smoke run would compute from the same results."""
    out, _ = smoke
    report = json.loads((out / "report.json").read_text())
    report["findings"] = findings(report["results"], out, "full")
    markdown = render_markdown(report, out)
    assert "smoke mode: no findings" not in markdown
    for finding in report["findings"].values():
        assert finding["verdict"] in (REPRODUCED, NOT_REPRODUCED, UNDECIDED)
        assert f"**{finding['verdict']}** ({finding['basis']})" in markdown


def test_table1_commands_reproduce_the_demo_estimates(smoke, monkeypatch, capsys):
    """Each Table 1 command line of the report, run in the work directory, finds the demo's finished
    training and writes the same Ĉ: the printed recipe is the computation, tokenizer options included
    (a dataset that carries its tokenizer takes none)."""
    import shlex

    out, _ = smoke
    markdown = (out / "report.md").read_text()
    lines = [line for line in markdown.splitlines() if line.startswith("mple estimate tc ")]
    report = json.loads((out / "report.json").read_text())
    assert len(lines) == 3 + len(report["plan"]["controlled"]["kinds"])
    monkeypatch.chdir(out)
    for line in lines:
        argv = shlex.split(line)[1:]
        tc_path = out / argv[argv.index("--out") + 1] / "tc.json"
        before = json.loads(tc_path.read_text())["c_bits_per_token"]
        carries = (out / argv[argv.index("--data") + 1] / "tokenizer").is_dir()
        assert ("--tokenizer-kind" in argv) != carries, line
        assert main([*argv, "--quiet"]) == 0, capsys.readouterr().err
        assert json.loads(tc_path.read_text())["c_bits_per_token"] == before


def test_controlled_data_commands_rewrite_the_demo_datasets(smoke, tmp_path):
    """The report's `mple data controlled` lines write exactly the demo's controlled datasets."""
    import shlex

    out, _ = smoke
    lines = [line for line in (out / "report.md").read_text().splitlines() if line.startswith("mple data controlled ")]
    assert len(lines) == len(json.loads((out / "report.json").read_text())["plan"]["controlled"]["kinds"])
    for line in lines:
        argv = shlex.split(line)[1:]
        original = out / argv[argv.index("--out") + 1]
        argv[argv.index("--out") + 1] = str(tmp_path / original.name)
        assert main(argv) == 0
        for name in ("train.src", "train.tgt", "test.tgt", "test.ref2", "truth.json"):
            assert (tmp_path / original.name / name).read_text() == (original / name).read_text(), (line, name)


def _controlled_row(name: str, c: float, low: float, high: float, truth: float, converged: bool = True) -> dict:
    error = abs(c - truth)
    return {"dataset": name, "c_bits_per_token": c, "ci95_bits_per_token": [low, high], "converged": converged,
            "c_true_bits_per_token": truth, "recovers": error <= max(0.1 * truth, 0.05), "delta_bleu": 1.0,
            "nat_above_floor_bits_per_token": 0.2, "at_above_floor_bits_per_token": 0.1}


@pytest.mark.parametrize("rows, verdict, basis", [
    ([("none", -0.01, -0.03, 0.01, 0.0), ("phrasing", 0.63, 0.61, 0.65, 0.61)], REPRODUCED, "within the tolerance"),
    # 0.32 against 0.25 is 28% off: missed, and the basis says how far each model lies above its floor.
    ([("none", -0.01, -0.03, 0.01, 0.0), ("reordering", 0.32, 0.28, 0.36, 0.25)], NOT_REPRODUCED,
     "missed on reordering (reordering: NAT 0.200 and AT 0.100 bits/token above their floors)"),
])
def test_controlled_findings_compare_each_estimate_with_the_exact_c(tmp_path, rows, verdict, basis):
    table1 = {"rows": [_controlled_row(*r) for r in rows]}
    found = findings({"controlled_table1": table1}, tmp_path, "default")
    assert found["controlled_c_recovered"]["verdict"] == verdict and basis in found["controlled_c_recovered"]["basis"]
    unconverged = {"rows": [_controlled_row(*rows[0], converged=False)]}
    assert findings({"controlled_table1": unconverged}, tmp_path)["controlled_c_recovered"]["verdict"] == UNDECIDED
    # The ordering is that of the exact C, among the datasets whose C is positive.
    ordered = {"rows": [_controlled_row("a", 1.0, 0.9, 1.1, 1.0), _controlled_row("b", 0.5, 0.4, 0.6, 0.5),
                        _controlled_row("none", 0.0, -0.1, 0.1, 0.0)]}
    ordering = findings({"controlled_table1": ordered}, tmp_path)["controlled_c_ordering"]
    assert ordering["verdict"] == REPRODUCED and ordering["claim"] == "C orders the datasets a > b"


def test_no_controlled_skips_the_controlled_benchmark():
    assert make_plan("default", controlled=False).controlled is None
    assert make_plan("default").controlled.main in make_plan("default").controlled.kinds
