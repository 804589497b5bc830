"""``mple demo`` end to end: the steps in order (the controlled benchmark first, then the bundled
corpus), a table on the terminal as each is done, the report at the end (and after every step, so a
killed run leaves a report of what it finished).

Steps of the controlled benchmark are named ``controlled_<step>`` in the report and keep their runs
and results under ``controlled/``; those of the bundled corpus keep the top of the work directory."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..atomic_write import atomic_write_text
from ..data import dataset_tokenizers
from ..estimators.total_correlation import json_ready
from . import recipes, report, steps
from .controlled import prepare_controlled
from .corpus import prepare_corpora
from .plan import DemoPlan
from .workspace import Benchmark, Workspace

REPORT_JSON, REPORT_MD = "report.json", "report.md"
CONTROLLED_PREFIX = report.CONTROLLED_PREFIX


def _commands(ws: Workspace, done: dict[str, dict[str, Any]]) -> list[str]:
    """The command lines of the steps of ``ws``'s benchmark that ran (recipes.py; ``done`` keyed by
    the step's own name), relative to the work directory."""
    plan, root = ws.plan, ws.out
    rel = lambda p: str(Path(p).relative_to(root))  # noqa: E731
    data = rel(steps.main_data(ws))
    bench = ws.benchmark
    if bench.exact_truth:
        controlled = plan.controlled
        lines = ["# data: the controlled benchmark (mple_metrics.demo.controlled)"]
        lines += [recipes.controlled_data_command(kind, rel(path), controlled)
                  for kind, path in steps.datasets(ws).items()]
    else:
        lines = ["# data: the demo's sample (mple_metrics.demo.corpus) and its Synthetic A/B versions"]
    if "table1" in done:
        lines.append("# Table 1")
        lines += [recipes.tc_command(plan, rel(path), rel(ws.path("table1", n)), bench.max_epochs, bench.patience,
                                     carries_tokenizer=dataset_tokenizers(path) is not None)
                  for n, path in steps.datasets(ws).items()]
    if "kd" in done:
        lines += ["# KD", recipes.distill_command(plan, [rel(steps.teacher(ws))], data, rel(steps.kd_dir(ws)))]
    if "table2" in done:
        lines.append("# Table 2 and Figure 5")
        names = []
        for name, config in steps.table2_methods(ws):
            run = rel(steps.mle_nat(ws)) if config is None else rel(config.out)
            if config is not None:
                lines.append(recipes.train_command(config, root))
            lines.append(recipes.mple_command(plan, run, data, rel(ws.path("metrics", f"{name}.json"))))
            names.append(rel(ws.path("metrics", f"{name}.json")))
        lines.append(recipes.correlate_command(names, "default", rel(ws.path("figures", "table2_mple_vs_bleu.png")),
                                               (rel(ws.path("table1", bench.main, "tc.json")),
                                                rel(ws.path("figures", "figure5_l_nat_vs_c.png")))))
    if "figure1" in done:
        lines.append("# Figure 1")
        lines += [recipes.train_command(config, root) for config in steps.figure1_configs(ws).values()]
        lines.append(recipes.landscape_command([rel(steps.mle_nat(ws) / "best.pt"),
                                                rel(ws.path("nat", "ft-mle", "best.pt")),
                                                rel(ws.path("nat", "ft-glat-kd", "best.pt"))], data,
                                               rel(ws.path("figure1", "landscape")),
                                               plan.landscape_grid, plan.landscape_margin, plan.landscape_sentences))
    if "table3" in done:
        lines.append("# Table 3 (--full): the input predictor's frozen vanilla NAT is nat/kd")
        for name, config in steps.table3_configs(ws).items():
            lines.append(recipes.train_command(config, root))
            lines.append(recipes.mple_command(plan, rel(config.out), data, rel(ws.path("metrics", f"{name}+kd.json")),
                                              rel(ws.path("nat", "kd"))))
    if "dynamic_kd" in done:
        lines.append("# Dynamic KD (--full): a second teacher, the candidates, a NAT with and without the regulariser")
        second = steps.second_teacher_config(ws)
        lines.append(recipes.train_command(second, root))
        lines.append(recipes.distill_command(plan, [rel(steps.teacher(ws)), rel(second.out)], data,
                                             rel(steps.candidates_dir(ws)), list(steps.CANDIDATE_NAMES)))
        for name, config in steps.dynamic_kd_configs(ws).items():
            lines.append(recipes.train_command(config, root))
            lines.append(recipes.mple_command(plan, rel(config.out), data, rel(ws.path("metrics", f"{name}.json"))))
    return lines


def _own_steps(done: dict[str, dict[str, Any]], controlled: bool) -> dict[str, dict[str, Any]]:
    """The steps of one benchmark, under their own names."""
    if controlled:
        return report.controlled_results(done)
    return {k: v for k, v in done.items() if not k.startswith(CONTROLLED_PREFIX)}


def write_report(views: list[Workspace], done: dict[str, dict[str, Any]], started: float) -> dict[str, Any]:
    """report.json and report.md of the steps ``done`` so far; ``views``: one workspace view per benchmark."""
    ws = views[0]
    step_seconds = {k: float(v.get("seconds", 0.0)) for k, v in done.items()}
    commands: list[str] = []
    for view in views:
        commands += _commands(view, _own_steps(done, view.benchmark.exact_truth))
    document = {
        "plan": json_ready(ws.plan.identity()),
        "results": dict(done),
        "findings": report.findings(done, ws.out, ws.plan.mode),
        "step_seconds": step_seconds,
        "wall_seconds": time.perf_counter() - started,
        "computed_seconds": sum(step_seconds.values()),
        "machine": report.machine(), "versions": report.versions(),
        "commands": commands,
        "units": report.UNITS,
    }
    document = json_ready(document)
    atomic_write_text(ws.out / REPORT_JSON, json.dumps(document, indent=1) + "\n")
    atomic_write_text(ws.out / REPORT_MD, report.render_markdown(document, ws.out))
    return document


def run_demo(out: str | Path, plan: DemoPlan) -> dict[str, Any]:
    """Run (or resume) every step of ``plan`` in ``out``; returns the report document."""
    started = time.perf_counter()
    ws = Workspace(out, plan)
    done: dict[str, dict[str, Any]] = {}
    views: list[Workspace] = []

    def run(view: Workspace, name: str, title: str, compute) -> dict[str, Any]:
        key = (CONTROLLED_PREFIX if view.benchmark.exact_truth else "") + name
        view.echo(f"\n== {title}")
        result = view.step(name, compute)
        done[key] = result
        table = report.terminal_table(key, result, view.root)
        if result.get("reused"):
            view.echo("  (reused from an earlier run)")
        if table:
            view.echo(table)
        write_report(views, done, started)
        return result

    def tables_1_2_and_figure_1(view: Workspace, where: str) -> None:
        main = view.benchmark.main
        t1 = run(view, "table1", f"Table 1 ({where}): C and ΔBLEU on " + ", ".join(view.benchmark.paths()),
                 lambda: steps.table1(view))
        row = next(r for r in t1["rows"] if r["dataset"] == main)
        run(view, "kd", f"Sequence-level KD with Table 1's AT ({where}: {main})",
            lambda: steps.knowledge_distillation(view))
        run(view, "table2", f"Table 2 and Figure 5 ({where}: {main}): proxy targets",
            lambda: steps.table2(view, row["c_bits_per_token"], row["ci95_bits_per_token"],
                                 row.get("converged"), row.get("convergence_note"), row.get("c_true_bits_per_token")))
        run(view, "figure1", f"Figure 1 ({where}: {main}): the landscape of MLE and GLAT + KD fine-tunes",
            lambda: steps.figure1(view))

    bundled_paths = prepare_corpora(ws.path("data"), plan.corpus, vocab_size=plan.vocab_size)
    bundled = ws.scoped("", Benchmark("bundled", tuple(bundled_paths.items()), "bundled", plan.max_epochs,
                                      plan.patience, plan.skip_penalties))
    if plan.controlled is not None:
        controlled_paths = prepare_controlled(ws.path("controlled", "data"), plan.controlled)
        controlled = ws.scoped("controlled", Benchmark("controlled", tuple(controlled_paths.items()),
                                                       plan.controlled.main, plan.controlled.max_epochs,
                                                       plan.controlled.patience, plan.controlled.skip_penalties,
                                                       exact_truth=True))
        views.append(controlled)
        tables_1_2_and_figure_1(controlled, "controlled benchmark")
    views.append(bundled)
    tables_1_2_and_figure_1(bundled, "bundled corpus")
    if plan.full:
        run(bundled, "table3", "Table 3: proxy inputs, Input Sampling and L_input", lambda: steps.table3(bundled))
        run(bundled, "dynamic_kd", "Dynamic KD and its regulariser", lambda: steps.dynamic_kd(bundled))
    document = write_report(views, done, started)
    ws.echo(f"\nreport: {ws.path(REPORT_MD)} and {ws.path(REPORT_JSON)} "
            f"({document['wall_seconds'] / 60:.1f} minutes)")
    return document
