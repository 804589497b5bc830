"""``mple demo``: the paper's main results in miniature on the bundled corpus (docs/reproduction.md).

:mod:`.plan` says what is trained and measured, :mod:`.corpus` prepares the data, :mod:`.steps`
calls the package's estimators, :mod:`.workspace` keeps each step's result, :mod:`.report` and
:mod:`.recipes` write the report and the commands behind every number, :mod:`.pipeline` runs it all.
"""

from __future__ import annotations

from .pipeline import run_demo
from .plan import MODES, DemoPlan, make_plan

__all__ = ["MODES", "DemoPlan", "make_plan", "run_demo"]
