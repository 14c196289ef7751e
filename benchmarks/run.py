"""Run every benchmark (`benchmarks/bench_*.py`) in turn and print their figures: `python benchmarks/run.py`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

if __name__ == "__main__":
    failed = 0
    for bench in sorted(Path(__file__).parent.glob("bench_*.py")):
        print(f"== {bench.name}", flush=True)
        failed += subprocess.run([sys.executable, str(bench), *sys.argv[1:]], check=False).returncode != 0
    sys.exit(1 if failed else 0)
