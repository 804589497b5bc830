"""Runs every benchmarks/bench_*.py in its own process (2 CPU threads each) and stops on failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"==> {script.name}", flush=True)
        result = subprocess.run([sys.executable, str(script), *sys.argv[1:]], env=env)
        if result.returncode != 0:
            print(f"{script.name} failed with exit status {result.returncode}", file=sys.stderr)
            return result.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
