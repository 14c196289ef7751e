"""The JSON contract: every ``--json`` document validates against the shipped schema its ``schema`` names.

One real stack of the example shop (browser on) answers every command once; each document is validated
with ``jsonschema`` against ``legible.schemas.load(doc["schema"])``. The shipped schemas must equal what
``scripts/gen_schemas.py`` generates from :mod:`legible.contract` now, and every schema name the code can
emit must have one.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import psutil
import pytest
import requests

from legible import schemas
from legible.contract import browser_schema, read_state

from .conftest import REPO, cli, make_repo
from .test_stack import shop_repo, wait_until

SHOP_TOML = (REPO / "examples" / "shop" / "legible.toml").read_text()
NAME = re.compile(r"^legible\.[a-z][a-z0-9]*(-[a-z][a-z0-9]*)*/v[0-9]+$")


def validate(doc: dict[str, Any]) -> None:
    """Validate ``doc`` against the shipped schema named by its ``schema`` field (formats checked too)."""
    schema = schemas.load(doc["schema"])
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:10])


# -- the schemas themselves ----------------------------------------------------------------------------------
def test_shipped_schemas_are_what_the_types_generate_now() -> None:
    generated = schemas.generate()
    shipped = {p.name: p.read_text() for p in schemas.schema_dir().glob("*.json")}
    stale = sorted(n for n in generated if shipped.get(n) != generated[n])
    extra = sorted(set(shipped) - set(generated))
    assert not stale and not extra, f"stale {stale}, unknown {extra}: run scripts/gen_schemas.py"


def test_the_generator_script_checks_the_shipped_files(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "scripts/gen_schemas.py", "--check"], cwd=REPO, capture_output=True)
    assert res.returncode == 0, res.stderr.decode()


def _emitted_names() -> set[str]:
    """Every ``legible.<...>/vN`` string literal in legible/ and clis/, plus the browser operations' names."""
    found = set()
    for folder in ("legible", "clis"):
        for path in (REPO / folder).rglob("*.py"):
            found |= set(re.findall(r"""["'](legible\.[a-z][a-z0-9.-]*/v[0-9]+)["']""", path.read_text()))
    ops = re.findall(r"""_send\(\s*f?["']([a-z.{}]+)["']""", (REPO / "clis" / "browser.py").read_text())
    record = re.findall(r"RECORD_ACTIONS = \(([^)]*)\)", (REPO / "clis" / "browser.py").read_text())
    actions = re.findall(r'"([a-z]+)"', record[0]) if record else []
    for op in ops:
        for name in [f"record.{a}" for a in actions] if "{" in op else [op]:
            found.add(browser_schema(name))
    return found


def test_every_schema_name_the_code_emits_has_a_shipped_schema() -> None:
    from legible.contract.documents import SCHEMAS

    emitted = _emitted_names()
    # the scan itself must see the names it is meant to see (a scan that finds nothing cannot fail)
    assert {"legible.status/v1", "legible.metrics-list/v1", "legible.browser-record-stop/v1"} <= emitted
    assert len(emitted) >= 30, sorted(emitted)
    assert not [n for n in emitted if not NAME.match(n)], "names follow legible.<command>[-<subcommand>]/v1"
    assert emitted - set(SCHEMAS) == set(), "a name without a type in legible.contract"
    assert emitted - set(schemas.names()) == set(), "a name without a shipped schema"
    for name in emitted:
        assert schemas.load(name)["$id"] == f"urn:legible:{schemas.file_name(name)[: -len('.json')].replace('.', ':')}"


def test_schema_names_and_short_forms_load_the_same_file() -> None:
    assert schemas.load("check") == schemas.load("legible.check/v1")
    assert schemas.file_name("legible.browser-record-start/v1") == "browser-record-start.v1.json"
    with pytest.raises(ValueError, match="not a schema name"):
        schemas.load("legible.metrics.list/v1")
    with pytest.raises(ValueError, match="no schema"):
        schemas.load("legible.nothing/v1")


def test_a_closed_schema_rejects_a_key_the_type_does_not_name() -> None:
    doc = {"schema": "legible.gc/v1", "dry_run": True, "leases": [], "orphans": []}
    validate(doc)
    with pytest.raises(AssertionError, match="Additional properties"):
        validate({**doc, "surprise": 1})
    with pytest.raises(AssertionError, match="is not one of"):
        validate({**doc, "leases": [{"key": "k", "worktree": "/w", "why": "bored"}]})


# -- the one reader of state.json ------------------------------------------------------------------------------
def test_read_state_marks_a_stack_whose_supervisor_is_gone_as_dead(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    gone = {"pid": proc.pid, "create_time": 1.0}
    me = psutil.Process(os.getpid())
    path = tmp_path / "state.json"
    base = {
        "schema": "legible.state/v1",
        "key": "wt-0123abcd",
        "worktree": str(tmp_path),
        "status": "ready",
        "error": "",
        "error_service": "",
        "started_at": 1.0,
        "ready_ms": 12.5,
        "lease_base": 20000,
        "ports": {"app": 20000},
        "endpoints": {"app": "http://127.0.0.1:20000"},
        "config_hash": "",
        "services": {},
    }
    path.write_text(json.dumps({**base, "supervisor": gone}))
    dead = read_state(path)
    assert dead is not None and not dead["alive"] and dead["status"] == "dead" and "supervisor is gone" in dead["error"]
    path.write_text(json.dumps({**base, "supervisor": {"pid": me.pid, "create_time": me.create_time()}}))
    live = read_state(path)
    assert live is not None and live["alive"] and live["status"] == "ready"
    validate({k: v for k, v in live.items() if k != "alive"})
    path.write_text(json.dumps({"status": "ready", "supervisor": {"pid": me.pid, "create_time": me.create_time()}}))
    partial = read_state(path)
    assert partial is not None and partial["alive"] and partial["services"] == {} and partial["ready_ms"] is None
    for bad in ("{not json", "[]", json.dumps({"services": {}}), json.dumps({"status": "ready", "services": []})):
        path.write_text(bad)
        assert read_state(path) is None, bad
    assert read_state(tmp_path / "missing.json") is None


# -- every command on a real stack ---------------------------------------------------------------------------------
def _json(root: Path, *args: str, timeout: float = 180) -> tuple[int, dict[str, Any]]:
    res = cli(root, *args, "--json", timeout=timeout)
    try:
        return res.returncode, json.loads(res.stdout)
    except ValueError:
        raise AssertionError(f"legible {' '.join(args)} --json printed no JSON document: {res.stderr[-500:]}") from None


PASS_OR_FAIL = -1
#: (label, arguments, expected exit code, expected schema), run in this order on one stack.
COMMANDS: list[tuple[str, list[str], int, str]] = [
    ("status-down", ["status"], 0, "legible.status/v1"),
    ("up", ["up", "--wait"], 0, "legible.up/v1"),
    ("status", ["status"], 0, "legible.status/v1"),
    ("ps", ["ps"], 0, "legible.ps/v1"),
    ("gc", ["gc", "--dry-run"], 0, "legible.gc/v1"),
    ("doctor", ["doctor"], 0, "legible.doctor/v1"),
    ("logs", ["logs", "--since", "all"], 0, "legible.logs/v1"),
    ("logs-raw", ["logs", "--raw", "--since", "all"], 0, "legible.logs/v1"),
    ("logs-sql", ["logs", "--sql", "SELECT level, count(*) AS n FROM logs GROUP BY 1"], 0, "legible.sql/v1"),
    ("traces", ["traces", "--since", "all"], 0, "legible.traces/v1"),
    ("traces-sql", ["traces", "--sql", "SELECT name, duration_ms FROM spans LIMIT 3"], 0, "legible.sql/v1"),
    ("trace", ["trace", "{trace_id}"], 0, "legible.trace/v1"),
    ("metrics", ["metrics", "up"], 0, "legible.metrics/v1"),
    ("metrics-range", ["metrics", "up", "--range", "5m"], 0, "legible.metrics/v1"),
    ("metrics-list", ["metrics", "list"], 0, "legible.metrics-list/v1"),
    ("browser-open", ["browser", "open", "/order"], 0, "legible.browser-open/v1"),
    ("browser-snapshot", ["browser", "snapshot"], 0, "legible.browser-snapshot/v1"),
    ("browser-fill", ["browser", "fill", "#name", "Ada Lovelace"], 0, "legible.browser-fill/v1"),
    ("browser-press", ["browser", "press", "Tab"], 0, "legible.browser-press/v1"),
    ("browser-wait", ["browser", "wait", "Place order"], 0, "legible.browser-wait/v1"),
    ("browser-record-start", ["browser", "record", "start", "contract"], 0, "legible.browser-record-start/v1"),
    ("browser-record-chapter", ["browser", "record", "chapter", "click"], 0, "legible.browser-record-chapter/v1"),
    ("browser-click", ["browser", "click", "text=Shop"], 0, "legible.browser-click/v1"),
    ("browser-record-stop", ["browser", "record", "stop"], 0, "legible.browser-record-stop/v1"),
    ("browser-screenshot", ["browser", "screenshot"], 0, "legible.browser-screenshot/v1"),
    ("browser-console", ["browser", "console", "--all"], 0, "legible.browser-console/v1"),
    ("browser-network", ["browser", "network", "--list"], 0, "legible.browser-network/v1"),
    ("browser-vitals", ["browser", "vitals"], 0, "legible.browser-vitals/v1"),
    ("browser-status", ["browser", "status"], 0, "legible.browser-status/v1"),
    ("journeys", ["journey", "list"], 0, "legible.journeys/v1"),
    ("journey", ["journey", "run", "report"], 0, "legible.journey/v1"),
    ("check", ["check", "--startup", "60s", "--span", "journey=report,max=60s"], 0, "legible.check/v1"),
    ("check-failing", ["check", "--startup", "1ms"], 1, "legible.check/v1"),
    ("proof", ["proof", "--no-record"], PASS_OR_FAIL, "legible.proof/v1"),  # its verdict is the shop's
    ("browser-diff", ["browser", "diff"], 0, "legible.browser-diff/v1"),
    ("restart", ["restart"], 0, "legible.restart/v1"),
    ("deploys", ["deploys"], 0, "legible.deploys/v1"),
    ("diff", ["diff"], 0, "legible.diff/v1"),
    ("logs-deploy", ["logs", "--since", "deploy"], 0, "legible.logs/v1"),
    ("skills-list", ["skills", "list"], 0, "legible.skills-list/v1"),
    ("skills-install", ["skills", "install"], 0, "legible.skills-install/v1"),
    ("skills-install-mcp", ["skills", "install", "--mcp", "--hooks"], 0, "legible.skills-install/v1"),
    ("error", ["trace", "ffffffffff"], 2, "legible.error/v1"),
    ("error-browser", ["browser", "click", "text=No such thing anywhere"], 2, "legible.error/v1"),
    ("down", ["down"], 0, "legible.down/v1"),
]


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, dict[str, Any]]]:
    """Boot the shop once and run every command of :data:`COMMANDS` with ``--json``; ``{label: (code, doc)}``."""
    base = tmp_path_factory.mktemp("contract")
    out: dict[str, tuple[int, dict[str, Any]]] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_STATE_HOME", str(base / "xdg"))
        root = shop_repo(base / "shop", SHOP_TOML)
        try:
            for label, args, _, _ in COMMANDS:
                if label == "logs":  # signals to query: a page, an error, a slow page
                    app = out["up"][1]["endpoints"]["app"]
                    for path in ("/", "/error", "/slow?ms=50"):
                        requests.get(app + path, timeout=10)
                    wait_until(lambda: _json(root, "traces", "--errors", "--since", "all")[1].get("total"), 20)
                if label == "metrics":  # a warm CLI (fork server) can get here before the first scrape
                    wait_until(lambda a=args: _json(root, *a)[1].get("series"), 30, every=0.5)
                if label == "metrics-range":  # a fast CLI gets here before the stack's first samples are in range
                    wait_until(lambda a=args: (_json(root, *a)[1].get("series") or [{}])[0].get("values"), 30, every=1)
                args = [a.format(trace_id=out["traces"][1]["traces"][0]["trace_id"]) if "{" in a else a for a in args]
                out[label] = _json(root, *args)
                if label == "up":
                    assert out[label][0] == 0, out[label][1]
        finally:
            cli(root, "down")
        init_root = make_repo(base / "fresh", "", {"app.py": "print('hi')\n"})
        (init_root / "legible.toml").unlink()
        out["init"] = _json(init_root, "init")
    return out


@pytest.mark.slow
@pytest.mark.parametrize(
    ("label", "code", "schema"), [(c[0], c[2], c[3]) for c in COMMANDS] + [("init", 0, "legible.init/v1")]
)
def test_every_json_document_validates_against_its_shipped_schema(
    documents: dict[str, tuple[int, dict[str, Any]]], label: str, code: int, schema: str
) -> None:
    got_code, doc = documents[label]
    if code == PASS_OR_FAIL:
        code = got_code if got_code in (0, 1) else 0
    assert (got_code, doc["schema"]) == (code, schema), json.dumps(doc)[:1000]
    validate(doc)


@pytest.mark.slow
def test_the_documents_carry_what_the_run_did(documents: dict[str, tuple[int, dict[str, Any]]]) -> None:
    """Guards against a run whose documents validate because they are empty."""
    assert documents["status-down"][1]["status"] == "down"
    assert documents["status"][1]["status"] == "ready" and documents["status"][1]["services"]["chromium"]["pid"]
    assert documents["logs"][1]["groups"] and documents["traces"][1]["traces"]
    assert documents["trace"][1]["roots"] and documents["metrics"][1]["series"]
    assert documents["metrics-range"][1]["series"][0]["values"]
    assert documents["browser-record-stop"][1]["chapters"], documents["browser-record-stop"][1]
    assert documents["journey"][1]["ok"] and documents["journey"][1]["backend"]["spans"] >= 1
    assert documents["check-failing"][1]["counts"]["fail"] == 1
    assert documents["proof"][1]["checks"]["checks"] and documents["proof"][1]["files"]
    assert documents["down"][1]["was_running"] and documents["init"][1]["written"]
