"""legible proof on a real stack: the bundle's files, hashes, schema, redaction, baseline, and --post."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import requests

from legible.schemas import load as load_schema
from legible.schemas import registry

from ._gh_standin import install_gh
from .conftest import REPO, cli, cli_json, wait_until
from .test_stack import shop_repo

PLANTED = "sk_live_9f8e7d6c5b4a39281706"  # a secret planted in the environment and the logs
PROOF_TOML = f"""
[app]
command = "python app.py"
ready = {{ http = "/healthz" }}
metrics_path = "/metrics"
env = {{ PAYMENT_API_KEY = "{PLANTED}" }}

[services.leaky]
shell = true
command = '''echo "ERROR calling payments with Authorization: Bearer $LEAKY_TOKEN"
echo "level=error msg=retry api_key=$LEAKY_TOKEN"
sleep 300'''
env = {{ LEAKY_TOKEN = "{PLANTED}" }}

[checks.fast-start]
startup = {{ max = "30s" }}

[checks.slow-endpoint]
span = {{ name = "GET /slow", max = "1s" }}
"""


def slow_traces(root: Path) -> int:
    """How many traces with a ``GET /slow`` span the worktree's store holds."""
    code, doc = cli_json(root, "traces", "--since", "1h", "--name", "GET /slow")
    return int(doc["total"]) if code == 0 else 0


@pytest.fixture(scope="module")
def proofs(tmp_path_factory: pytest.TempPathFactory):
    """A shop stack with a planted secret; two proof runs, the second against the first as baseline."""
    base = tmp_path_factory.mktemp("proof")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_STATE_HOME", str(base / "xdg"))
        root = shop_repo(base / "shop", PROOF_TOML)
        code, doc = cli_json(root, "up", "--wait")
        assert code == 0, doc
        app = doc["endpoints"]["app"]
        requests.get(f"{app}/slow?ms=1200", timeout=10)
        requests.get(f"{app}/error", timeout=10)
        for _ in range(5):
            requests.get(f"{app}/", timeout=10)
        wait_until(lambda: slow_traces(root) == 1, 15, "the first GET /slow trace in the store")
        first = cli(root, "proof")
        requests.get(f"{app}/slow?ms=1500", timeout=10)
        wait_until(lambda: slow_traces(root) == 2, 15, "the second GET /slow trace in the store")
        code, second = cli_json(root, "proof", "--baseline", first.stdout.split("/proof/")[1].split("/")[0])
        yield root, first, code, second
        cli(root, "down")


def test_proof_prints_one_line_and_fails_like_its_checks(proofs) -> None:
    root, first, _, _ = proofs
    assert first.returncode == 1
    lines = first.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("proof FAIL: 1/2 checks in ")
    assert lines[0].endswith("/summary.md") and Path(lines[0].rsplit("-> ", 1)[1]).is_file()


def test_manifest_validates_and_its_hashes_match_the_files(proofs) -> None:
    root, _, code, manifest = proofs
    assert code == 1
    jsonschema.validate(manifest, load_schema("proof"), registry=registry())
    bundle = root / ".legible" / "proof" / manifest["run_id"]
    on_disk = json.loads((bundle / "manifest.json").read_text())
    assert on_disk["files"] == manifest["files"]
    names = {f["path"] for f in manifest["files"]}
    assert {"summary.md", "checks.json", "charts/requests.png", "charts/latency.png", "charts/errors.png"} <= names
    for f in manifest["files"]:
        data = (bundle / f["path"]).read_bytes()
        assert len(data) == f["bytes"] and hashlib.sha256(data).hexdigest() == f["sha256"]
        if f["path"].endswith(".png"):
            assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert manifest["branch"] == "main" and len(manifest["commit"]) == 40


def test_summary_is_a_readable_pr_comment_with_the_verdict_first(proofs) -> None:
    root, _, _, manifest = proofs
    text = (root / ".legible" / "proof" / manifest["run_id"] / "summary.md").read_text()
    assert len(text.encode()) < 60_000
    lines = text.splitlines()
    assert lines[0] == "<!-- legible-proof -->"
    assert lines[1] == "## ❌ legible proof: FAIL: 1/2 checks passed"
    assert "| ❌ | slow-endpoint |" in text and "`legible trace " in text
    assert "### Key figures" in text and "| requests served |" in text
    assert "### Slowest spans" in text and "| GET /slow |" in text
    assert "### Error log groups" in text
    assert "![latency](charts/latency.png)" in text


def test_no_planted_secret_appears_anywhere_in_the_bundle(proofs) -> None:
    root, _, _, manifest = proofs
    bundle = root / ".legible" / "proof" / manifest["run_id"]
    assert "[REDACTED]" in (bundle / "summary.md").read_text()  # the leaky service's error lines are there
    for path in bundle.rglob("*"):
        if path.is_file():
            assert PLANTED.encode() not in path.read_bytes(), path
    assert PLANTED not in json.dumps(manifest)


def test_baseline_puts_each_figure_beside_the_earlier_run(proofs) -> None:
    root, _, _, manifest = proofs
    base = manifest["baseline"]
    assert base is not None and base["branch"] == "main"
    rows = {r["key"]: r for r in base["figures"]}
    slow = rows["check.slow-endpoint"]
    assert slow["baseline"] == pytest.approx(1200, abs=150) and slow["value"] == pytest.approx(1500, abs=150)
    assert slow["change_pct"] == pytest.approx((slow["value"] - slow["baseline"]) / slow["baseline"] * 100, abs=0.1)
    text = (root / ".legible" / "proof" / manifest["run_id"] / "summary.md").read_text()
    assert "| figure | this run | trend | baseline | change |" in text
    assert "| check.slow-endpoint |" in text and "Baseline: run `" in text


def test_post_adds_then_updates_one_sticky_comment(proofs, tmp_path: Path) -> None:
    root, _, _, _ = proofs
    bindir = tmp_path / "bin"
    install_gh(bindir)  # GitHub cannot be reached from here: a stand-in gh (tests/_gh_standin.py)
    db = tmp_path / "gh.json"
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "FAKE_GH_DB": str(db), "PYTHONPATH": str(REPO)}

    def proof(*extra: str, auth: str = "1") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "legible.cli.main", "proof", "--post", *extra],
            cwd=root,
            text=True,
            capture_output=True,
            env={**env, "FAKE_GH_AUTH": auth},
            timeout=120,
        )

    res = proof(auth="0")
    assert res.returncode == 3 and res.stderr.splitlines()[0] == "error: gh is not authenticated"
    assert "gh auth login" in res.stderr
    first = proof()
    assert first.stdout.rstrip().endswith("; created comment on PR #7"), first.stdout + first.stderr
    second = proof("--pr", "7", "--media-base", "https://artifacts.example/run-42/")
    assert second.stdout.rstrip().endswith("; updated comment on PR #7")
    comments = json.loads(db.read_text())["comments"]
    assert len(comments) == 1 and comments[0]["body"].startswith("<!-- legible-proof -->\n## ")
    assert "![latency](https://artifacts.example/run-42/charts/latency.png)" in comments[0]["body"]
    no_gh = {**env, "PATH": "/usr/bin:/bin"}
    res = subprocess.run(
        [sys.executable, "-m", "legible.cli.main", "proof", "--post"],
        cwd=root,
        text=True,
        capture_output=True,
        env=no_gh,
        timeout=120,
    )
    assert res.returncode == 3 and "gh (the GitHub CLI) is not installed" in res.stderr
