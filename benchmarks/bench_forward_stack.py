"""What one worktree's stack sends to the shared engines (issue 13, docs/scale.md).

    python benchmarks/bench_forward_stack.py [--seconds 60] [--rps 20]

Boots the example shop with ``legible up`` in a throwaway repository, forwarding (through
``LEGIBLE_FORWARD_*``) to a second VictoriaMetrics and a second collector on loopback; sends ``--rps``
requests per second over a mix of routes (``/``, ``/error``, ``/slow?ms=20``) for ``--seconds``; then
reports per second: spans and log records forwarded and their bytes (the collector's queue, gzipped
protobuf), metric samples and bytes vmagent sent (``vmagent_remotewrite_rows_pushed_after_relabel_total``,
``vmagent_remotewrite_bytes_sent_total``, snappy-compressed remote write), and the number of series one
stack adds to the shared VictoriaMetrics.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_forward import collector, vm  # noqa: E402


def legible(root: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "legible.cli.main", *args],
        cwd=root,
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )


def vmagent_counter(port: int, name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rps", type=float, default=20.0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-forward-stack-"))
    shared_vm, shared_vm_url, _ = vm(tmp / "shared-vm")
    shared_col, shared_col_url = collector(tmp / "shared", "shared", [])
    root = tmp / "shop"
    root.mkdir()
    src = REPO / "examples" / "shop"
    for f in src.rglob("*"):
        if f.is_file() and "__pycache__" not in f.parts and f.name != "legible.toml":
            (root / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            (root / f.relative_to(src)).write_bytes(f.read_bytes())
    (root / "legible.toml").write_text('[app]\ncommand = "python app.py"\nready = { http = "/healthz" }\n')
    for cmd in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["-c", "user.email=b@x", "-c", "user.name=b", "commit", "-qm", "x"],
    ):
        subprocess.run(["git", *cmd], cwd=root, check=True, capture_output=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "XDG_STATE_HOME": str(tmp / "xdg-state"),
        "LEGIBLE_FORWARD_REMOTE_WRITE": f"{shared_vm_url}/api/v1/write",
        "LEGIBLE_FORWARD_OTLP": shared_col_url,
    }
    shared_vm.start()
    shared_col.start()
    try:
        up = legible(root, "up", "--wait", "--json", env=env)
        doc = json.loads(up.stdout)
        assert up.returncode == 0, doc
        app = doc["endpoints"]["app"]
        plan = json.loads((root / ".legible" / "plan.json").read_text())
        agent_port = plan["ports"]["vmagent"]
        token = (root / ".legible" / "collector.token").read_text().strip()
        col = f"http://127.0.0.1:{plan['ports']['otlp-http']}"

        def fwd() -> dict:
            return requests.get(f"{col}/status", headers={"Authorization": f"Bearer {token}"}, timeout=5).json()[
                "forward"
            ]

        time.sleep(5)  # let the first scrapes and pushes settle before measuring
        f0, r0 = fwd(), vmagent_counter(agent_port, "vmagent_remotewrite_rows_pushed_after_relabel_total")
        b0 = vmagent_counter(agent_port, "vmagent_remotewrite_bytes_sent_total")
        t0 = time.monotonic()
        routes = ["/", "/", "/error", "/slow?ms=20"]
        n = 0
        while time.monotonic() - t0 < args.seconds:
            requests.get(app + routes[n % len(routes)], timeout=10)
            n += 1
            time.sleep(max(0.0, t0 + n / args.rps - time.monotonic()))
        time.sleep(3)
        took = time.monotonic() - t0
        f1, r1 = fwd(), vmagent_counter(agent_port, "vmagent_remotewrite_rows_pushed_after_relabel_total")
        b1 = vmagent_counter(agent_port, "vmagent_remotewrite_bytes_sent_total")
        key = doc["key"]
        series = requests.get(
            f"{shared_vm_url}/api/v1/query", params={"query": f'count({{worktree="{key}"}})'}, timeout=5
        ).json()["data"]["result"]
        spans = f1["sent"]["traces"] - f0["sent"]["traces"]
        logs = f1["sent"]["logs"] - f0["sent"]["logs"]
        print(
            f"one stack, {n} requests in {took:.0f} s ({n / took:.1f} req/s, routes {', '.join(sorted(set(routes)))})"
        )
        print(
            f"OTLP to the shared collector: {spans / took:.1f} spans/s, {logs / took:.1f} log records/s, "
            f"{(f1['sent_bytes'] - f0['sent_bytes']) / took / 1024:.1f} KiB/s (protobuf, gzip)"
        )
        print(
            f"remote write to the shared VictoriaMetrics: {(r1 - r0) / took:.0f} samples/s, "
            f"{(b1 - b0) / took / 1024:.1f} KiB/s (snappy),"
            f" series from this stack {series[0]['value'][1] if series else 0}"
        )
        return 0
    finally:
        legible(root, "down", "--purge", env=env)
        shared_col.stop()
        shared_vm.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
