"""The package's floors (DESIGN.md §4): a module imports only from its own floor or below.

Read from the source with ``ast`` (every ``from ..x import`` and ``import mple_metrics.x``, at any
depth, including imports deferred into functions), so a lazy import cannot hide a violation."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mple_metrics"

FLOORS: dict[str, int] = {
    "atomic_write": 1, "_extension": 1, "testing": 1,
    "ops": 2, "data": 2,
    "metrics": 3, "models": 3, "losses": 3,
    "proxies": 4, "decode": 4,
    "train": 5,
    "estimators": 6, "landscape": 6,
    "demo": 7, "commands": 7, "cli": 7, "__init__": 7, "__main__": 7,
}


def _top(module_path: Path) -> str:
    parts = module_path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def _imported_tops(path: Path, package: Path = PACKAGE) -> set[str]:
    """The top-level subpackages of mple_metrics that ``path`` (inside ``package``) imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package_parts = path.relative_to(package).parent.parts
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package_parts[:len(package_parts) - (node.level - 1)]) if node.level > 1 \
                    else list(package_parts)
                if node.level - 1 > len(package_parts):
                    continue
                target = base + (node.module.split(".") if node.module else [])
                if target:
                    found.add(target[0])
                else:  # "from .. import x" at the package root names subpackages
                    found.update(alias.name for alias in node.names)
            elif node.module and node.module.split(".")[0] == "mple_metrics":
                rest = node.module.split(".")[1:]
                found.update(rest[:1] or [alias.name for alias in node.names])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "mple_metrics" and len(parts) > 1:
                    found.add(parts[1])
    return {name for name in found if name in FLOORS}


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_top_level_module_has_a_floor():
    tops = {_top(p) for p in MODULES}
    assert tops <= set(FLOORS), f"modules without a floor in DESIGN.md §4: {sorted(tops - set(FLOORS))}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_stay_on_or_below_the_module_floor(path):
    own = FLOORS[_top(path)]
    upward = {name: FLOORS[name] for name in _imported_tops(path) if FLOORS[name] > own}
    assert not upward, (f"{path.relative_to(PACKAGE)} (floor {own}) imports from higher floors: "
                        f"{upward}")


def test_the_checker_sees_an_upward_import(tmp_path):
    """The check can fail: a decode module importing train (also inside a function) is reported."""
    probe = tmp_path / "mple_metrics" / "decode" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("from ..train.checkpoint import load_model\n\n\ndef f():\n"
                     "    from ..estimators import x\n    import mple_metrics.landscape\n")
    tops = _imported_tops(probe, tmp_path / "mple_metrics")
    assert tops == {"train", "estimators", "landscape"}
    assert max(FLOORS[t] for t in tops) > FLOORS["decode"]
