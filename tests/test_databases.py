"""Per-worktree Postgres and Redis (issue 14), with real servers, real setup steps and the real CLI.

Runs as root here and in CI, which exercises Postgres' refusal of root (legible runs it in an unmapped user
namespace). The app is a small HTTP server that reads the database through ``psql`` (a real client).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import requests

from legible.config import parse_config
from legible.lease import Lease
from legible.plan import build_plan
from legible.services.databases import find_pg_bindir, socket_dir
from legible.worktree import find_worktree

from .conftest import cli, cli_json, git, is_loopback, make_repo, stack_pids, wait_until

pytestmark = pytest.mark.skipif(
    find_pg_bindir() is None or not Path("/usr/bin/redis-server").exists(),
    reason="needs Debian's postgresql and redis-server (scripts/setup.sh installs them)",
)

TOML = """
[app]
command = "python app.py"
setup = ["python migrate.py"]
ready = { http = "/healthz" }

[services.db]
kind = "postgres"

[services.cache]
kind = "redis"
"""

APP = """
import http.server, os, subprocess

PSQL = os.path.join(os.environ["PG_BINDIR"], "psql")

def sql(q):
    out = subprocess.run([PSQL, "-X", "-tA", os.environ["DATABASE_URL"], "-c", q], capture_output=True, text=True)
    return out.returncode, (out.stdout or out.stderr).strip()

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code, text = (0, "ok") if self.path == "/healthz" else sql("SELECT count(*) FROM items")
        self.send_response(200 if code == 0 else 500)
        self.end_headers()
        self.wfile.write(text.encode())

http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""

MIGRATE = """
import os, pathlib, subprocess, sys
if pathlib.Path("FAIL").exists():
    print("migration broke: relation wat does not exist")
    sys.exit(1)
psql = os.path.join(os.environ["PG_BINDIR"], "psql")
for q in (
    "CREATE TABLE IF NOT EXISTS items (id serial PRIMARY KEY, name text)",
    "INSERT INTO items (name) VALUES ('seed')",
):
    subprocess.run([psql, "-X", "-q", os.environ["DATABASE_URL"], "-c", q], check=True)
print("migrated", os.environ["PGDATABASE"])
"""


def _repo(path: Path) -> Path:
    toml = TOML
    bindir = str(find_pg_bindir())
    toml = toml.replace('command = "python app.py"', f'command = "python app.py"\nenv = {{ PG_BINDIR = "{bindir}" }}')
    return make_repo(path, toml, {"app.py": APP, "migrate.py": MIGRATE})


def _psql(url: str, query: str) -> str:
    out = subprocess.run(
        [str(find_pg_bindir() / "psql"), "-X", "-tA", url, "-c", query], capture_output=True, text=True, check=False
    )
    return (out.stdout or out.stderr).strip()


def _redis(port: int, *words: str) -> bytes:
    cmd = f"*{len(words)}\r\n" + "".join(f"${len(w)}\r\n{w}\r\n" for w in words)  # RESP array of bulk strings
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(cmd.encode())
        return s.recv(256)


def _up(root: Path) -> dict:
    code, doc = cli_json(root, "up", "--wait", "--timeout", "90", timeout=120)
    assert code == 0, doc
    return doc


def test_config_kind_needs_no_command_and_app_cannot_have_a_kind() -> None:
    cfg = parse_config({"app": {"command": "x"}, "services": {"db": {"kind": "postgres"}}})
    assert cfg.services["db"].kind == "postgres" and cfg.services["db"].command is None
    with pytest.raises(Exception, match="set either command or kind"):
        parse_config({"app": {"command": "x"}, "services": {"db": {"kind": "redis", "command": "redis-server"}}})
    with pytest.raises(Exception, match="app.kind"):
        parse_config({"app": {"kind": "postgres"}})


def test_the_plan_starts_databases_first_and_gives_the_app_their_urls(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", '[app]\ncommand = "python -V"\n')
    wt = find_worktree(root)
    data = {
        "app": {"command": "python -V", "setup": ["python -c pass"]},
        "services": {"db": {"kind": "postgres"}, "cache": {"kind": "redis"}, "worker": {"command": "python -V"}},
    }
    plan = build_plan(wt, parse_config(data), Lease(wt.key, str(root), 20000))
    names = [s.name for s in plan.services]
    assert names.index("cache") < names.index("app") and names.index("db") < names.index("worker")
    by = {s.name: s for s in plan.services}
    assert {"db", "cache"} <= set(by["app"].depends_on) and {"db", "cache"} <= set(by["worker"].depends_on)
    assert (by["db"].role, by["db"].probe.kind, by["cache"].probe.kind) == ("store", "postgres", "redis")
    assert by["db"].port and by["cache"].port and by["db"].port != by["cache"].port
    assert by["app"].setup == ["python -c pass"] and by["worker"].setup == []
    assert by["worker"].env["REDIS_URL"] == f"redis://127.0.0.1:{by['cache'].port}/0"
    assert plan.endpoints["db"] == f"postgresql://postgres@127.0.0.1:{by['db'].port}/db"
    assert str(wt.state_dir / "data" / "db") in by["db"].argv


def test_socket_dir_falls_back_to_a_short_private_tmp_dir_when_the_path_is_too_long(tmp_path: Path) -> None:
    short = socket_dir(tmp_path / ".legible", "k", "db")
    assert short == tmp_path / ".legible" / "run" / "db"
    deep = tmp_path / ("x" * 100) / ".legible"
    long = socket_dir(deep, "k", "db")
    assert str(long).startswith(f"/tmp/legible-{os.getuid()}-") and len(str(long / ".s.PGSQL.65535")) <= 107


def test_two_worktrees_setup_failure_reset_kill9_and_down(tmp_path: Path, down_after: list[Path]) -> None:
    a = _repo(tmp_path / "a")
    b = tmp_path / "b"  # a second worktree of the same repository, whose app has no setup step
    git(a, "worktree", "add", "-q", "-b", "other", str(b))
    (b / "legible.toml").write_text((b / "legible.toml").read_text().replace('setup = ["python migrate.py"]\n', ""))
    down_after += [a, b]
    doc_a, doc_b = _up(a), _up(b)

    # disjoint ports and data; every client variable points at this worktree's servers
    sa, sb = doc_a["services"], doc_b["services"]
    assert {sa["db"]["port"], sa["cache"]["port"]}.isdisjoint({sb["db"]["port"], sb["cache"]["port"]})
    assert (a / ".legible/data/db/PG_VERSION").is_file() and (b / ".legible/data/db/PG_VERSION").is_file()
    assert (a / ".legible/data/db").stat().st_mode & 0o077 == 0
    plan_a = json.loads((a / ".legible/plan.json").read_text())
    app_env = next(s for s in plan_a["services"] if s["name"] == "app")["env"]
    db_port, cache_port = sa["db"]["port"], sa["cache"]["port"]
    assert app_env["DATABASE_URL"] == f"postgresql://postgres@127.0.0.1:{db_port}/db"
    assert (app_env["PGHOST"], app_env["PGPORT"], app_env["PGDATABASE"]) == ("127.0.0.1", str(db_port), "db")
    assert app_env["REDIS_URL"] == f"redis://127.0.0.1:{cache_port}/0"
    url_a = app_env["DATABASE_URL"]
    url_b = f"postgresql://postgres@127.0.0.1:{sb['db']['port']}/db"
    # the servers listen on loopback only
    mine = {db_port, cache_port}
    listeners = [c for c in psutil.net_connections("tcp") if c.status == "LISTEN" and c.laddr.port in mine]
    assert {c.laddr.port for c in listeners} == mine and all(is_loopback(c.laddr.ip) for c in listeners)

    # the migration (a setup step) ran in a only
    assert requests.get(doc_a["endpoints"]["app"] + "/items", timeout=5).text == "1"
    assert _psql(url_a, "SELECT to_regclass('items') IS NOT NULL") == "t"
    assert _psql(url_b, "SELECT to_regclass('items') IS NOT NULL") == "f"
    assert _redis(cache_port, "SET", "k", "a") == b"+OK\r\n"
    assert _redis(sb["cache"]["port"], "GET", "k") == b"$-1\r\n"
    deploys = cli_json(a, "deploys")[1]["deploys"]
    steps = deploys[0]["setup"]["app"]["steps"]
    assert steps[0]["command"] == "python migrate.py" and steps[0]["exit_code"] == 0 and steps[0]["ms"] > 0
    assert "migrated db" in (a / ".legible/logs/app-setup.log").read_text()

    # a slow statement is a warn line with the statement, and the db check judges it
    assert _psql(url_a, "SELECT pg_sleep(0.08)") == ""

    def slow_line() -> dict:
        doc = cli_json(a, "logs", "--level", "warn", "--service", "db", "--raw")[1]
        return next((ln for ln in doc["lines"] if "pg_sleep(0.08)" in ln["body"]), {})

    assert "duration:" in wait_until(slow_line, timeout=15, what="the slow statement in the log store")["body"]
    # the startup lines are in too (the file is read in order): the readiness probe left no FATAL line
    code, errors = cli_json(a, "logs", "--level", "error", "--service", "db")
    assert code == 0 and errors["total"] == 0, errors
    code, check = cli_json(a, "check", "--db", "max_statement=50ms")
    assert code == 1 and check["checks"][0]["measured"] >= 80, check
    assert "pg_sleep(0.08)" in check["checks"][0]["summary"]
    code, check = cli_json(a, "check", "--db", "max_statement=5s")
    assert code == 0, check

    # legible_db_* from pg_stat_statements and Redis INFO, scraped from the supervisor
    def db_metric(query: str) -> float:
        code, doc = cli_json(a, "metrics", query)
        assert code == 0, doc
        return max((s["value"] or 0.0 for s in doc["series"]), default=0.0)

    wait_until(
        lambda: db_metric('legible_db_statement_max_seconds{service="db"}') >= 0.08,
        timeout=30,
        what="pg_sleep(0.08) as legible_db_statement_max_seconds",
    )
    assert db_metric('legible_db_statements_total{service="cache",system="redis"}') >= 1

    # a failing setup step: one-line error, exit 4, the log tail; the previous deploy's data stays
    (a / "FAIL").write_text("")
    res = cli(a, "restart", timeout=120)
    assert res.returncode == 4, res.stdout + res.stderr
    first = res.stderr.splitlines()[0]
    assert first.startswith("error: deploy 2: app: setup step 1/1 failed (exit 1): python migrate.py"), res.stderr
    assert "relation wat does not exist" in res.stderr
    assert _psql(url_a, "SELECT count(*) FROM items") == "1"
    wait_until(
        lambda: cli_json(a, "logs", "--service", "app-setup", "--grep", "migrated db")[1]["total"] >= 1,
        timeout=15,
        what="the first deploy's setup output in the log store",
    )

    # legible reset db, then restart: a clean database back to after-setup state
    code, reset = cli_json(a, "reset", "db")
    assert code == 0 and reset["reset"][0]["service"] == "db", reset
    assert _psql(url_a, "SELECT to_regclass('items') IS NULL") == "t"
    refused = cli(a, "restart", "db")
    assert refused.returncode == 2 and "db is a database service" in refused.stderr, refused.stderr
    (a / "FAIL").unlink()
    code, doc = cli_json(a, "restart", "--timeout", "60", timeout=120)
    assert code == 0, doc
    assert requests.get(doc_a["endpoints"]["app"] + "/items", timeout=5).text == "1"

    # kill -9 of the postmaster: the supervisor restarts it and the app recovers
    pid_file = (a / ".legible/data/db/postmaster.pid").read_text().splitlines()
    os.kill(int(pid_file[0]), signal.SIGKILL)

    def recovered() -> bool:
        db = cli_json(a, "status")[1]["services"]["db"]
        assert db["restarts"] >= 1 and db["status"] == "ready", db
        got = requests.get(doc_a["endpoints"]["app"] + "/items", timeout=5)
        assert got.text == "1", got.text
        return True

    wait_until(recovered, timeout=30, what="db restarted and the app reads it again")
    shm_ids = [(root / ".legible/data/db/postmaster.pid").read_text().splitlines()[6].split()[-1] for root in (a, b)]

    # down: no process, no shared memory segment, no socket file; the data is kept
    for root in (a, b):
        code, down = cli_json(root, "down")
        assert code == 0, down
    assert stack_pids(doc_a["key"]) == [] and stack_pids(doc_b["key"]) == []
    ipcs = subprocess.run(["ipcs", "-m"], capture_output=True, text=True, check=True).stdout.split()
    assert not set(shm_ids) & set(ipcs), (shm_ids, ipcs)
    for root in (a, b):
        assert not list((root / ".legible").rglob("*.sock")) and not list((root / ".legible").rglob(".s.PGSQL.*"))
        assert (root / ".legible/data/db/PG_VERSION").is_file()
    code, down = cli_json(a, "down", "--purge")
    assert code == 0 and not (a / ".legible").exists()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
