"""Loss landscapes between checkpoints (Figure 1 of Huang et al. 2022): a plane (or line, or two
random filter-normalised directions) in weight space, metrics (NLL, BLEU, L_NAT) on a grid over it,
each checkpoint evaluated at its own weights, resumable and split across torchrun ranks, and the
contour plots.  See docs/landscape.md."""

from __future__ import annotations

from .grid import LANDSCAPE_FILE, Landscape, Metric, evaluate_grid, grid_axes, parse_grid
from .metrics import L_NAT_PROXIES, METRIC_NAMES, EvaluationSet, landscape_metrics, parse_metrics
from .pipeline import LandscapeSettings, format_table, run_landscape, summary
from .plane import AXES, Plane, check_compatible
from .plots import draw, plot, render

__all__ = [
    "AXES", "LANDSCAPE_FILE", "L_NAT_PROXIES", "METRIC_NAMES", "EvaluationSet", "Landscape",
    "LandscapeSettings", "Metric", "Plane", "check_compatible", "draw", "evaluate_grid", "format_table",
    "grid_axes", "landscape_metrics", "parse_grid", "parse_metrics", "plot", "render", "run_landscape",
    "summary",
]
