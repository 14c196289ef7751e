"""Run every benchmark (`benchmarks/bench_*.py`) in turn, then print one table of all their figures.

    python benchmarks/run.py [bench_stack bench_checks ...]   # `make bench` runs them all

Each bench prints its figures as it goes and records them (``benchmarks/_report.py``); a bench that fails
does not stop the others and is named at the end (exit 1). The venv's ``bin`` is put first on PATH so the
example app's ``python app.py`` gets the venv's packages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import RESULTS_ENV, fmt, venv_env

HERE = Path(__file__).resolve().parent


def table(rows: list[dict]) -> str:
    """The summary: name, median, baseline, ratio, target, one row per figure."""
    head = ["bench", "figure", "median", "baseline", "ratio", "target"]
    body = [
        [
            r["bench"],
            r["name"],
            fmt(r["median"], r["unit"]),
            "" if r["baseline"] is None else f"{fmt(r['baseline'], r['unit'])} ({r['baseline_name']})",
            "" if r["ratio"] is None else f"{r['ratio']:.2f}x",
            r["target"],
        ]
        for r in rows
    ]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in [head, *body]
    )


def main(argv: list[str]) -> int:
    """Run the named benches (default: all), print the summary table; return 1 if any bench failed."""
    wanted = set(argv)
    benches = [b for b in sorted(HERE.glob("bench_*.py")) if not wanted or b.stem in wanted]
    rows: list[dict] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="legible-bench-run-") as tmp:
        for bench in benches:
            out = Path(tmp) / f"{bench.stem}.jsonl"
            print(f"== {bench.name}", flush=True)
            t0 = time.monotonic()
            code = subprocess.run(
                [sys.executable, str(bench)], env=venv_env({RESULTS_ENV: str(out)}), check=False
            ).returncode
            print(f"== {bench.name}: {'ok' if code == 0 else f'FAILED (exit {code})'} in {time.monotonic() - t0:.0f} s")
            if code != 0:
                failed.append(bench.stem)
            if out.exists():
                rows += [{"bench": bench.stem, **json.loads(ln)} for ln in out.read_text().splitlines() if ln]
    print(f"\nsummary: {len(rows)} figures from {len(benches)} benches (medians; ratio = median / baseline)")
    print(table(rows))
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    os.chdir(HERE.parent)
    sys.exit(main(sys.argv[1:]))
