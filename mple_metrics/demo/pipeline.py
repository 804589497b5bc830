"""``mple demo`` end to end: the steps in order, a table on the terminal as each is done, the
report at the end (and after every step, so a killed run leaves a report of what it finished)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..atomic_write import atomic_write_text
from ..data import dataset_tokenizers
from ..estimators.total_correlation import json_ready
from . import recipes, report, steps
from .corpus import DATASETS, prepare_corpora
from .plan import DemoPlan
from .workspace import Workspace

REPORT_JSON, REPORT_MD = "report.json", "report.md"


def _commands(ws: Workspace, done: dict[str, dict[str, Any]]) -> list[str]:
    """The command lines of the steps that ran (recipes.py), relative to the work directory."""
    plan, root = ws.plan, ws.out
    rel = lambda p: str(Path(p).relative_to(root))  # noqa: E731
    data = rel(steps.datasets(ws)["bundled"])
    lines = ["# data: the demo's sample (mple_metrics.demo.corpus) and its Synthetic A/B versions"]
    if "table1" in done:
        lines.append("# Table 1")
        lines += [recipes.tc_command(plan, rel(steps.datasets(ws)[n]), f"table1/{n}",
                                     carries_tokenizer=dataset_tokenizers(steps.datasets(ws)[n]) is not None)
                  for n in DATASETS]
    if "kd" in done:
        lines += ["# KD", recipes.distill_command(plan, [rel(steps.teacher(ws))], data, rel(steps.kd_dir(ws)))]
    if "table2" in done:
        lines.append("# Table 2 and Figure 5")
        names = []
        for name, config in steps.table2_methods(ws):
            run = rel(steps.mle_nat(ws)) if config is None else rel(config.out)
            if config is not None:
                lines.append(recipes.train_command(config, root))
            lines.append(recipes.mple_command(plan, run, data, f"metrics/{name}.json"))
            names.append(f"metrics/{name}.json")
        lines.append(recipes.correlate_command(names, "default", "figures/table2_mple_vs_bleu.png",
                                               ("table1/bundled/tc.json", "figures/figure5_l_nat_vs_c.png")))
    if "figure1" in done:
        lines.append("# Figure 1")
        lines += [recipes.train_command(config, root) for config in steps.figure1_configs(ws).values()]
        lines.append(recipes.landscape_command([rel(steps.mle_nat(ws) / "best.pt"), "nat/ft-mle/best.pt",
                                                "nat/ft-glat-kd/best.pt"], data, "figure1/landscape",
                                               plan.landscape_grid, plan.landscape_margin, plan.landscape_sentences))
    if "table3" in done:
        lines.append("# Table 3 (--full): the input predictor's frozen vanilla NAT is nat/kd")
        for name, config in steps.table3_configs(ws).items():
            lines.append(recipes.train_command(config, root))
            lines.append(recipes.mple_command(plan, rel(config.out), data, f"metrics/{name}+kd.json", "nat/kd"))
    if "dynamic_kd" in done:
        lines.append("# Dynamic KD (--full): a second teacher, the candidates, a NAT with and without the regulariser")
        second = steps.second_teacher_config(ws)
        lines.append(recipes.train_command(second, root))
        lines.append(recipes.distill_command(plan, [rel(steps.teacher(ws)), rel(second.out)], data,
                                             rel(steps.candidates_dir(ws)), list(steps.CANDIDATE_NAMES)))
        for name, config in steps.dynamic_kd_configs(ws).items():
            lines.append(recipes.train_command(config, root))
            lines.append(recipes.mple_command(plan, rel(config.out), data, f"metrics/{name}.json"))
    return lines


def write_report(ws: Workspace, done: dict[str, dict[str, Any]], started: float) -> dict[str, Any]:
    step_seconds = {k: float(v.get("seconds", 0.0)) for k, v in done.items()}
    document = {
        "plan": json_ready(ws.plan.identity()),
        "results": dict(done),
        "findings": report.findings(done, ws.out, ws.plan.mode),
        "step_seconds": step_seconds,
        "wall_seconds": time.perf_counter() - started,
        "computed_seconds": sum(step_seconds.values()),
        "machine": report.machine(), "versions": report.versions(),
        "commands": _commands(ws, done),
        "units": report.UNITS,
    }
    document = json_ready(document)
    atomic_write_text(ws.path(REPORT_JSON), json.dumps(document, indent=1) + "\n")
    atomic_write_text(ws.path(REPORT_MD), report.render_markdown(document, ws.out))
    return document


def run_demo(out: str | Path, plan: DemoPlan) -> dict[str, Any]:
    """Run (or resume) every step of ``plan`` in ``out``; returns the report document."""
    started = time.perf_counter()
    ws = Workspace(out, plan)
    done: dict[str, dict[str, Any]] = {}

    def run(name: str, title: str, compute) -> dict[str, Any]:
        ws.echo(f"\n== {title}")
        result = ws.step(name, compute)
        done[name] = result
        table = report.terminal_table(name, result, ws.out)
        if result.get("reused"):
            ws.echo("  (reused from an earlier run)")
        if table:
            ws.echo(table)
        write_report(ws, done, started)
        return result

    prepare_corpora(ws.path("data"), plan.corpus, vocab_size=plan.vocab_size)
    t1 = run("table1", "Table 1: C and ΔBLEU on the bundled sample, Synthetic B and Synthetic A", lambda: steps.table1(ws))
    bundled = next(r for r in t1["rows"] if r["dataset"] == "bundled")
    run("kd", "Sequence-level KD with Table 1's AT", lambda: steps.knowledge_distillation(ws))
    run("table2", "Table 2 and Figure 5: proxy targets",
        lambda: steps.table2(ws, bundled["c_bits_per_token"], bundled["ci95_bits_per_token"],
                             bundled.get("converged"), bundled.get("convergence_note")))
    run("figure1", "Figure 1: the landscape of MLE and GLAT + KD fine-tunes", lambda: steps.figure1(ws))
    if plan.full:
        run("table3", "Table 3: proxy inputs, Input Sampling and L_input", lambda: steps.table3(ws))
        run("dynamic_kd", "Dynamic KD and its regulariser", lambda: steps.dynamic_kd(ws))
    document = write_report(ws, done, started)
    ws.echo(f"\nreport: {ws.path(REPORT_MD)} and {ws.path(REPORT_JSON)} "
            f"({document['wall_seconds'] / 60:.1f} minutes)")
    return document
