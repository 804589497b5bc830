"""Runs every benchmarks/bench_*.py in its own process (2 CPU threads each); a benchmark that fails
(a wrong result, or a missed speed target) is reported and the others still run; the exit status is
1 if any failed.

Accuracy studies that train models for tens of minutes (:data:`LONG`) run only with ``--all``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LONG = {"bench_tc_accuracy.py"}


def main() -> int:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    run_long = "--all" in sys.argv[1:]
    passed = [a for a in sys.argv[1:] if a != "--all"]
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        if script.name in LONG and not run_long:
            print(f"==> {script.name}: skipped (takes tens of minutes; run_all.py --all)", flush=True)
            continue
        print(f"==> {script.name}", flush=True)
        result = subprocess.run([sys.executable, str(script), *passed], env=env)
        if result.returncode != 0:
            print(f"{script.name} failed with exit status {result.returncode}", file=sys.stderr)
            failed.append(script.name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
