"""End to end: real supervisor, real VictoriaMetrics, real app processes on loopback, driven by the CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from .conftest import REPO, cli, cli_json, git, is_loopback, listening_ports, make_repo, stack_pids, wait_until

SHOP_TOML = """\
[app]
command = "python app.py"
ready = { http = "/healthz" }
metrics_path = "/metrics"

[stack]
scrape_interval = "1s"
"""


def shop_repo(path: Path, toml: str = SHOP_TOML) -> Path:
    """A git repository holding a copy of the example shop, as an agent's worktree would."""
    files = {}
    src = REPO / "examples" / "shop"
    for f in src.rglob("*"):
        if f.is_file() and "__pycache__" not in f.parts and f.name != "legible.toml":
            files[str(f.relative_to(src))] = f.read_text()
    return make_repo(path, toml, files)


def promql(vm: str, query: str) -> list[dict]:
    from prometheus_api_client import PrometheusConnect

    return PrometheusConnect(vm, disable_ssl=True).custom_query(query)


def test_up_example_app_answers_and_down_leaves_nothing(tmp_path: Path, down_after: list[Path]) -> None:
    root = shop_repo(tmp_path / "shop")
    down_after.append(root)
    code, doc = cli_json(root, "up", "--wait", "--timeout", "60")
    assert code == 0, doc
    assert doc["schema"] == "legible.up/v1" and doc["status"] == "ready" and not doc["already_running"]
    key, ep = doc["key"], doc["endpoints"]
    assert doc["services"]["app"]["first_ready_ms"] > 0
    assert requests.get(ep["app"] + "/", timeout=5).status_code == 200
    # vmui is advertised (state, env file) exactly when it answers: Debian's build has no vmui (404)
    vmui_answers = requests.get(ep["victoria-metrics"] + "/vmui/", timeout=5).status_code == 200
    assert ("vmui" in ep) == vmui_answers
    assert ("LEGIBLE_VMUI_URL=" in (root / ".legible" / "env").read_text()) == vmui_answers
    # the app's job gets its target once the app is ready (its scrape file is published then, read within 1 s)
    jobs = {"legible-supervisor", "legible-collector", "app"}
    wait_until(
        lambda: (
            {
                t["labels"]["job"]
                for t in requests.get(ep["victoria-metrics"] + "/api/v1/targets", timeout=5).json()["data"][
                    "activeTargets"
                ]
            }
            == jobs
        ),
        timeout=15,
        what="VictoriaMetrics' targets: supervisor, collector and the app",
    )
    ready = wait_until(lambda: promql(ep["victoria-metrics"], 'legible_service_ready_seconds{service="app"}'))
    assert 0 < float(ready[0]["value"][1]) < 60
    assert ready[0]["metric"]["worktree"] == key
    # the app's own /metrics is scraped
    requests.get(ep["app"] + "/api/products", timeout=5)
    assert wait_until(lambda: promql(ep["victoria-metrics"], "shop_http_requests_total"), timeout=15)
    # idempotent: a second up reports the running stack
    code, again = cli_json(root, "up", "--wait")
    assert code == 0 and again["already_running"] and again["endpoints"] == ep
    assert again["note"] == ""
    # options that apply at start are reported on a running stack, not silently ignored
    code, again = cli_json(root, "up", "--watch")
    assert code == 0 and again["already_running"], again
    assert "started without --watch" in again["note"] and "legible up --wait --watch" in again["note"]
    # state on disk: env file, excluded from git
    env = (root / ".legible" / "env").read_text()
    assert f"LEGIBLE_APP_URL={ep['app']}" in env
    assert "/.legible/" in (root / ".git" / "info" / "exclude").read_text()
    assert git(root, "status", "--porcelain") == ""
    # every listener of the stack is on loopback
    pids = stack_pids(key)
    assert pids
    for c in psutil.net_connections("tcp"):
        if c.status == "LISTEN" and c.pid in pids:
            assert is_loopback(c.laddr.ip), c
    ports = range(int(ep["app"].rsplit(":", 1)[1]), int(ep["app"].rsplit(":", 1)[1]) + 16)
    assert listening_ports(ports)

    res = cli(root, "down")
    assert res.returncode == 0 and "stopped" in res.stdout
    assert stack_pids(key) == []
    assert listening_ports(ports) == []
    code, ps = cli_json(root, "ps")
    assert ps["stacks"] == []
    code, st = cli_json(root, "status")
    assert st["status"] == "stopped" and not st["alive"]
    assert (root / ".legible" / "logs" / "app.log").read_text()  # data kept for post-mortem
    cli(root, "down", "--purge")
    assert not (root / ".legible").exists()


def test_kill_9_of_the_app_is_restarted_and_status_shows_it(tmp_path: Path, down_after: list[Path]) -> None:
    root = shop_repo(tmp_path / "shop")
    down_after.append(root)
    code, doc = cli_json(root, "up", "--wait")
    assert code == 0, doc
    old = doc["services"]["app"]["pid"]
    os.kill(old, signal.SIGKILL)

    def restarted():
        _, st = cli_json(root, "status")
        app = st["services"]["app"]
        return st if app["restarts"] == 1 and app["status"] == "ready" else None

    st = wait_until(restarted, timeout=20)
    assert st["services"]["app"]["pid"] != old
    assert requests.get(st["endpoints"]["app"] + "/healthz", timeout=5).status_code == 200
    text = cli(root, "status").stdout
    assert "restarts=1" in text
    assert wait_until(
        lambda: promql(st["endpoints"]["victoria-metrics"], 'legible_service_restarts_total{service="app"} == 1')
    )


def test_kill_9_of_the_supervisor_leaves_no_service_after_gc(tmp_path: Path, down_after: list[Path]) -> None:
    toml = SHOP_TOML + '\n[services.worker]\ncommand = "sh -c \'trap \\"\\" TERM; sleep 300\'"\n'
    root = shop_repo(tmp_path / "shop", toml)
    down_after.append(root)
    code, doc = cli_json(root, "up", "--wait")
    assert code == 0, doc
    key = doc["key"]
    sup = json.loads((root / ".legible" / "state.json").read_text())["supervisor"]["pid"]
    os.kill(sup, signal.SIGKILL)
    # direct children get SIGTERM from the kernel (PR_SET_PDEATHSIG); the worker ignores it on purpose
    wait_until(
        lambda: (
            [p for p in stack_pids(key) if psutil.Process(p).name() != "sh" and "sleep" not in psutil.Process(p).name()]
            == []
        ),
        timeout=10,
    )
    code, st = cli_json(root, "status")
    assert st["status"] == "dead"
    code, dry = cli_json(root, "gc", "--dry-run")
    assert [lease["key"] for lease in dry["leases"]] == [key]
    assert dry["orphans"], "the TERM-ignoring worker must be found as an orphan"
    assert stack_pids(key)  # dry run killed nothing
    code, done = cli_json(root, "gc")
    assert code == 0
    wait_until(lambda: stack_pids(key) == [], timeout=10)
    assert cli_json(root, "ps")[1]["stacks"] == []


def test_two_worktrees_of_one_repo_run_side_by_side(tmp_path: Path, down_after: list[Path]) -> None:
    main = shop_repo(tmp_path / "shop")
    second = tmp_path / "shop-feature"
    git(main, "worktree", "add", "-q", "-b", "feature", str(second))
    down_after.extend([main, second])
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "legible.cli.main", "up", "--wait", "--json"],
            cwd=w,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        for w in (main, second)
    ]
    docs = [json.loads(p.communicate(timeout=90)[0]) for p in procs]
    assert [d["status"] for d in docs] == ["ready", "ready"]
    assert docs[0]["key"] != docs[1]["key"]
    ports = [set(d["services"][s]["port"] for s in d["services"]) for d in docs]
    assert not ports[0] & ports[1]
    for d in docs:
        assert requests.get(d["endpoints"]["app"] + "/healthz", timeout=5).text == "ok"
    assert {s["key"] for s in cli_json(main, "ps")[1]["stacks"]} == {docs[0]["key"], docs[1]["key"]}
    cli(second, "down")
    assert stack_pids(docs[1]["key"]) == []
    assert requests.get(docs[0]["endpoints"]["app"] + "/healthz", timeout=5).text == "ok"
    assert stack_pids(docs[0]["key"])
    assert (second / ".legible").is_dir() and not (main / ".legible" / "plan.json").read_text() == (
        second / ".legible" / "plan.json"
    ).read_text()


def test_a_stack_whose_worktree_was_removed_stops_and_leaves_nothing(tmp_path: Path, down_after: list[Path]) -> None:
    main = make_repo(tmp_path / "repo", '[app]\ncommand = "sleep 300"\nready = { log = "" }\n')
    gone = tmp_path / "repo-gone"
    git(main, "worktree", "add", "-q", "-b", "gone", str(gone))
    code, doc = cli_json(gone, "up", "--wait")
    assert code == 0, doc
    git(main, "worktree", "remove", "--force", str(gone))
    # the supervisor notices within about a second and stops its stack; gc reclaims whatever is left. What a
    # service wrote while git removed the folder (VictoriaMetrics flushes at exit) is deleted by the supervisor.
    wait_until(lambda: stack_pids(doc["key"]) == [], timeout=10)
    wait_until(lambda: not gone.exists(), timeout=10)
    code, res = cli_json(main, "gc")
    assert code == 0 and res["orphans"] == []
    assert cli_json(main, "ps")[1]["stacks"] == []


def test_broken_config_is_exit_2_with_one_line_and_nothing_started(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", '[app]\ncommand = "python app.py"\nready_timout = 3\n')
    res = cli(root, "up", "--wait")
    assert res.returncode == 2
    assert res.stderr.splitlines()[0] == "error: legible.toml: app.ready_timout: unknown key"
    assert cli_json(root, "ps")[1]["stacks"] == []


def test_missing_app_binary_is_exit_3_naming_it(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", '[app]\ncommand = "no-such-server --port $PORT"\n')
    res = cli(root, "up", "--wait")
    assert res.returncode == 3
    assert res.stderr.splitlines()[0] == "error: app: command not found: no-such-server"
    assert cli_json(root, "ps")[1]["stacks"] == []


def test_app_that_never_becomes_ready_is_exit_4_with_its_log_and_nothing_left(tmp_path: Path) -> None:
    app = "import time\nprint('connecting to database db.internal:5432', flush=True)\ntime.sleep(300)\n"
    root = make_repo(tmp_path / "r", '[app]\ncommand = "python app.py"\nready_timeout = 2\n', {"app.py": app})
    res = cli(root, "up", "--wait")
    assert res.returncode == 4
    lines = res.stderr.splitlines()
    assert lines[0] == "error: app was not ready after 2 s (tcp probe on 127.0.0.1:" + lines[0].rsplit(":", 1)[1]
    assert "  connecting to database db.internal:5432" in lines
    key = json.loads((root / ".legible" / "state.json").read_text())["key"]
    assert stack_pids(key) == []
    assert cli_json(root, "ps")[1]["stacks"] == []


def test_app_that_crashes_at_start_fails_fast_with_exit_code_and_log(tmp_path: Path) -> None:
    app = "import sys\nprint('KeyError: DATABASE_URL is not set', file=sys.stderr)\nsys.exit(3)\n"
    root = make_repo(tmp_path / "r", '[app]\ncommand = "python app.py"\n', {"app.py": app})
    code, err = cli_json(root, "up", "--wait")
    assert code == 4
    assert err["schema"] == "legible.error/v1"
    assert err["message"] == "app exited with code 3 while the stack was starting"
    assert err["log_tail"] == ["KeyError: DATABASE_URL is not set"]


def test_up_timeout_stops_the_stack_and_exits_4(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", '[app]\ncommand = "sleep 300"\nready_timeout = 100\n')
    res = cli(root, "up", "--wait", "--timeout", "2")
    assert res.returncode == 4
    assert "app was not ready within --timeout 2 s" in res.stderr
    assert cli_json(root, "ps")[1]["stacks"] == []


@pytest.mark.skipif(shutil.which("opentelemetry-instrument") is None, reason="needs legible[example]")
def test_unmodified_third_party_app_under_opentelemetry_instrument(tmp_path: Path, down_after: list[Path]) -> None:
    toml = """\
[app]
command = "python -m httpbin.core --port $PORT --host 127.0.0.1"
instrument = true
ready = { http = "/get" }
"""
    root = make_repo(tmp_path / "thirdparty", toml)
    down_after.append(root)
    code, doc = cli_json(root, "up", "--wait", "--timeout", "60")
    assert code == 0, doc
    assert requests.get(doc["endpoints"]["app"] + "/get", timeout=5).json()["url"].endswith("/get")
    env = psutil.Process(doc["services"]["app"]["pid"]).environ()
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == doc["endpoints"]["otlp-http"]
    assert env["OTEL_SERVICE_NAME"] == "app"
    assert psutil.Process(doc["services"]["app"]["pid"]).cmdline()[0].endswith("python") or "opentelemetry" in " ".join(
        psutil.Process(doc["services"]["app"]["pid"]).cmdline()
    )


HOSTILE = 'sh op, "ü" $(touch PWNED)'


def test_hostile_path_inherited_secret_and_a_dead_proxy(
    tmp_path: Path, down_after: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worktree named with a space, a comma, unicode, a quote and $(...); a secret in up's environment;
    HTTP_PROXY pointing at a dead port: up works, the app gets the secret, no file under .legible/ holds it,
    modes are 0700/0600, `.legible/env` sources cleanly, VictoriaMetrics scrapes, logs and metrics answer."""
    secret = "sk-live-" + os.urandom(8).hex()
    monkeypatch.setenv("SECRET_API_KEY", secret)
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    root = shop_repo(tmp_path / HOSTILE)
    down_after.append(root)
    code, doc = cli_json(root, "up", "--wait", "--timeout", "60")
    assert code == 0, doc
    app_env = psutil.Process(doc["services"]["app"]["pid"]).environ()
    assert app_env["SECRET_API_KEY"] == secret
    assert "127.0.0.1" in app_env["NO_PROXY"].split(",") and "::1" in app_env["no_proxy"].split(",")
    ep = doc["endpoints"]
    session = requests.Session()
    session.trust_env = False  # the test's own client must not use the dead proxy either
    assert session.get(ep["app"] + "/api/products", timeout=5).status_code == 200
    assert wait_until(
        lambda: [
            t
            for t in session.get(ep["victoria-metrics"] + "/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
            if t["health"] == "up" and t["labels"]["job"] == "app"
        ],
        timeout=15,
    )
    targets = session.get(ep["victoria-metrics"] + "/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
    assert {t["labels"]["job"] for t in targets} == {"legible-supervisor", "legible-collector", "app"}
    assert wait_until(
        lambda: "shop_http_requests_total" in cli(root, "metrics", "list", "shop_http").stdout, timeout=20
    )
    assert wait_until(
        lambda: cli(root, "logs", "--since", "5m").returncode == 0 and "0 lines" not in cli(root, "logs").stdout
    )
    # .legible/: private, and no inherited value in any file
    state = root / ".legible"
    assert state.stat().st_mode & 0o777 == 0o700
    for p in state.rglob("*"):
        if p.is_symlink():
            continue
        mode = p.stat().st_mode & 0o777
        assert mode == (0o700 if p.is_dir() else 0o600), (p, oct(mode))
        if p.is_file():
            assert secret.encode() not in p.read_bytes(), p
    # the env file sources cleanly and runs nothing; the printed hint is quoted the same way
    out = subprocess.run(
        ["sh", "-c", 'set -a; . "$1"; set +a; printf "%s" "$LEGIBLE_APP_URL"', "sh", str(state / "env")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and out.stderr == "" and out.stdout == ep["app"]
    assert not list(tmp_path.rglob("PWNED"))
    hint = cli(root, "up").stdout.splitlines()[-1]
    assert hint.startswith("env: ")
    subprocess.run(["sh", "-c", hint[len("env: ") :]], cwd=tmp_path, check=True)
    assert not list(tmp_path.rglob("PWNED"))


def test_up_after_kill_9_of_the_supervisor_reclaims_the_dead_stack(tmp_path: Path, down_after: list[Path]) -> None:
    toml = (
        '[app]\ncommand = "python -m http.server $PORT --bind 127.0.0.1"\n'
        '[services.worker]\ncommand = "sh -c \'trap \\"\\" TERM; sleep 300\'"\ndepends_on = ["app"]\n'
    )
    root = make_repo(tmp_path / "r", toml)
    down_after.append(root)
    code, doc = cli_json(root, "up", "--wait")
    assert code == 0, doc
    key, old_app = doc["key"], doc["services"]["app"]["port"]
    worker = psutil.Process(doc["services"]["worker"]["pid"])
    sup = json.loads((root / ".legible" / "state.json").read_text())["supervisor"]["pid"]
    os.kill(sup, signal.SIGKILL)
    res = cli(root, "status")
    assert res.returncode == 4 and res.stdout.startswith(f"stack {key}: dead")
    error = res.stdout.splitlines()[1]
    assert error.startswith("error: the supervisor is gone (killed?) and left ") and "worker" in error
    code, st = cli_json(root, "status")
    assert code == 4 and st["status"] == "dead" and "worker" in st["left_running"]
    assert not [n for n, s in st["services"].items() if s["status"] == "ready"]
    assert worker.is_running() and worker.status() != psutil.STATUS_ZOMBIE  # it ignored the kernel's SIGTERM
    code, again = cli_json(root, "up", "--wait")
    assert code == 0, again
    assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE
    assert again["services"]["app"]["port"] == old_app  # the same block, reused
    assert "reclaimed" in again["note"]
    assert [s["key"] for s in cli_json(root, "ps")[1]["stacks"]] == [key]
    live = {p for p in stack_pids(key)}
    assert {again["services"][n]["pid"] for n in ("app", "worker")} <= live


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_up_stops_what_it_started_and_frees_the_lease(tmp_path: Path, sig: int) -> None:
    root = make_repo(tmp_path / "r", '[app]\ncommand = "sleep 300"\nready_timeout = 100\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "legible.cli.main", "up", "--wait"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    state = root / ".legible" / "state.json"

    def app_started() -> bool:
        try:
            return json.loads(state.read_text())["services"]["app"]["status"] == "starting"
        except (OSError, ValueError, KeyError):
            return False

    wait_until(app_started, timeout=30, every=0.05)
    key = json.loads(state.read_text())["key"]
    assert stack_pids(key)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert err.splitlines()[0].startswith("error: interrupted: legible up in ")
    assert stack_pids(key) == []
    assert cli_json(root, "ps")[1]["stacks"] == []


def test_an_unwritable_state_dir_is_one_line_and_exit_2(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", '[app]\ncommand = "sleep 300"\n')
    (root / ".legible").write_text("not a directory\n")
    res = cli(root, "up", "--wait")
    assert res.returncode == 2
    lines = res.stderr.splitlines()
    assert lines[0].startswith(f"error: cannot write {root / '.legible'}: ") and lines[1].startswith("hint: ")
    assert len(lines) == 2
    assert cli_json(root, "ps")[1]["stacks"] == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through a read-only mode")
def test_a_read_only_state_dir_is_one_line_and_exit_2_and_stays_read_only(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", '[app]\ncommand = "sleep 300"\n')
    (root / ".legible").mkdir(mode=0o500)
    try:
        res = cli(root, "up", "--wait")
        assert res.returncode == 2
        assert res.stderr.splitlines()[0].startswith(f"error: cannot write {root / '.legible'}: Permission denied")
        assert (root / ".legible").stat().st_mode & 0o777 == 0o500
    finally:
        (root / ".legible").chmod(0o700)


def test_a_port_taken_after_the_lease_moves_the_stack_or_names_its_owner(tmp_path: Path, isolated_xdg: Path) -> None:
    """A foreign process binds the app's port right after `up` leased the block: the stack moves to the next
    free block (exit 0), or, when the bind lands after the last check, up exits 5 naming the port and owner."""
    import socket
    import threading

    root = make_repo(tmp_path / "r", '[app]\ncommand = "python -m http.server $PORT --bind 127.0.0.1"\n')
    leases = isolated_xdg / "state" / "legible" / "leases.json"
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    taken: list[int] = []

    def squat() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not taken:
            try:
                doc = json.loads(leases.read_text())
            except (OSError, ValueError):
                time.sleep(0.001)
                continue
            for lease in doc.get("leases", {}).values():
                squatter.bind(("127.0.0.1", lease["base"]))
                squatter.listen()
                taken.append(lease["base"])
                return

    t = threading.Thread(target=squat, daemon=True)
    t.start()
    try:
        res = cli(root, "up", "--wait", "--json")
        t.join(5)
        assert taken
        doc = json.loads(res.stdout)
        if res.returncode == 0:
            assert doc["services"]["app"]["port"] != taken[0]
        else:
            assert res.returncode == 5, doc
            assert doc["message"].startswith(
                f"port {taken[0]} of this stack's lease was taken by process {os.getpid()}"
            )
    finally:
        cli(root, "down")
        squatter.close()


def test_down_says_which_service_ignored_sigterm_and_was_killed(tmp_path: Path) -> None:
    app = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('up', flush=True)\n"
    app += "time.sleep(300)\n"
    root = make_repo(tmp_path / "r", '[app]\ncommand = "python app.py"\nready = { log = "up" }\n', {"app.py": app})
    code, doc = cli_json(root, "up", "--wait")
    assert code == 0, doc
    out = tmp_path / "down.json"
    res = cli(root, "down", "--out", str(out))
    assert res.returncode == 0, res.stderr
    down = json.loads(out.read_text())
    [killed] = down["sigkilled"]
    assert killed["service"] == "app" and killed["after_s"] >= 3.0  # not before the app's stop_timeout
    assert f"; app ignored SIGTERM: killed after {killed['after_s']:g} s;" in res.stdout, res.stdout
    assert stack_pids(doc["key"]) == []


SLOW_METRICS_APP = """
import http.server, os, time
time.sleep(2.5)  # a start VictoriaMetrics (scraping every second) would have scraped in vain before
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"slow_app_ready 1\\n" if self.path == "/metrics" else b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""


def test_a_service_is_scraped_only_once_ready_so_its_start_logs_no_scrape_error(
    tmp_path: Path, down_after: list[Path]
) -> None:
    toml = (
        '[stack]\nscrape_interval = "1s"\n'
        '[app]\ncommand = "python slow.py"\nready = { http = "/" }\nmetrics_path = "/metrics"\n'
    )
    root = make_repo(tmp_path / "r", toml, {"slow.py": SLOW_METRICS_APP})
    down_after.append(root)
    code, doc = cli_json(root, "up", "--wait", timeout=120)
    assert code == 0, doc
    port = doc["services"]["app"]["port"]

    def scraped() -> bool:
        code, res = cli_json(root, "metrics", 'slow_app_ready{service="app"}')
        return code == 0 and bool(res["series"])

    wait_until(scraped, timeout=30, what="the app's metric, scraped once the app was ready")
    vm_log = (root / ".legible" / "logs" / "victoria-metrics.log").read_text()
    assert f"127.0.0.1:{port}" not in vm_log, vm_log[-2000:]  # no "cannot scrape" of the app while it started
    read = root / ".legible" / "config" / "scrape-app.json"
    assert json.loads(read.read_text())[0]["targets"] == [f"127.0.0.1:{port}"]
