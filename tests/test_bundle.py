"""Proof bundles you can query: `legible proof` writes the run window's logs and spans as Parquet, and
`legible logs|traces|trace --from BUNDLE` answer from them after the worktree's stack is purged."""

from __future__ import annotations

import json
import re
import shutil
import urllib.request
from pathlib import Path

from .conftest import cli, cli_json
from .test_stack import SHOP_TOML, shop_repo, wait_until


def fold(lines: list[str]) -> list[str]:
    """The lines without their ages ("7s ago" then, "13s ago" now) and the column padding they shift."""
    return [re.sub(r"\s+", " ", re.sub(r"\d+(\.\d+)? ?[smhd] ago", "ago", ln)) for ln in lines]


#: A value the app logs that the bundle must not keep (an environment variable with a secret-looking name).
PLANTED = "sk_live_planted0123456789abcdef"


def test_logs_and_traces_answer_from_a_bundle_after_down_purge(tmp_path: Path, down_after: list[Path]) -> None:
    toml = SHOP_TOML.replace("[app]\n", f'[app]\nenv = {{ PAYMENT_API_KEY = "{PLANTED}" }}\n')
    root = shop_repo(tmp_path / "shop", toml)
    down_after.append(root)
    code, doc = cli_json(root, "up", "--wait", "--timeout", "60")
    assert code == 0, doc
    app = doc["endpoints"]["app"]
    for path in ("/", "/error", f"/products/1?key={PLANTED}"):
        try:
            urllib.request.urlopen(app + path, timeout=10).read()  # noqa: S310 - loopback
        except OSError:
            pass  # /error answers 500
    trace_id = wait_until(
        lambda: (cli_json(root, "traces", "--errors")[1].get("traces") or [{}])[0].get("trace_id"), timeout=30
    )
    code, manifest = cli_json(root, "proof", "--no-record", timeout=120)
    assert code == 0, manifest
    sig = manifest["signals"]
    assert sig["logs"]["rows"] > 0 and sig["spans"]["rows"] > 0, sig
    assert sig["logs"]["rows"] == sig["logs"]["total"]  # nothing left out under the cap
    listed = {f["path"] for f in manifest["files"]}
    assert {"signals/logs.parquet", "signals/spans.parquet"} <= listed
    live_errors = cli(root, "logs", "--level", "error", "--since", "all").stdout
    live_trace = cli(root, "trace", trace_id).stdout

    # the orchestrator keeps the bundle (an artifact store); the worktree's stack and data are then purged
    artifact = tmp_path / "artifact"
    shutil.copytree(root / ".legible" / "proof" / manifest["run_id"], artifact)
    assert cli(root, "down", "--purge").returncode == 0
    assert not (root / ".legible").exists()
    for f in artifact.joinpath("signals").iterdir():
        assert PLANTED.encode() not in f.read_bytes(), f  # redacted like the rest of the bundle

    reviewer = tmp_path / "reviewer"  # another machine: not inside any git worktree
    reviewer.mkdir()
    logs = cli(reviewer, "logs", "--from", str(artifact), "--level", "error")
    assert logs.returncode == 0, logs.stderr
    assert trace_id in logs.stdout
    assert fold(logs.stdout.splitlines()[2:]) == fold(live_errors.splitlines()[2:])  # the live store's groups
    traces = cli(reviewer, "traces", "--from", str(artifact), "--errors")
    assert traces.returncode == 0, traces.stderr
    assert "GET /error" in traces.stdout and trace_id[:8] in traces.stdout
    tree = cli(reviewer, "trace", trace_id[:12], "--from", str(artifact))
    assert tree.returncode == 0, tree.stderr
    assert fold(tree.stdout.splitlines()) == fold(live_trace.splitlines())  # the same tree, its logs too
    raw = cli(reviewer, "logs", "--from", str(artifact), "--raw", "--grep", "products", "--json")
    assert PLANTED not in raw.stdout and json.loads(raw.stdout)["schema"] == "legible.logs/v1"

    # checks over the bundle (config from the worktree; windows end when the run ended)
    res = cli(root, "check", "--from", str(artifact), "--logs", "level=error,max_count=0", "--span", "max=30s")
    assert res.returncode == 1, res.stdout + res.stderr
    out = res.stdout.splitlines()
    assert out[0].startswith("FAIL: 1 of 2 checks passed, 1 failed")
    assert re.match(r"FAIL +logs-1 +[1-9]\d* lines at error or above in the last 15m", out[1]), out
    assert re.match(r"PASS +span-1 ", out[2]), out
    res = cli(root, "check", "--from", str(artifact), "--startup", "5s")
    assert res.returncode == 1 and "could not be measured" in res.stdout, res.stdout  # needs the live stack

    bad = cli(reviewer, "logs", "--from", str(reviewer))
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "hint: " in bad.stderr
