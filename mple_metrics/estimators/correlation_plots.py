"""Figures of the L_MPLE-BLEU correlation: a scatter of L_MPLE against BLEU (Tables 2/3 as a plot)
and the paper's Figure 5 (each method's L_NAT as a bar, the dataset's C as a horizontal line).

Both return the image bytes (PNG, or PDF with ``format="pdf"``), drawn on matplotlib's Agg canvas
without changing the global backend; the caller writes them (atomically).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from .correlation import CorrelationReport, MethodResult, TotalCorrelationLine

IMAGE_FORMATS: tuple[str, ...] = ("png", "pdf")


def _figure(size: tuple[float, float]):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _render(figure, format: str) -> bytes:
    if format not in IMAGE_FORMATS:
        raise ValueError(f"format must be one of {IMAGE_FORMATS}, got {format!r}")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format=format)
    return buffer.getvalue()


def scatter_plot(report: CorrelationReport, *, format: str = "png") -> bytes:
    """L_MPLE (y) against BLEU (x), one point per method labelled by its name, with L_MPLE's 95%
    interval as an error bar where every file has one (``ci95["l_mple"]``); Pearson's r and its
    bootstrap interval in the title."""
    rows = report.rows
    x = [row.bleu(report.bleu) for row in rows]
    y = [row.l_mple for row in rows]
    figure = _figure((6.4, 4.8))
    axes = figure.add_subplot()
    if all("l_mple" in row.ci95 for row in rows):
        yerr = [[row.l_mple - row.ci95["l_mple"][0] for row in rows],
                [row.ci95["l_mple"][1] - row.l_mple for row in rows]]
        axes.errorbar(x, y, yerr=yerr, fmt="none", ecolor="#8c8c8c", elinewidth=1, capsize=2)
    axes.scatter(x, y, color="#4c72b0", zorder=3)
    for k, (row, xi, yi) in enumerate(zip(rows, x, y)):  # labels alternate above/below: neighbours overlap less
        axes.annotate(row.method, (xi, yi), textcoords="offset points", xytext=(4, 4 if k % 2 == 0 else -11),
                      fontsize=8)
    i = report.interval
    beta = (f"β = {report.beta:g}" if report.beta is not None
            else "β = " + ", ".join(sorted({f"{row.beta:g}" for row in rows})))
    axes.set_title(f"Pearson r = {report.r:.3f}, {i.confidence:.0%} CI [{i.low:.3f}, {i.high:.3f}] "
                   f"({len(rows)} methods, {beta})", fontsize=9)
    axes.set_xlabel(f"BLEU ({report.bleu} decoding, corpus BLEU 0–100)")
    axes.set_ylabel("L_MPLE = L_NAT + L_input + L_target\n(bits/token + β·BLEU points, as in the paper)")
    axes.grid(alpha=0.3)
    axes.margins(x=0.15, y=0.08)  # room for the labels of the outermost points
    return _render(figure, format)


def figure5_plot(rows: Sequence[MethodResult], tc: TotalCorrelationLine, *, format: str = "png") -> bytes:
    """The paper's Figure 5: a bar per method of L_NAT (bits/token, with its 95% interval where the
    file has ``ci95["l_nat_bits_per_token"]``) and the dataset's C (bits/token) as a horizontal line
    with its interval as a band.  Bars below C are the methods that lose less than C."""
    if len(rows) == 0:
        raise ValueError("rows is empty: no method to draw")
    names = [row.method for row in rows]
    values = [row.l_nat for row in rows]
    c = tc.c_bits_per_token
    figure = _figure((max(6.4, 0.8 * len(rows) + 2.0), 4.6))
    axes = figure.add_subplot()
    colors = ["#c44e52" if value > c else "#4c72b0" for value in values]
    positions = list(range(len(rows)))
    yerr = None
    if all("l_nat_bits_per_token" in row.ci95 for row in rows):
        yerr = [[row.l_nat - row.ci95["l_nat_bits_per_token"][0] for row in rows],
                [row.ci95["l_nat_bits_per_token"][1] - row.l_nat for row in rows]]
    axes.bar(positions, values, color=colors, yerr=yerr, capsize=3 if yerr else 0, zorder=2)
    label = f"dataset's C = {c:.2f} bits/token"
    if tc.ci95_bits_per_token is not None:
        low, high = tc.ci95_bits_per_token
        axes.axhspan(low, high, color="#dd8452", alpha=0.3, zorder=1, label=f"C's 95% CI [{low:.2f}, {high:.2f}]")
    axes.axhline(c, color="#dd8452", linewidth=2, zorder=3, label=label)
    axes.set_xticks(positions)
    axes.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    axes.set_ylabel("L_NAT (bits/token)")
    axes.set_xlabel("method (red: L_NAT above C)")
    axes.set_title("L_NAT of each method against the dataset's conditional total correlation C", fontsize=9)
    axes.legend(fontsize=8)
    axes.grid(axis="y", alpha=0.3, zorder=0)
    return _render(figure, format)
