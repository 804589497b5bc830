"""Figures of the L_MPLE-BLEU correlation: a scatter of L_MPLE against BLEU (Tables 2/3 as a plot)
and the paper's Figure 5 (each method's L_NAT as a bar, the dataset's C as a horizontal line).

Both return the image bytes (PNG, PDF or SVG, see :data:`IMAGE_FORMATS`), drawn on matplotlib's
Agg canvas without changing the global backend; the caller writes them (atomically).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import numpy as np

from .correlation import CorrelationReport, MethodResult, TotalCorrelationLine, number_text

#: Image formats the figures are written in, named by the file's extension.
IMAGE_FORMATS: tuple[str, ...] = ("png", "pdf", "svg")
#: Gap (pixels) between a point and its label, and between labels.
LABEL_GAP_PX = 3.0


def image_format(path: str | os.PathLike) -> str:
    """The format of :data:`IMAGE_FORMATS` that ``path``'s extension names (case-insensitive);
    ValueError for any other name (an image must not land in a file named ``.txt``)."""
    suffix = os.path.splitext(os.fspath(path))[1].lower().lstrip(".")
    if suffix not in IMAGE_FORMATS:
        got = f".{suffix}" if suffix else "no extension"
        raise ValueError(f"{os.fspath(path)}: the image format is taken from the file name; end it in "
                         f"{', '.join('.' + f for f in IMAGE_FORMATS)} (got {got})")
    return suffix


def _figure(size: tuple[float, float]):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _render(figure, format: str, *, layout: bool = True) -> bytes:
    if format not in IMAGE_FORMATS:
        raise ValueError(f"format must be one of {IMAGE_FORMATS}, got {format!r}")
    if layout:
        figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format=format)
    return buffer.getvalue()


def _overlaps(box: tuple[float, float, float, float], boxes: list[tuple[float, float, float, float]]) -> bool:
    x0, y0, x1, y1 = box
    return any(x0 < b[2] and b[0] < x1 and y0 < b[3] and b[1] < y1 for b in boxes)


def _place_labels(axes, names: Sequence[str], x: Sequence[float], y: Sequence[float], fontsize: float) -> None:
    """Label each point with its name where the label covers no other label and no point.

    Points that coincide (or nearly) would otherwise print their names over each other.  Greedy and
    deterministic: points from the bottom left, each label at the first free place of a list of
    candidates beside the point (right, left, above, below), then further away in rows of one
    label height, tied to its point by a thin line.  Works in display pixels, so the layout must
    be final (the caller renders without another tight_layout)."""
    figure = axes.figure
    renderer = figure.canvas.get_renderer()
    axes.get_xlim(), axes.get_ylim()  # settles the autoscaled limits that transData maps through
    points = axes.transData.transform(np.column_stack([x, y]))
    radius = 4.0  # half the marker's width in pixels (the default scatter marker, 36 pt^2, at 100 dpi)
    taken = [(px - radius, py - radius, px + radius, py + radius) for px, py in points]
    frame = axes.get_window_extent(renderer)
    to_points = 72.0 / figure.dpi
    for k in sorted(range(len(names)), key=lambda i: (points[i][0], points[i][1], i)):
        px, py = points[k]
        probe = axes.text(0, 0, names[k], fontsize=fontsize)
        extent = probe.get_window_extent(renderer)
        probe.remove()
        w, h, g = extent.width, extent.height, LABEL_GAP_PX
        near = [(radius + g, g), (radius + g, -h - g), (-radius - g - w, g), (-radius - g - w, -h - g),
                (-w / 2, radius + g), (-w / 2, -radius - g - h)]
        far = [(dx, radius + g + step * (h + g) if up else -radius - g - step * (h + g) - h)
               for step in range(1, 4 * len(names) + 2) for up in (True, False)
               for dx in (radius + g, -radius - g - w)]
        boxes = [(dx, dy, (px + dx, py + dy, px + dx + w, py + dy + h)) for dx, dy in near + far]
        free = [c for c in boxes if not _overlaps(c[2], taken)]
        inside = [c for c in free if frame.x0 <= c[2][0] and c[2][2] <= frame.x1
                  and frame.y0 <= c[2][1] and c[2][3] <= frame.y1]
        dx, dy, box = (inside or free)[0]
        leader = (None if (dx, dy) in near
                  else {"arrowstyle": "-", "color": "#8c8c8c", "linewidth": 0.6, "shrinkA": 0, "shrinkB": radius})
        axes.annotate(names[k], (x[k], y[k]), xytext=(dx * to_points, dy * to_points), textcoords="offset points",
                      fontsize=fontsize, ha="left", va="bottom", arrowprops=leader)
        taken.append(box)


def scatter_figure(report: CorrelationReport):
    """The figure of :func:`scatter_plot`, laid out and labelled (a matplotlib ``Figure``)."""
    rows = report.rows
    x = [row.bleu(report.bleu) for row in rows]
    y = [row.l_mple for row in rows]
    figure = _figure((6.4, 4.8))
    axes = figure.add_subplot()
    if all("l_mple" in row.ci95 for row in rows):
        # max(0, ...): a percentile interval need not contain its estimate; the bar then ends at it.
        yerr = [[max(0.0, row.l_mple - row.ci95["l_mple"][0]) for row in rows],
                [max(0.0, row.ci95["l_mple"][1] - row.l_mple) for row in rows]]
        axes.errorbar(x, y, yerr=yerr, fmt="none", ecolor="#8c8c8c", elinewidth=1, capsize=2)
    axes.scatter(x, y, color="#4c72b0", zorder=3)
    i = report.interval
    beta = (f"β = {number_text(report.beta, 'g')}" if report.beta is not None
            else "β = " + ", ".join(sorted({number_text(row.beta, "g") for row in rows})))
    f3 = [number_text(v, ".3f") for v in (report.r, i.low, i.high)]
    axes.set_title(f"Pearson r = {f3[0]}, {i.confidence:.0%} CI [{f3[1]}, {f3[2]}] "
                   f"({len(rows)} methods, {beta})", fontsize=9)
    axes.set_xlabel(f"BLEU ({report.bleu} decoding, corpus BLEU 0–100)")
    axes.set_ylabel("L_MPLE = L_NAT + L_input + L_target\n(bits/token + β·BLEU points, as in the paper)")
    axes.grid(alpha=0.3)
    axes.margins(x=0.25, y=0.15)  # room for the labels of the outermost points
    figure.tight_layout()
    _place_labels(axes, [row.method for row in rows], x, y, fontsize=8)
    return figure


def scatter_plot(report: CorrelationReport, *, format: str = "png") -> bytes:
    """L_MPLE (y) against BLEU (x), one point per method labelled by its name (labels placed so
    that none covers another or a point, coincident points included), with L_MPLE's 95% interval
    as an error bar where every file has one (``ci95["l_mple"]``); Pearson's r and its bootstrap
    interval in the title."""
    return _render(scatter_figure(report), format, layout=False)


def figure5_plot(rows: Sequence[MethodResult], tc: TotalCorrelationLine, *, format: str = "png",
                 exact_c: float | None = None) -> bytes:
    """The image of :func:`figure5_figure`."""
    return _render(figure5_figure(rows, tc, exact_c=exact_c), format)


def figure5_figure(rows: Sequence[MethodResult], tc: TotalCorrelationLine, *, exact_c: float | None = None):
    """The paper's Figure 5 (a matplotlib ``Figure``): a bar per method of L_NAT (bits/token, with
    its 95% interval where the file has ``ci95["l_nat_bits_per_token"]``) and the dataset's C
    (bits/token) as a horizontal line with its interval as a band, labelled with the split it was
    measured on.  Bars below C are the methods that lose less than C.  A C that ``tc`` records as
    not converged is drawn dashed and said so in the legend and the title.  ``exact_c``: the
    dataset's true C (bits/token) where it is known (a controlled dataset), drawn as a dotted line."""
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
        yerr = [[max(0.0, row.l_nat - row.ci95["l_nat_bits_per_token"][0]) for row in rows],
                [max(0.0, row.ci95["l_nat_bits_per_token"][1] - row.l_nat) for row in rows]]
    axes.bar(positions, values, color=colors, yerr=yerr, capsize=3 if yerr else 0, zorder=2)
    unconverged = tc.converged is False
    where = f" ({tc.split} split)" if tc.split else ""
    label = (("estimated C" if exact_c is not None else "dataset's C")
             + f"{where} = {number_text(c, '.2f')} bits/token"
             + (" — NOT CONVERGED" if unconverged else ""))
    if tc.ci95_bits_per_token is not None:
        low, high = tc.ci95_bits_per_token
        axes.axhspan(low, high, color="#dd8452", alpha=0.3, zorder=1,
                     label=f"C's 95% CI [{number_text(low, '.2f')}, {number_text(high, '.2f')}]")
    axes.axhline(c, color="#dd8452", linewidth=2, zorder=3, label=label, linestyle="--" if unconverged else "-")
    if exact_c is not None:
        axes.axhline(exact_c, color="black", linewidth=1.5, linestyle=":", zorder=4,
                     label=f"exact C = {number_text(exact_c, '.3f')} bits/token")
    axes.set_xticks(positions)
    axes.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    axes.set_ylabel("L_NAT (bits/token)")
    axes.set_xlabel("method (red: L_NAT above C)")
    title = "L_NAT of each method against the dataset's conditional total correlation C"
    if unconverged:
        title += ("\nwarning: this estimate of C has not converged"
                  + (f" ({tc.convergence_note})" if tc.convergence_note else "") + "; it may still move")
    axes.set_title(title, fontsize=9, wrap=True)
    axes.legend(fontsize=8)
    axes.grid(axis="y", alpha=0.3, zorder=0)
    return figure
