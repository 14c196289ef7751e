"""What every benchmark shares: the venv's ``bin`` first on PATH, and one way to report a figure.

A figure is printed as one line and, when ``benchmarks/run.py`` runs the bench, appended as one JSON object
per line to the file named by ``LEGIBLE_BENCH_RESULTS``; ``run.py`` prints them all as one summary table.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS_ENV = "LEGIBLE_BENCH_RESULTS"


def venv_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Put this interpreter's ``bin`` (the venv's, under ``make bench``) first on PATH, here and for children.

    The example app's ``legible.toml`` runs ``python app.py``: without this, a fresh clone's benchmarks start
    the app on the system Python, which lacks the venv's packages (Flask, OpenTelemetry).

    Args:
        extra: more variables for the returned environment (not set in this process).

    Returns:
        A copy of ``os.environ`` with ``PYTHONPATH`` set to the repository and ``extra`` applied.

    """
    bindir = str(Path(sys.executable).parent)  # not resolved: a venv's python is a symlink to the system one
    path = os.environ.get("PATH", "")
    if path.split(os.pathsep)[0] != bindir:
        os.environ["PATH"] = bindir + os.pathsep + path
    return {**os.environ, "PYTHONPATH": str(REPO), **(extra or {})}


def record(
    name: str,
    median: float,
    unit: str,
    *,
    baseline: float | None = None,
    baseline_name: str = "",
    target: str = "",
    note: str = "",
) -> None:
    """Print one figure and append it to the run's results file (``$LEGIBLE_BENCH_RESULTS``), if any.

    Args:
        name: what was measured, e.g. ``up --wait, example app``.
        median: the median over the runs, in ``unit``.
        unit: ``ms``, ``s``, ``MB``, ``lines/s``, ...
        baseline: the same-run baseline in the same unit, if any; the ratio is ``median / baseline``.
        baseline_name: what the baseline is, e.g. ``python -c pass``.
        target: the target as text, e.g. ``< 1000 ms``.
        note: anything else worth one phrase.

    """
    ratio = median / baseline if baseline else None
    row = {
        "name": name,
        "median": round(median, 3),
        "unit": unit,
        "baseline": None if baseline is None else round(baseline, 3),
        "baseline_name": baseline_name,
        "ratio": None if ratio is None else round(ratio, 2),
        "target": target,
        "note": note,
    }
    parts = [f"{name:40} {fmt(median, unit):>14}"]
    if baseline is not None:
        parts.append(f"baseline {fmt(baseline, unit)} ({baseline_name}) ratio {ratio:.2f}x")
    if target:
        parts.append(f"target {target}")
    if note:
        parts.append(note)
    print("  ".join(parts), flush=True)
    out = os.environ.get(RESULTS_ENV)
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(row) + "\n")


def fmt(value: float, unit: str) -> str:
    """``value`` with ``unit``: thousands separators for rates and counts, one decimal for small values."""
    if abs(value) >= 1000:
        return f"{value:,.0f} {unit}"
    return f"{value:.1f} {unit}" if abs(value) < 100 else f"{value:.0f} {unit}"
