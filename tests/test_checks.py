"""legible check against a real stack running the example shop: verdicts, figures, evidence, exit codes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import requests

from legible.schemas import load as load_schema

from .conftest import cli, cli_json, wait_until
from .test_stack import SHOP_TOML, shop_repo

CHECKS_TOML = """
[checks.fast-start]
startup = { max = "30s" }

[checks.slow-endpoint]
span = { name = "GET /slow", max = "1s" }

[checks.no-errors]
logs = { level = "error", max_count = 0, since = "5m" }
"""


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory):
    """One running shop stack for the module, with a slow request (1.2 s) and an error already served."""
    base = tmp_path_factory.mktemp("checks")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_STATE_HOME", str(base / "xdg"))
        root = shop_repo(base / "shop", SHOP_TOML + CHECKS_TOML)
        try:
            code, doc = cli_json(root, "up", "--wait")
            assert code == 0, doc
            app = doc["endpoints"]["app"]
            requests.get(f"{app}/slow?ms=1200", timeout=10)
            requests.get(f"{app}/error", timeout=10)
            requests.get(f"{app}/", timeout=10)
            wait_until(
                lambda: "GET /slow" in cli(root, "traces", "--since", "5m").stdout,
                15,
                "the GET /slow span in the store",
            )
            # the traceback is one multi-line record, stored once the tailer sees it end (a line after it, or a pause)
            wait_until(
                lambda: (
                    not cli(root, "logs", "--level", "error", "--grep", "payment provider rejected").stdout.startswith(
                        "0 lines"
                    )
                ),
                15,
                "the /error traceback in the store",
            )
            yield root, doc
        finally:  # also when the stack never got its signals: nothing left running
            cli(root, "down")


def test_configured_checks_give_one_line_each_failures_first_with_evidence(shop) -> None:
    root, _ = shop
    res = cli(root, "check")
    assert res.returncode == 1
    lines = res.stdout.splitlines()
    assert lines[0].startswith("FAIL: 1 of 3 checks passed, 2 failed")
    assert lines[1].startswith("FAIL  slow-endpoint") or lines[1].startswith("FAIL  no-errors")
    slow = next(ln for ln in lines if "slow-endpoint" in ln)
    assert re.search(r"'GET /slow' \[app\] 1\.2\d* s > 1 s", slow) and "-> legible trace " in slow
    trace_id = slow.rsplit("legible trace ", 1)[1]
    tree = cli(root, "trace", trace_id)
    assert tree.returncode == 0 and "GET /slow" in tree.stdout
    errors = next(ln for ln in lines if "no-errors" in ln)
    assert "-> legible logs --level error --since 5m" in errors
    assert next(ln for ln in lines if "fast-start" in ln).startswith("PASS  fast-start     app ready in ")
    assert len(lines) == 4


def test_loosening_the_budget_makes_the_span_check_pass(shop) -> None:
    root, _ = shop
    res = cli(root, "check", "--span", "name=GET /slow,max=2s")
    assert res.returncode == 0, res.stdout
    assert re.match(
        r"PASS  span-1  slowest of 1 spans: 'GET /slow' \[app\] 1\.2\d* s <= 2 s", res.stdout.splitlines()[1]
    )
    res = cli(root, "check", "--span", "name=GET /slow,percentile=99,max=2s")
    assert res.returncode == 0 and re.search(r"p99 of 1 spans 1\.2\d* s <= 2 s", res.stdout)


def test_named_subset_promql_and_json_that_validates_against_the_shipped_schema(shop, tmp_path: Path) -> None:
    root, _ = shop
    out = tmp_path / "check.json"
    code, doc = cli_json(root, "check", "fast-start", "--promql", "sum(legible_service_up) >= 3", "--out", str(out))
    assert code == 0, doc
    schema = load_schema("check")
    jsonschema.validate(doc, schema)
    assert json.loads(out.read_text()) == doc
    assert [c["name"] for c in doc["checks"]] == ["fast-start", "promql-1"]
    assert doc["checks"][1]["measured"] == 3
    code, doc = cli_json(root, "check", "--promql", "sum(rate(no_such_metric[1m])) < 1")
    assert (
        code == 1 and doc["checks"][0]["status"] == "error" and doc["checks"][0]["summary"] == "no data for the query"
    )
    jsonschema.validate(doc, schema)


def test_logs_check_with_a_pattern_and_a_service(shop) -> None:
    root, _ = shop
    res = cli(root, "check", "--logs", "level=error,pattern=payment provider rejected,max_count=100")
    assert res.returncode == 0, res.stdout
    res = cli(root, "check", "--logs", "level=error,pattern=payment provider rejected,service=app")
    assert res.returncode == 1
    assert "matching /payment provider rejected/ from app in the last 15m (at most 0); latest:" in res.stdout


@pytest.mark.parametrize(
    ("args", "first_line"),
    [
        (["--span", "nme=x"], "error: --span 'nme=x': nme: unknown setting"),
        (["--startup", "soon"], "error: --startup 'soon': max: 'soon' is not a duration"),
        (["--promql", "up"], "error: --promql 'up': expected 'EXPR OP NUMBER'"),
        (["nope"], "error: unknown check 'nope'"),
    ],
)
def test_bad_check_input_is_exit_2_in_one_line(shop, args: list[str], first_line: str) -> None:
    root, _ = shop
    res = cli(root, "check", *args)
    assert res.returncode == 2
    assert res.stderr.splitlines()[0].startswith(first_line)


def test_a_store_check_does_not_pass_while_the_collector_is_not_ready(shop) -> None:
    """The running stack's ``state.json`` says the collector failed (read as the checks read it, then that one
    field changed: failing a real collector for good takes five crashes and their back-off): a pass of a logs or
    span check becomes an error that says why; a fail stays a fail; a startup check is not the store's."""
    from legible.checks import context_for, parse_adhoc, run_checks

    root, _ = shop
    adhoc = [
        ("quiet", parse_adhoc("logs", "level=fatal,max_count=0")),
        ("fast", parse_adhoc("span", "name=GET /,max=30s")),
        ("start", parse_adhoc("startup", "30s")),
    ]
    ctx = context_for(root, browser=False)
    assert ctx.alive and ctx.state is not None
    doc = run_checks(ctx, ["no-errors"], adhoc)
    assert [c["status"] for c in doc["checks"]] == ["fail", "pass", "pass", "pass"]  # the collector is ready
    ctx = context_for(root, browser=False)
    assert ctx.state is not None
    ctx.state["services"]["collector"].update(status="failed", error="collector exited with code -9; gave up")
    doc = run_checks(ctx, ["no-errors"], adhoc)
    assert [c["status"] for c in doc["checks"]] == ["fail", "error", "error", "pass"]
    quiet = doc["checks"][1]
    assert quiet["summary"].startswith("not measured: collector failed (collector exited with code -9; gave up)")
    assert "(stored so far: 0 lines at fatal or above" in quiet["summary"]
    assert quiet["evidence"] == "legible down && legible up"
    assert not doc["passed"]
