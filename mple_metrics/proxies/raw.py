"""``raw``: MLE on the dataset's own targets, Q(T|X) = P_data (the paper's vanilla NAT)."""

from __future__ import annotations

from .target import TargetProxy


class RawTarget(TargetProxy):
    """T is the reference as given; the loss is the (label-smoothed) NLL at the gold length."""

    name = "raw"
