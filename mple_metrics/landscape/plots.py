"""Figure 1-style pictures of a :class:`~mple_metrics.landscape.grid.Landscape`: one panel per
metric side by side, filled contours over (a, b) (a curve for a line), the checkpoints marked and
labelled, a colour bar with the metric's unit, and each metric's better direction in its title.
Cells not yet computed are left blank (NaN is masked, never drawn as a value).

Drawn on matplotlib's Agg canvas without touching the global backend; files are written atomically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic_write import atomic_write_bytes
from .grid import LANDSCAPE_FILE, Landscape

IMAGE_FORMATS: tuple[str, ...] = ("png", "pdf")
MARKERS = ("o", "s", "^", "D", "v")


def _figure(size: tuple[float, float]):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=110)
    FigureCanvasAgg(figure)
    return figure


def _axis_labels(landscape: Landscape) -> tuple[str, str]:
    axes, labels = landscape.plane.get("axes"), landscape.plane.get("labels", [])
    if axes == "orthonormal":
        return "a: distance along u = θ1 − θ0 (weight-space L2)", "b: distance along v (Gram–Schmidt of θ2 − θ0)"
    if axes == "random":
        return "a: random direction 1 (filter-normalised)", "b: random direction 2 (filter-normalised)"
    return "a: steps of θ1 − θ0", "b: steps of θ2 − θ0"


def render(landscape: Landscape, *, levels: int = 20, format: str = "png", title: str | None = None) -> bytes:
    """The picture's bytes (PNG or PDF)."""
    import io

    from matplotlib import ticker

    if format not in IMAGE_FORMATS:
        raise ValueError(f"format must be one of {IMAGE_FORMATS}, got {format!r}")
    if levels < 2:
        raise ValueError(f"levels must be >= 2, got {levels}")
    n = len(landscape.metrics)
    line = landscape.plane.get("kind") == "line" or len(landscape.b) == 1
    figure = _figure((5.2 * n, 4.4))
    coords = np.asarray(landscape.plane.get("coordinates", []), dtype=np.float64).reshape(-1, 2)
    labels = landscape.plane.get("labels", [])
    xlabel, ylabel = _axis_labels(landscape)
    for i, info in enumerate(landscape.metrics):
        ax = figure.add_subplot(1, n, i + 1)
        values = landscape.values[info["name"]]
        better = "higher is better" if info.get("higher_is_better") else "lower is better"
        ax.set_title(f"{info['name']} [{info['unit']}] ({better})", fontsize=10)
        finite = np.isfinite(values)
        if line:
            ax.plot(landscape.a, values[0], "-", color="C0", lw=1.5)
            ax.set_ylabel(f"{info['name']} [{info['unit']}]")
            for k, (x, _) in enumerate(coords):
                y = np.interp(x, landscape.a[finite[0]], values[0][finite[0]]) if finite[0].any() else np.nan
                ax.plot([x], [y], MARKERS[k % len(MARKERS)], color="k", ms=7)
                ax.annotate(labels[k] if k < len(labels) else f"θ{k}", (x, y), textcoords="offset points",
                            xytext=(5, 6), fontsize=8)
            ax.set_xlabel(xlabel)
            ax.grid(alpha=0.3)
            continue
        if finite.sum() >= 1 and np.nanmax(values) > np.nanmin(values):
            low, high = float(np.nanmin(values)), float(np.nanmax(values))
            contour = ax.contourf(landscape.a, landscape.b, np.ma.masked_invalid(values),
                                  levels=np.linspace(low, high, levels + 1),
                                  cmap="viridis" if info.get("higher_is_better") else "viridis_r")
            ax.contour(landscape.a, landscape.b, np.ma.masked_invalid(values),
                       levels=np.linspace(low, high, levels + 1), colors="k", linewidths=0.3, alpha=0.5)
            bar = figure.colorbar(contour, ax=ax, format=ticker.FormatStrFormatter("%.3g"))
            bar.set_label(f"{info['name']} [{info['unit']}] ({better})")
        else:
            ax.text(0.5, 0.5, "no computed cells" if not finite.any() else "constant surface",
                    transform=ax.transAxes, ha="center", va="center")
        middle = (landscape.a[0] + landscape.a[-1]) / 2.0
        for k, (x, y) in enumerate(coords):
            ax.plot([x], [y], MARKERS[k % len(MARKERS)], color="white", mec="black", ms=8, mew=1.2)
            right = x > middle  # labels of points right of the centre go to their left, inside the axes
            ax.annotate(labels[k] if k < len(labels) else f"θ{k}", (x, y), textcoords="offset points",
                        xytext=(-6 if right else 6, 6), ha="right" if right else "left", fontsize=8, color="black",
                        bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.7))
        ax.set_xlim(landscape.a[0], landscape.a[-1])
        ax.set_ylim(landscape.b[0], landscape.b[-1])
        if landscape.plane.get("axes") == "orthonormal":
            ax.set_aspect("equal", adjustable="box")
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
    done = int(landscape.done.sum())
    note = "" if landscape.complete else f" ({done}/{landscape.done.size} cells computed)"
    figure.suptitle((title or "Loss landscape") + note, fontsize=11)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format=format)
    return buffer.getvalue()


def plot(source: str | Path | Landscape, out: str | Path | None = None, *, pdf: bool = False,
         levels: int = 20, title: str | None = None) -> list[Path]:
    """Draw a landscape from an output directory, an npz file or a :class:`Landscape`.

    ``out``: the PNG to write (default: ``landscape.png`` beside the npz); ``pdf`` also writes the
    ``.pdf`` of the same name.  Returns the written paths.
    """
    if isinstance(source, Landscape):
        landscape = source
        if out is None:
            raise ValueError("out is required when plotting a Landscape object")
    else:
        path = Path(source)
        npz = path / LANDSCAPE_FILE if path.is_dir() else path
        landscape = Landscape.load(npz)
        if out is None:
            out = npz.with_suffix(".png")
    out = Path(out)
    png = out if out.suffix == ".png" else out.with_suffix(".png")
    written = [png]
    atomic_write_bytes(png, render(landscape, levels=levels, format="png", title=title))
    if pdf:
        atomic_write_bytes(png.with_suffix(".pdf"), render(landscape, levels=levels, format="pdf", title=title))
        written.append(png.with_suffix(".pdf"))
    return written
