"""Checks and proof benchmark (issue 5): `legible check` with 10 checks, and `legible proof` on the example app.

Run: `python benchmarks/bench_checks.py [--runs N]`. Baseline measured in the same run: `legible status`
(command start plus reading state). Targets: `legible check` with 10 checks median < 1 s; `legible proof`
on the example app with its journeys recorded <= 10 s (issue 12; baseline: both journeys run unrecorded
through the CLI in the same run), with the breakdown from the manifest's `timings_ms` (journeys, checks,
figures, evidence, charts, videos: the wait for the last encoding, which runs beside the other phases).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _report import record, venv_env

REPO = Path(__file__).resolve().parent.parent
CHECKS = """
[checks.c1]
startup = { max = "5s" }
[checks.c2]
span = { name = "GET /", max = "2s" }
[checks.c3]
span = { name = "GET /slow", percentile = 99, max = "3s" }
[checks.c4]
span = { service = "app", max = "5s", since = "5m" }
[checks.c5]
logs = { level = "error", service = "browser", max_count = 0 }
[checks.c6]
logs = { level = "fatal", max_count = 0 }
[checks.c7]
promql = { query = "sum(legible_service_up)", op = ">=", threshold = 3 }
[checks.c8]
promql = { query = "sum(increase(legible_spans_total[5m]))", op = ">", threshold = 0 }
[checks.c9]
span = { journey = "checkout", max = "2s" }
[checks.c10]
span = { journey = "report", max = "3s" }
"""


def legible(cwd: Path, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-m", "legible.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=venv_env(),
        check=False,
    )
    return time.perf_counter() - t0, res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="legible-bench-checks-"))
    os.environ["XDG_STATE_HOME"] = str(base / "xdg")
    shop = base / "shop"
    shutil.copytree(REPO / "examples" / "shop", shop, ignore=shutil.ignore_patterns("__pycache__"))
    toml = (shop / "legible.toml").read_text()
    toml = toml[: toml.index("[checks.")] + CHECKS + "\n[stack]\nbrowser = true\n"
    (shop / "legible.toml").write_text(toml)
    for cmd in (["init", "-q"], ["add", "-A"], ["-c", "user.email=b@x", "-c", "user.name=b", "commit", "-qm", "x"]):
        subprocess.run(["git", *cmd], cwd=shop, check=True, capture_output=True)
    try:
        _, res = legible(shop, "up", "--wait", "--json")
        if res.returncode != 0:
            raise SystemExit(f"legible up failed (exit {res.returncode}): {res.stdout}{res.stderr}")
        app = json.loads(res.stdout)["endpoints"]["app"]
        for path in ("/", "/slow?ms=300", "/error"):
            urllib.request.urlopen(app + path).read() if path != "/error" else None
        legible(shop, "journey", "run", "checkout")
        legible(shop, "journey", "run", "report")
        status = [legible(shop, "status")[0] for _ in range(args.runs)]
        checks = []
        for _ in range(args.runs):
            took, res = legible(shop, "check")
            checks.append(took)
        print(f"runs={args.runs} (medians)")
        verdict = res.stdout.splitlines()[0] if res.stdout else res.stderr.strip()
        record(
            "legible check, 10 checks",
            statistics.median(checks) * 1000,
            "ms",
            baseline=statistics.median(status) * 1000,
            baseline_name="legible status",
            target="< 1000 ms",
            note=f"last verdict: {verdict}",
        )
        plain = [
            legible(shop, "journey", "run", "checkout")[0] + legible(shop, "journey", "run", "report")[0]
            for _ in range(min(args.runs, 3))
        ]
        proofs = []
        for _ in range(min(args.runs, 3)):
            took, res = legible(shop, "proof", "--json")
            if not res.stdout.startswith("{"):
                raise SystemExit(f"legible proof failed (exit {res.returncode}): {res.stdout}{res.stderr}")
            proofs.append(took)
        doc = json.loads(res.stdout)
        t = doc["timings_ms"]
        record(
            "legible proof, journeys recorded",
            statistics.median(proofs),
            "s",
            baseline=statistics.median(plain),
            baseline_name="both journeys unrecorded (legible journey run x2)",
            target="<= 10 s",
            note="last breakdown: " + ", ".join(f"{k} {v / 1000:.1f} s" for k, v in t.items()),
        )
        for name, j in doc["journeys"].items():
            rec = j.get("recording") or {}
            print(
                f"  {name}: judged {j['duration_ms']:.0f} ms; recorded run {rec.get('duration_ms') or 0:.0f} ms, "
                f"of which the recording added {rec.get('recording_ms') or 0:.0f} ms"
            )
        print(f"proof bundle: {len(doc['files'])} files, {sum(f['bytes'] for f in doc['files']) / 1024:.0f} KB")
    finally:
        legible(shop, "down")
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
