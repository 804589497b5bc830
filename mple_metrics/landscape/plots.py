"""Figure 1-style pictures of a :class:`~mple_metrics.landscape.grid.Landscape`: one panel per
metric side by side, filled contours over (a, b) (a curve for a line), the checkpoints marked and
labelled with their values (at their own weights, when computed), a colour bar with the metric's
unit, each metric's better direction in its title, and the data, split and sentence count in the
figure's title.  Cells not yet computed are left blank (NaN is masked, never drawn as a value).

Orthonormal axes are drawn with equal scales; the figure's size follows the coordinates' extents,
so a tall or flat plane gives panels of that shape rather than thin strips in a fixed frame.

Drawn on matplotlib's Agg canvas without touching the global backend; files are written atomically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic_write import atomic_write_bytes
from .grid import LANDSCAPE_FILE, Landscape

IMAGE_FORMATS: tuple[str, ...] = ("png", "pdf")
MARKERS = ("o", "s", "^", "D", "v")
# Panel geometry in inches: the plot box's longer side, its shortest allowed side, and the room
# around it for tick labels, axis labels, the colour bar and the titles.
BOX_LONG, BOX_SHORT_MIN = 4.4, 1.0
PAD_LEFT, PAD_RIGHT, PAD_BOTTOM, PAD_TOP = 0.9, 1.45, 0.65, 1.0
COLORBAR_GAP, COLORBAR_WIDTH = 0.12, 0.16
MIN_SLOT, MIN_WIDTH = 4.0, 8.0


def _figure(size: tuple[float, float]):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=110)
    FigureCanvasAgg(figure)
    return figure


def _axis_labels(landscape: Landscape) -> tuple[str, str]:
    axes = landscape.plane.get("axes")
    if axes == "orthonormal":
        return "a: distance along u = θ1 − θ0 (weight-space L2)", "b: distance along v\n(Gram–Schmidt of θ2 − θ0)"
    if axes == "random":
        return "a: random direction 1 (filter-normalised)", "b: random direction 2 (filter-normalised)"
    return "a: steps of θ1 − θ0", "b: steps of θ2 − θ0"


def box_size(landscape: Landscape) -> tuple[float, float]:
    """(width, height) in inches of a panel's plot box: the coordinates' aspect for orthonormal axes
    (equal scales), a fixed 4:3.4 box otherwise."""
    if landscape.plane.get("axes") != "orthonormal":
        return 4.0, 3.4
    span_a = float(landscape.a[-1] - landscape.a[0]) if len(landscape.a) > 1 else 0.0
    span_b = float(landscape.b[-1] - landscape.b[0]) if len(landscape.b) > 1 else 0.0
    if span_a <= 0 or span_b <= 0:
        return 4.0, 3.4
    ratio = span_b / span_a
    if ratio <= 1:
        return BOX_LONG, max(BOX_LONG * ratio, BOX_SHORT_MIN)
    return max(BOX_LONG / ratio, BOX_SHORT_MIN), BOX_LONG


def _widen(xlim: tuple[float, float], ylim: tuple[float, float],
           ratio: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """Limits of the same centres with height/width = ``ratio``, one range grown (none shrunk)."""
    span_x, span_y = xlim[1] - xlim[0], ylim[1] - ylim[0]
    if span_y < span_x * ratio:
        middle, half = (ylim[0] + ylim[1]) / 2.0, span_x * ratio / 2.0
        return xlim, (middle - half, middle + half)
    middle, half = (xlim[0] + xlim[1]) / 2.0, span_y / ratio / 2.0
    return (middle - half, middle + half), ylim


def _where(landscape: Landscape) -> str:
    """'data D, split S (N sentences)' from the landscape's record, or '' for files without it."""
    meta = landscape.meta
    data = meta.get("data", meta.get("settings", {}).get("data"))
    split = meta.get("split", meta.get("settings", {}).get("split"))
    parts = []
    if data:
        text = str(data)
        if len(text) > 48:  # a long path: its last two components
            text = "…/" + "/".join(Path(text).parts[-2:])
        parts.append(f"data {text}")
    if split:
        parts.append(f"{split} split" + (f" ({meta['sentences']} sentences)" if meta.get("sentences") else ""))
    return ", ".join(parts)


def _label(landscape: Landscape, k: int, name: str) -> str:
    labels = landscape.plane.get("labels", [])
    label = labels[k] if k < len(labels) else f"θ{k}"
    points = landscape.points.get(name)
    if points is not None and k < len(points) and np.isfinite(points[k]):
        label += f"\n{points[k]:.4g}"
    return label


def draw(landscape: Landscape, *, levels: int = 20, title: str | None = None):
    """The matplotlib Figure of the landscape (see the module docstring)."""
    from matplotlib import ticker

    if levels < 2:
        raise ValueError(f"levels must be >= 2, got {levels}")
    n = len(landscape.metrics)
    line = landscape.plane.get("kind") == "line" or len(landscape.b) == 1
    coords = np.asarray(landscape.plane.get("coordinates", []), dtype=np.float64).reshape(-1, 2)
    xlabel, ylabel = _axis_labels(landscape)
    done = int(landscape.done.sum())
    note = "" if landscape.complete else f" ({done}/{landscape.done.size} cells computed)"
    where = _where(landscape)
    if any(np.isfinite(v).any() for v in landscape.points.values()):
        where += ("; " if where else "") + "values marked at the checkpoints' own weights"
    heading = (title or "Loss landscape") + note + (f"\n{where}" if where else "")
    if line:
        figure = _figure((5.2 * n, 4.6))
        for i, info in enumerate(landscape.metrics):
            ax = figure.add_subplot(1, n, i + 1)
            values = landscape.values[info["name"]]
            finite = np.isfinite(values)
            better = "higher is better" if info.get("higher_is_better") else "lower is better"
            ax.set_title(f"{info['name']} [{info['unit']}] ({better})", fontsize=10)
            ax.plot(landscape.a, values[0], "-", color="C0", lw=1.5)
            ax.set_ylabel(f"{info['name']} [{info['unit']}]")
            for k, (x, _) in enumerate(coords):
                points = landscape.points.get(info["name"])
                if points is not None and k < len(points) and np.isfinite(points[k]):
                    y = points[k]  # the checkpoint's own value
                elif finite[0].any():
                    y = np.interp(x, landscape.a[finite[0]], values[0][finite[0]])
                else:
                    y = np.nan
                ax.plot([x], [y], MARKERS[k % len(MARKERS)], color="k", ms=7)
                ax.annotate(_label(landscape, k, info["name"]), (x, y), textcoords="offset points",
                            xytext=(5, 6), fontsize=8)
            ax.set_xlabel(xlabel)
            ax.grid(alpha=0.3)
        figure.suptitle(heading, fontsize=11)
        figure.tight_layout()
        return figure
    width, height = box_size(landscape)
    clamped = BOX_SHORT_MIN in (width, height)
    slot = max(PAD_LEFT + width + PAD_RIGHT, MIN_SLOT)  # room for the axis label under a narrow box
    size = (max(n * slot, MIN_WIDTH), PAD_BOTTOM + height + PAD_TOP)
    offset = (size[0] - n * slot) / 2.0  # panels centred when the title sets the width
    figure = _figure(size)
    equal = landscape.plane.get("axes") == "orthonormal"
    for i, info in enumerate(landscape.metrics):
        left = offset + i * slot + PAD_LEFT + (slot - PAD_LEFT - width - PAD_RIGHT) / 2.0
        ax = figure.add_axes((left / size[0], PAD_BOTTOM / size[1], width / size[0], height / size[1]))
        values = landscape.values[info["name"]]
        better = "higher is better" if info.get("higher_is_better") else "lower is better"
        ax.set_title(f"{info['name']} [{info['unit']}] ({better})", fontsize=10)
        finite = np.isfinite(values)
        if finite.sum() >= 1 and np.nanmax(values) > np.nanmin(values):
            low, high = float(np.nanmin(values)), float(np.nanmax(values))
            contour = ax.contourf(landscape.a, landscape.b, np.ma.masked_invalid(values),
                                  levels=np.linspace(low, high, levels + 1),
                                  cmap="viridis" if info.get("higher_is_better") else "viridis_r")
            ax.contour(landscape.a, landscape.b, np.ma.masked_invalid(values),
                       levels=np.linspace(low, high, levels + 1), colors="k", linewidths=0.3, alpha=0.5)
            cax = figure.add_axes(((left + width + COLORBAR_GAP) / size[0], PAD_BOTTOM / size[1],
                                   COLORBAR_WIDTH / size[0], height / size[1]))
            bar = figure.colorbar(contour, cax=cax, format=ticker.FormatStrFormatter("%.3g"))
            bar.set_label(f"{info['name']} [{info['unit']}]", fontsize=9)
            bar.ax.tick_params(labelsize=8)
        else:
            ax.text(0.5, 0.5, "no computed cells" if not finite.any() else "constant surface",
                    transform=ax.transAxes, ha="center", va="center")
        middle_a = (landscape.a[0] + landscape.a[-1]) / 2.0
        middle_b = (landscape.b[0] + landscape.b[-1]) / 2.0
        for k, (x, y) in enumerate(coords):
            ax.plot([x], [y], MARKERS[k % len(MARKERS)], color="white", mec="black", ms=8, mew=1.2)
            # labels go towards the centre, so they stay inside the axes
            right, top = x > middle_a, y > middle_b
            ax.annotate(_label(landscape, k, info["name"]), (x, y), textcoords="offset points",
                        xytext=(-6 if right else 6, -8 if top else 6), ha="right" if right else "left",
                        va="top" if top else "bottom", fontsize=8, color="black",
                        bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.7))
        xlim, ylim = (float(landscape.a[0]), float(landscape.a[-1])), (float(landscape.b[0]), float(landscape.b[-1]))
        if equal and clamped:  # a box at its shortest side: widen that side's range to keep equal scales
            xlim, ylim = _widen(xlim, ylim, height / width)
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        if equal:
            ax.set_aspect("equal", adjustable="box", anchor="SW")
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=8)
    figure.suptitle(heading, fontsize=11, y=1 - 0.08 / size[1], va="top")
    return figure


def render(landscape: Landscape, *, levels: int = 20, format: str = "png", title: str | None = None) -> bytes:
    """The picture's bytes (PNG or PDF)."""
    import io

    if format not in IMAGE_FORMATS:
        raise ValueError(f"format must be one of {IMAGE_FORMATS}, got {format!r}")
    figure = draw(landscape, levels=levels, title=title)
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
