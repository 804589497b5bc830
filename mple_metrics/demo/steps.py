"""The demo's steps, each a call of the package's own estimators on runs it trains (or reuses).

Each step runs on the benchmark of its workspace view (:class:`.workspace.Benchmark`): the
controlled benchmark (under ``controlled/``, its main dataset ``phrasing``) and then the bundled
corpus (at the top of the work directory, its main dataset the bundled sample).

Work is shared the way the paper's experiments share it: the MLE NAT of Table 1 (main dataset) is
Table 2's raw row, Figure 1's origin θ0 and the start of both fine-tunes; the AT of Table 1 is the
KD teacher; the KD NAT is OaXE's starting point (Appendix G) and the frozen vanilla NAT of the
input predictor (Table 3).  Every NAT of Tables 2 and 3 copies the schedule of Table 1's NAT (batch
size, learning rate, warm-up, epoch cap, early stopping) and changes only its proxy.

Layout of the work directory: ``data/<dataset>``, ``table1/<dataset>`` (``mple estimate tc``'s
output: ``seed1/{nat,at}``, ``tokenizer``, ``tc.json``), ``kd/`` (``mple distill``), ``nat/<method>``
(training runs), ``metrics/<method>.json`` (``mple estimate mple``), ``figures/``, ``figure1/``
(``mple landscape``), ``results/<step>.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..atomic_write import atomic_write_bytes, atomic_write_text
from ..decode import DecodeOptions
from ..decode.distill import distill
from ..estimators import correlation as corr
from ..estimators.correlation_plots import figure5_plot, scatter_plot
from ..estimators.proxy_metrics import ProxyMetricSettings, proxy_metrics
from ..estimators.tc_pipeline import estimate_tc_by_training
from ..estimators.tc_training import TCTrainingSettings, train_or_reuse
from ..estimators.total_correlation import json_ready
from ..landscape import LandscapeSettings, run_landscape
from ..landscape import summary as landscape_summary
from ..train import TrainConfig
from .controlled import truth_columns
from .corpus import corpus_counts
from .workspace import Workspace

#: Table 3's proxy inputs (all with KD targets), in the paper's order.
TABLE3_INPUTS: tuple[str, ...] = ("cmlm", "cmlm-fixed", "glat", "glat-lev", "glat-pref", "glat-1-pref")


# ----------------------------------------------------------------------------- shared runs
def datasets(ws: Workspace) -> dict[str, Path]:
    """The benchmark's datasets (written once, by the pipeline, before the first step)."""
    return ws.benchmark.paths()


def main_data(ws: Workspace) -> Path:
    """The dataset of KD, Table 2 and Figure 1."""
    return datasets(ws)[ws.benchmark.main]


def tc_settings(ws: Workspace, name: str) -> TCTrainingSettings:
    plan, bench = ws.plan, ws.benchmark
    return TCTrainingSettings(data=str(datasets(ws)[name]), out=str(ws.path("table1", name)),
                              tokenizer_kind=plan.tokenizer_kind, vocab_size=plan.vocab_size, size=plan.size,
                              max_tokens=plan.max_tokens, lr=plan.lr, max_epochs=bench.max_epochs,
                              budget_steps=plan.max_steps, patience=bench.patience,
                              device=plan.device, quiet=plan.quiet)


def mle_nat(ws: Workspace) -> Path:
    """Table 1's NAT on the main dataset: the raw row of Table 2 and θ0 of Figure 1."""
    return ws.path("table1", ws.benchmark.main, "seed1", "nat")


def teacher(ws: Workspace) -> Path:
    """Table 1's AT on the main dataset: the KD teacher."""
    return ws.path("table1", ws.benchmark.main, "seed1", "at")


def kd_dir(ws: Workspace) -> Path:
    return ws.path("kd")


def derived_config(ws: Workspace, base: Path, name: str, **changes: Any) -> TrainConfig:
    """The config of ``base`` (a run directory) for run ``nat/<name>`` with ``changes``."""
    values = TrainConfig.load_json(base / "config.json").to_dict()
    values.update(out=str(ws.path("nat", name)), resume=False, **changes)
    if "input" in changes:
        values["nat_input"] = None  # derived from the input: the mask token for CMLM
    return TrainConfig.from_dict(values)


def fine_tune(ws: Workspace, start: Path, name: str, epochs: int, **changes: Any) -> TrainConfig:
    """A fine-tune of the run ``start``'s best weights at the plan's constant learning rate from the
    first update, as the paper fine-tunes: no warmup (the MLE NAT's, derived for a run from scratch,
    can outlast a fine-tune of a few epochs) and no minimum before early stopping; the rest of the
    schedule is the MLE NAT's."""
    return derived_config(ws, mle_nat(ws), name, init_from=str(start), lr_schedule="constant",
                          lr=ws.plan.fine_tune_lr, warmup_steps=0, min_updates=0, max_epochs=epochs, **changes)


def train_run(ws: Workspace, config: TrainConfig) -> dict[str, Any]:
    ws.echo(f"  training {Path(config.out).relative_to(ws.out)} "
            f"(target {config.target}, input {config.input}{', from ' + Path(config.init_from).name if config.init_from else ''})")
    summary = train_or_reuse(config)
    return {"run": config.out, "steps": summary.get("steps"), "epochs_completed": summary.get("epochs_completed"),
            "stopped_early": summary.get("stopped_early"), "best_step": summary.get("best_step"),
            "selection": summary.get("selection")}


def metrics_of(ws: Workspace, run: Path, name: str, input_predictor: Path | None = None) -> dict[str, Any]:
    """``mple estimate mple`` of ``run`` on the test split, kept in ``metrics/<name>.json``."""
    path = ws.path("metrics", f"{name}.json")
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    settings = ProxyMetricSettings(split="test", n_resamples=ws.plan.n_resamples)
    result = proxy_metrics(run, main_data(ws), settings, input_predictor=input_predictor,
                           device=ws.plan.device)
    result["method"] = name
    atomic_write_text(path, json.dumps(json_ready(result), indent=1) + "\n")
    return result


def read_metrics(ws: Workspace, names: list[str]) -> list[corr.MethodResult]:
    return corr.read_results([ws.path("metrics", f"{n}.json") for n in names])


def correlation_of(ws: Workspace, rows: list[corr.MethodResult], bleu: str, figure: str) -> dict[str, Any]:
    """Pearson r between L_MPLE and ``bleu`` over the methods ``rows``, with its scatter plot."""
    try:
        report = corr.correlate(rows, bleu=bleu, n_resamples=ws.plan.n_resamples)
    except ValueError as error:  # e.g. every BLEU 0: r is undefined, which the report says
        return {"pearson_r": None, "interval": None, "n_methods": len(rows), "undefined": str(error),
                "figure": None, "markdown": None}
    atomic_write_bytes(ws.path("figures", figure), scatter_plot(report))
    return {**report.to_dict(), "figure": f"figures/{figure}", "markdown": corr.markdown_table(report)}


# ----------------------------------------------------------------------------- Table 1
def table1(ws: Workspace) -> dict[str, Any]:
    """Ĉ and ΔBLEU on each dataset of the benchmark, one family and budget; on the controlled
    benchmark with the exact C and each model's NLL floor beside the estimate."""
    rows = []
    for name, data in datasets(ws).items():
        ws.echo(f"  Ĉ of {name}: training an MLE NAT and AT")
        report = estimate_tc_by_training(tc_settings(ws, name), split="test", at_beam=ws.plan.at_beam,
                                         n_resamples=ws.plan.n_resamples)
        extra = report.extra
        row = {"dataset": name, **report.estimate.to_dict(),
               **{k: extra.get(k) for k in ("bleu_at", "bleu_nat", "delta_bleu", "bleu_signature",
                                            "converged", "convergence_note", "training")},
               "tc_json": str(ws.path("table1", name, "tc.json").relative_to(ws.out)), "data": corpus_counts(data)}
        if ws.benchmark.exact_truth:
            row.update(truth_columns(data, "test", row["c_bits_per_token"], row.get("nll_nat_bits_per_token"),
                                     row.get("nll_at_bits_per_token")))
        rows.append(row)
    return {"rows": rows}


# ----------------------------------------------------------------------------- KD
def knowledge_distillation(ws: Workspace) -> dict[str, Any]:
    ws.echo(f"  translating every split with the AT teacher (beam {ws.plan.kd_beam})")
    manifest = distill(teacher(ws), main_data(ws), kd_dir(ws), options=DecodeOptions(beam=ws.plan.kd_beam),
                       device=ws.plan.device, quiet=ws.plan.quiet)
    return {"kd": str(kd_dir(ws)), "teacher": str(teacher(ws)), "beam": ws.plan.kd_beam,
            "manifest": {k: manifest.get(k) for k in ("splits", "teacher", "decode") if k in manifest}}


# ----------------------------------------------------------------------------- Table 2 and Figure 5
def table2_methods(ws: Workspace) -> list[tuple[str, TrainConfig | None]]:
    """(method, config) of Table 2 in the paper's order; the raw row is Table 1's NAT (no config)."""
    kd = [str(kd_dir(ws))]
    base = mle_nat(ws)
    methods: list[tuple[str, TrainConfig | None]] = [("raw", None), ("kd", derived_config(ws, base, "kd", target="kd", kd=kd))]
    for tau in ws.benchmark.skip_penalties:
        methods.append((f"kd+axe(tau={tau:g})",
                        derived_config(ws, base, f"axe-tau{tau:g}", target="axe", kd=kd, skip_penalty=float(tau))))
    methods.append(("kd+oaxe", fine_tune(ws, ws.path("nat", "kd"), "oaxe", ws.plan.oaxe_epochs, target="oaxe", kd=kd)))
    return methods


def table2(ws: Workspace, c_bits_per_token: float, c_ci95: list[float] | None,
           converged: bool | None = None, convergence_note: str | None = None,
           exact_c: float | None = None) -> dict[str, Any]:
    """Raw, KD, KD + AXE (each τ) and KD + OaXE: L_NAT, L_target, L_MPLE, BLEU and r; Figure 5
    (with C of Table 1's row of the main dataset, marked when it has not converged, and the exact C
    where the benchmark knows it)."""
    runs, names = {}, []
    for name, config in table2_methods(ws):
        run = mle_nat(ws) if config is None else Path(config.out)
        if config is not None:
            runs[name] = train_run(ws, config)
        ws.echo(f"  proxy metrics of {name}")
        metrics_of(ws, run, name)
        names.append(name)
    rows = read_metrics(ws, names)
    correlation = correlation_of(ws, rows, "default", "table2_mple_vs_bleu.png")
    line = corr.TotalCorrelationLine(c_bits_per_token=c_bits_per_token,
                                     ci95_bits_per_token=None if c_ci95 is None else tuple(c_ci95),
                                     signature=None, path=f"table1/{ws.benchmark.main}/tc.json", converged=converged,
                                     convergence_note=convergence_note)
    atomic_write_bytes(ws.path("figures", "figure5_l_nat_vs_c.png"), figure5_plot(rows, line, exact_c=exact_c))
    return {"dataset": ws.benchmark.main, "methods": names, "runs": runs,
            "metrics": {n: f"metrics/{n}.json" for n in names},
            "correlation": correlation, "figure5": "figures/figure5_l_nat_vs_c.png",
            "c_bits_per_token": c_bits_per_token, "c_ci95": c_ci95, "c_true_bits_per_token": exact_c}


# ----------------------------------------------------------------------------- Figure 1
def figure1_configs(ws: Workspace) -> dict[str, TrainConfig]:
    """θ1 and θ2: the MLE NAT fine-tuned with MLE and with GLAT + KD."""
    base, epochs = mle_nat(ws), ws.plan.fine_tune_epochs
    return {"mle": fine_tune(ws, base, "ft-mle", epochs),
            "glat+kd": fine_tune(ws, base, "ft-glat-kd", epochs, target="kd", kd=[str(kd_dir(ws))], input="glat")}


def figure1(ws: Workspace) -> dict[str, Any]:
    """The landscape through θ0 (MLE NAT), θ1 (θ0 fine-tuned with MLE) and θ2 (θ0 fine-tuned with
    GLAT + KD), in NLL of the raw references and BLEU on the valid split."""
    base = mle_nat(ws)
    runs = {name: train_run(ws, config) for name, config in figure1_configs(ws).items()}
    # Labelled links, so the figure names the points by what they are; relative, so that the work
    # directory can be moved.
    links = ws.path("figure1", "checkpoints")
    links.mkdir(parents=True, exist_ok=True)
    sources = {"mle-nat": base, "mle-fine-tuned": ws.path("nat", "ft-mle"), "glat-kd-fine-tuned": ws.path("nat", "ft-glat-kd")}
    for label, target in sources.items():
        link = links / label
        if not link.is_symlink():
            link.symlink_to(os.path.relpath(target, links), target_is_directory=True)
    settings = LandscapeSettings(checkpoints=[str(links / label / "best.pt") for label in sources],
                                 data=str(main_data(ws)), out=str(ws.path("figure1", "landscape")),
                                 split="valid", grid=ws.plan.landscape_grid, margin=ws.plan.landscape_margin,
                                 metrics="nll,bleu", max_sentences=ws.plan.landscape_sentences,
                                 device=ws.plan.device, quiet=ws.plan.quiet)
    ws.echo(f"  landscape: {ws.plan.landscape_grid} grid on {ws.plan.landscape_sentences} valid sentences")
    landscape = run_landscape(settings)
    return {"runs": runs, "landscape": landscape_summary(landscape), "figure": "figure1/landscape/landscape.png",
            "settings": {"grid": settings.grid, "margin": settings.margin, "split": settings.split,
                         "max_sentences": settings.max_sentences}}


# ----------------------------------------------------------------------------- full: Table 3
def table3_configs(ws: Workspace) -> dict[str, TrainConfig]:
    """A NAT per proxy input of Table 3, on KD targets, with the raw NAT's schedule."""
    return {name: derived_config(ws, mle_nat(ws), f"kd-{name}", target="kd", kd=[str(kd_dir(ws))], input=name)
            for name in TABLE3_INPUTS}


def table3(ws: Workspace) -> dict[str, Any]:
    """KD targets with each proxy input: L_input, L_NAT, L_MPLE, BLEU by Input Sampling and by
    default decoding; the frozen vanilla NAT of the input predictor is the KD NAT."""
    predictor = ws.path("nat", "kd")
    runs, names = {}, ["kd"]
    metrics_of(ws, predictor, "kd")
    for name, config in table3_configs(ws).items():
        runs[name] = train_run(ws, config)
        ws.echo(f"  proxy metrics of {name}+kd (L_input with the KD NAT as input predictor)")
        metrics_of(ws, Path(config.out), f"{name}+kd", input_predictor=predictor)
        names.append(f"{name}+kd")
    # The vanilla row has no input to sample: its Input Sampling BLEU is its default BLEU.
    vanilla = json.loads(ws.path("metrics", "kd.json").read_text(encoding="utf-8"))
    vanilla.update(method="vanilla+kd", bleu_sample=vanilla["bleu_default"])
    atomic_write_text(ws.path("metrics", "vanilla+kd.json"), json.dumps(vanilla, indent=1) + "\n")
    names = ["vanilla+kd", *names[1:]]
    rows = read_metrics(ws, names)
    return {"methods": names, "runs": runs,
            "correlation_sample": correlation_of(ws, rows, "sample", "table3_mple_vs_sample_bleu.png"),
            "correlation_default": correlation_of(ws, rows, "default", "table3_mple_vs_default_bleu.png")}


# ----------------------------------------------------------------------------- full: dynamic KD
CANDIDATE_NAMES: tuple[str, ...] = ("at-tiny", "at-narrow")


def candidates_dir(ws: Workspace) -> Path:
    return ws.path("kd-candidates")


def second_teacher_config(ws: Workspace) -> TrainConfig:
    """Table 1's AT settings with a narrower model (the plan's ``second_teacher`` overrides)."""
    values = TrainConfig.load_json(teacher(ws) / "config.json").to_dict()
    values.update(out=str(ws.path("teachers", "at-narrow")), resume=False, model_overrides=dict(ws.plan.second_teacher))
    return TrainConfig.from_dict(values)


def dynamic_kd_configs(ws: Workspace) -> dict[str, TrainConfig]:
    """Dynamic KD on the candidate directory, with and without the regulariser L'_target."""
    return {name: derived_config(ws, mle_nat(ws), run, target="dynamic-kd", kd=[str(candidates_dir(ws))],
                                 regularizer=regularizer)
            for name, run, regularizer in (("dynamic-kd", "dynamic-kd", True),
                                           ("dynamic-kd(no-reg)", "dynamic-kd-no-reg", False))}


def dynamic_kd(ws: Workspace) -> dict[str, Any]:
    """Dynamic KD (Sec. 3.4) with candidates raw + two AT teachers of different sizes, with and
    without the regulariser L'_target, against single-teacher KD."""
    ws.echo("  training a second, narrower AT teacher")
    second_config = second_teacher_config(ws)
    second = train_run(ws, second_config)
    ws.echo("  translating with both teachers (KD candidates)")
    distill([teacher(ws), Path(second_config.out)], main_data(ws), candidates_dir(ws),
            options=DecodeOptions(beam=ws.plan.kd_beam), device=ws.plan.device, quiet=ws.plan.quiet,
            names=list(CANDIDATE_NAMES))
    runs = {"teacher-narrow": second}
    for name, config in dynamic_kd_configs(ws).items():
        runs[name] = train_run(ws, config)
        ws.echo(f"  proxy metrics of {name}")
        metrics_of(ws, Path(config.out), name)
    names = ["kd", "dynamic-kd", "dynamic-kd(no-reg)"]
    rows = [json.loads(ws.path("metrics", f"{n}.json").read_text(encoding="utf-8")) for n in names]
    return {"methods": names, "runs": runs, "rows": [{k: r.get(k) for k in (
        "method", "l_nat_bits_per_token", "l_target", "l_mple", "bleu_default", "ci95",
        "dynamic_kd_choice_fraction")} for r in rows]}
