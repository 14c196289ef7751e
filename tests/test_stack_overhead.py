"""What `legible up --wait` and `legible down` do to be quick (issue 12), with real processes.

The supervisor is started early and handed the plan on stdin; VictoriaMetrics, the collector and the app
are spawned in the supervisor's first step; waits for a process's exit use a pidfd. Each test pins one of
these down so that none of them can cost a guarantee (nothing left behind, failures still reported).
The speed itself is measured in benchmarks/bench_stack.py, never asserted here.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from legible._errors import ConfigError
from legible._procs import ProcRef, wait_gone
from legible.plan import StackPlan
from legible.services.base import Probe, ServicePlan
from legible.supervisor import Supervisor
from tests.conftest import EXAMPLE_APP, cli_json, make_repo, stack_pids, wait_until

SHOP_TOML = '[app]\ncommand = "python app.py"\nready = { http = "/healthz" }\nmetrics_path = "/metrics"\n'


def _early_supervisors() -> list[psutil.Process]:
    """Child processes of this test that are a supervisor waiting for its plan (``legible.supervisor -``)."""
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.cmdline()[-5:-2] == ["-m", "legible.supervisor", "-"]:
                out.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return out


def test_a_supervisor_started_early_exits_at_end_of_stdin_having_started_nothing(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "legible.supervisor", "-"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0 and res.stdout == "" and res.stderr == ""
    assert list(tmp_path.iterdir()) == []


def test_up_that_fails_before_the_plan_kills_its_early_supervisor(tmp_path: Path) -> None:
    from legible import stack

    root = make_repo(tmp_path / "r", '[app]\ncommand = "python app.py"\nready_timout = 3\n')
    with pytest.raises(ConfigError, match="ready_timout"):
        stack.up(root, wait=True, timeout=30)
    assert _early_supervisors() == []  # stopped and reaped before up returned
    # and it stopped the collector it had started early (found by its LEGIBLE_STACK, as gc would)
    from legible.worktree import find_worktree

    assert stack_pids(find_worktree(root).key) == []
    assert not (root / ".legible" / "state.json").exists()


def test_legible_up_starts_its_supervisor_before_typer_and_a_usage_error_leaves_nothing(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", SHOP_TOML)
    script = (
        "import sys; import legible._early as early; sys.argv = ['legible', 'up', '--no-such-option']\n"
        "begin = early.begin\n"
        "def spy(*args):\n"
        "    pre = begin(*args)\n"
        "    print('typer' in sys.modules, len(pre.procs), pre.procs[0].pid, flush=True)\n"
        "    return pre\n"
        "early.begin = spy\n"
        "from legible.cli.main import main; main()"
    )
    res = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "no-such-option" in res.stderr, res.stderr
    typer_first, started, pid = res.stdout.split()
    assert (typer_first, started) == ("False", "1")  # started before typer was imported
    # up never handed it a plan: at the end of its stdin it stops its prewarmed collector and exits
    from legible.worktree import find_worktree

    key = find_worktree(root).key
    wait_until(lambda: not psutil.pid_exists(int(pid)) or psutil.Process(int(pid)).status() == psutil.STATUS_ZOMBIE, 15)
    wait_until(lambda: stack_pids(key) == [], 15, "the prewarmed collector gone")
    assert not (root / ".legible" / "state.json").exists()


def _supervisors_in(root: Path) -> list[psutil.Process]:
    """Live ``legible.supervisor`` processes whose working directory is ``root``."""
    out = []
    for p in psutil.process_iter(["pid"]):
        try:
            if "legible.supervisor" in p.cmdline() and p.cwd() == str(root) and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return out


def test_up_hands_the_plan_to_the_early_supervisor_which_logs_to_its_file(tmp_path: Path, down_after: list) -> None:
    root = make_repo(tmp_path / "r", '[app]\ncommand = "sleep 300"\nready = { log = "" }\n')
    down_after.append(root)
    code, doc = cli_json(root, "up", "--wait")
    assert code == 0 and doc["status"] == "ready", doc
    state = json.loads((root / ".legible" / "state.json").read_text())
    sup = psutil.Process(state["supervisor"]["pid"])
    assert sup.cmdline()[-5:-2] == ["-m", "legible.supervisor", "-"]  # the early one took the plan
    # the collector is the one it started before the plan existed, now running as the plan says
    coll = psutil.Process(state["services"]["collector"]["pid"])
    assert coll.cmdline()[-3:] == ["-m", "legible._prewarm", "legible.collector"] and coll.ppid() == sup.pid
    assert coll.cwd() == str(root) and coll.environ()["LEGIBLE_STACK"] == doc["key"]
    # its imports ran in a thread of lower priority: the collector itself (its main thread, and every thread it
    # started to serve, e.g. gRPC's) has the usual one; only the idle helper threads native libraries start
    # while imported (numpy's OpenBLAS worker, pyarrow's jemalloc purger) kept the lower one
    niced = {t.id for t in coll.threads() if _thread_nice(coll.pid, t.id) != sup.nice()}
    grpc_threads = {t.id for t in coll.threads() if _thread_comm(coll.pid, t.id).startswith(("grpc", "event_engine"))}
    assert coll.pid not in niced and grpc_threads and not grpc_threads & niced
    assert len(niced) <= _threads_started_by_importing("legible.collector") - 1
    assert Path(f"/proc/{coll.pid}/fd/1").resolve() == root / ".legible" / "logs" / "collector.log"
    assert "collector: ready" in (root / ".legible" / "logs" / "collector.log").read_text()
    # its stdout and stderr are the supervisor log now, its stdin no longer up's pipe
    log = root / ".legible" / "logs" / "supervisor.log"
    assert {f.fd: f.path for f in sup.open_files()}.get(1) == str(log)

    # up's notify pipe (the early supervisor's stdout) is closed once the stack is ready: the one pipe left
    # is the supervisor's own signal wake-up pipe (both its ends). Polled: at ready the supervisor also
    # spawns the fork server, and subprocess holds an exec-error pipe until that child has exec'd.
    def pipes() -> set[str]:
        links = []
        for fd in os.listdir(f"/proc/{sup.pid}/fd"):
            with contextlib.suppress(FileNotFoundError):
                links.append(os.readlink(f"/proc/{sup.pid}/fd/{fd}"))
        return {link for link in links if link.startswith("pipe:")}

    wait_until(lambda: len(pipes()) == 1, 10, "the supervisor holding only its wake-up pipe")
    assert Path(f"/proc/{sup.pid}/fd/2").resolve() == log and Path(f"/proc/{sup.pid}/fd/0").resolve() == Path(
        "/dev/null"
    )
    assert log.stat().st_mode & 0o777 == 0o600
    code, again = cli_json(root, "up", "--wait")  # a live stack: no second supervisor is started
    assert code == 0 and again["already_running"] and _supervisors_in(root) == [sup]
    code, down = cli_json(root, "down")
    assert code == 0 and down["was_running"]
    assert stack_pids(doc["key"]) == [] and _supervisors_in(root) == []


def test_the_notify_pipe_gets_a_line_per_change_and_closes_when_done_or_when_up_is_gone() -> None:
    from legible.supervisor import _notify

    r, w = os.pipe()
    fds = [w]
    _notify(fds, done=False)  # a change while starting: a line, the pipe stays open
    assert fds == [w] and os.read(r, 100) == b"\n"
    _notify(fds, done=True)  # no longer starting: a last line, then end of file
    assert fds == [] and os.read(r, 100) == b"\n" and os.read(r, 100) == b""
    os.close(r)
    r, w = os.pipe()
    os.close(r)  # up exited without reading: no error, the pipe is closed
    fds = [w]
    _notify(fds, done=False)
    assert fds == []
    with pytest.raises(OSError):
        os.fstat(w)


def test_the_app_starts_in_the_same_step_as_victoriametrics_and_the_collector(tmp_path: Path) -> None:
    from legible.config import parse_config
    from legible.lease import Lease
    from legible.plan import build_plan
    from legible.worktree import Worktree, worktree_key

    root = make_repo(tmp_path / "repo", "[app]\ncommand='true'\n")
    wt = Worktree(root, worktree_key(root))
    plan = build_plan(wt, parse_config({"app": {"command": "true"}}), Lease(wt.key, str(root), 20000))
    spawned: list[str] = []

    class Proc:
        pid = 10**7  # above any pid_max: nothing real is ever signalled

        def poll(self) -> int | None:
            return None

    def spawn(sp: ServicePlan) -> Proc:
        spawned.append(sp.name)
        return Proc()

    sup = Supervisor(plan, None, spawn=spawn, probe=lambda sp, off: False, clock=lambda: 1.0)
    sup.step()
    assert spawned == ["app", "victoria-metrics", "collector"]  # the app first: up waits for it last


def test_a_service_that_waits_for_a_database_still_waits_for_it() -> None:
    def svc(name: str, deps: list[str]) -> ServicePlan:
        return ServicePlan(name, "app", [name], "/", {}, Probe("tcp", "1"), 5.0, deps, log="")

    plan = StackPlan("k", "/w", 20000, {}, [svc("db", []), svc("app", ["db"])], {}, {}, "h")
    spawned: list[str] = []

    class Proc:
        pid = 10**7

        def poll(self) -> int | None:
            return None

    def spawn(sp: ServicePlan) -> Proc:
        spawned.append(sp.name)
        return Proc()

    sup = Supervisor(plan, None, spawn=spawn, probe=lambda sp, off: False)
    sup.step()
    sup.step()
    assert spawned == ["db"]


def test_wait_gone_sees_the_exit_of_a_process_that_is_not_its_child() -> None:
    # `sh` starts `sleep` in the background and exits: the sleep is reparented, as a supervisor is for `down`
    out = subprocess.run(["sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True)
    ref = ProcRef.of(int(out.stdout))
    assert ref is not None and ref.alive()
    assert wait_gone(ref, 0.05) is False  # still running: the wait ends at its timeout
    psutil.Process(ref.pid).terminate()
    assert wait_gone(ref, 30.0) is True
    assert wait_gone(ref, 30.0) is True  # gone already (no pidfd can be opened): True at once


def test_down_of_the_example_app_stops_every_tier_and_frees_everything(tmp_path: Path) -> None:
    shop = EXAMPLE_APP.parent
    files = {  # the shop's sources only: a run of the shop leaves __pycache__/*.pyc (not text) beside them
        p.relative_to(shop).as_posix(): p.read_text()
        for p in shop.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.name != "legible.toml"
    }
    root = make_repo(tmp_path / "shop", SHOP_TOML, files)
    code, up = cli_json(root, "up", "--wait")
    assert code == 0 and up["status"] == "ready", up
    code, down = cli_json(root, "down")
    assert code == 0 and down["sigkilled"] == [] and set(down["stopped"]) == {"victoria-metrics", "collector", "app"}
    state = json.loads((root / ".legible" / "state.json").read_text())
    assert state["status"] == "stopped"
    assert all(s["status"] == "stopped" for s in state["services"].values()), state["services"]
    assert stack_pids(up["key"]) == []
    assert not (root / ".legible" / "supervisor.sock").exists()
    assert cli_json(root, "ps")[1]["stacks"] == []
    # the collector drained at SIGTERM (its own last line), after the app was gone
    log = (root / ".legible" / "logs" / "collector.log").read_text()
    assert "collector: stopped; wrote the" in log
    sup_log = (root / ".legible" / "logs" / "supervisor.log").read_text().splitlines()
    order = [ln.split()[2].rstrip(",") for ln in sup_log if ln.startswith("supervisor: stopped ")]
    assert order == ["app", "collector", "victoria-metrics"], sup_log


ORPHAN_APP = """
import subprocess, time
# a daemon the app leaves behind: `sh` backgrounds it and exits, so it has no parent of the app's any more
subprocess.run(["sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $! > orphan.pid"], check=True)
print("ready", flush=True)
time.sleep(300)
"""


def test_the_supervisor_adopts_and_reaps_what_a_service_orphans(tmp_path: Path, down_after: list) -> None:
    root = make_repo(
        tmp_path / "r", '[app]\ncommand = "python app.py"\nready = { log = "ready" }\n', {"app.py": ORPHAN_APP}
    )
    down_after.append(root)
    code, doc = cli_json(root, "up", "--wait")
    assert code == 0 and doc["status"] == "ready", doc
    orphan = int((root / "orphan.pid").read_text())
    state = json.loads((root / ".legible" / "state.json").read_text())
    # reparented to the supervisor (a subreaper), not to PID 1: it reaps the orphan as soon as it exits
    assert psutil.Process(orphan).ppid() == state["supervisor"]["pid"]
    code, down = cli_json(root, "down")
    assert code == 0 and down["sigkilled"] == [] and down["killed_orphans"] == []
    assert not psutil.pid_exists(orphan)  # stopped with its group (SIGTERM) and reaped, not left a zombie
    assert stack_pids(doc["key"]) == []


def _thread_nice(pid: int, tid: int) -> int:
    """The nice value of thread ``tid`` of process ``pid`` (``/proc/PID/task/TID/stat``, field 19)."""
    return int(Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def _thread_comm(pid: int, tid: int) -> str:
    return Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()


def _threads_started_by_importing(module: str) -> int:
    """How many threads a fresh interpreter has right after ``import module`` (its main thread included)."""
    script = f"import os, {module}; print(len(os.listdir('/proc/self/task')))"
    return int(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)


def test_prewarm_imports_run_in_a_thread_of_lower_priority_and_skip_a_module_that_fails(tmp_path: Path) -> None:
    (tmp_path / "prewarm_probe_mod.py").write_text(
        "import os, threading\nNICE = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())\n"
    )
    script = (
        "import os, sys, threading; sys.path.insert(0, sys.argv[1])\n"
        "from legible._prewarm import import_in_background\n"
        "before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())\n"
        "import_in_background(['no_such_module_here', 'prewarm_probe_mod'], nice=7).join()\n"
        "import prewarm_probe_mod\n"
        "print(before, prewarm_probe_mod.NICE, os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))"
    )
    res = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    before, in_thread, after = (int(x) for x in res.stdout.split())
    assert in_thread == min(19, before + 7) and after == before  # the thread's own, the rest unchanged


def test_the_prewarm_thread_stops_between_modules_and_imports_only_what_the_collector_imports() -> None:
    script = (
        "import sys, threading\n"
        "from legible._prewarm import COLLECTOR_IMPORTS, import_in_background\n"
        "stop = threading.Event(); stop.set()\n"
        "import_in_background(['json', 'colorsys'], stop=stop).join()\n"
        "print('colorsys' in sys.modules)\n"
        "import legible.collector, legible.collector.__main__\n"
        "print([m for m in COLLECTOR_IMPORTS if m not in sys.modules])"
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["False", "[]"]  # stopped before its first module; no stale hint


def test_readiness_probes_tell_a_refused_port_from_an_answering_one(tmp_path: Path) -> None:
    import http.server
    import socket
    import threading

    from legible.supervisor import probe_ready

    def plan(kind: str, target: str) -> ServicePlan:
        return ServicePlan("svc", "app", ["true"], str(tmp_path), {}, Probe(kind, target), 1.0, log=str(tmp_path / "l"))

    with socket.socket() as s:  # a port nobody listens on (bound, never listening: refused)
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
        for host in ("127.0.0.1", "localhost"):
            assert not probe_ready(plan("http", f"http://{host}:{closed}/healthz"))
        assert not probe_ready(plan("tcp", str(closed)))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(503 if self.path == "/down" else 200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        port = srv.server_address[1]
        for host in ("127.0.0.1", "localhost"):
            assert probe_ready(plan("http", f"http://{host}:{port}/healthz?x=1"))
            assert not probe_ready(plan("http", f"http://{host}:{port}/down"))  # 5xx: listening, not ready
        assert probe_ready(plan("tcp", str(port)))
    finally:
        srv.shutdown()
        srv.server_close()


def test_up_and_down_end_with_their_exit_status_and_whole_document(tmp_path: Path) -> None:
    bad = make_repo(tmp_path / "bad", "[app]\ncommand = 'true'\nbogus = 1\n")
    code, doc = cli_json(bad, "up", "--wait")
    assert code == 2 and doc["schema"] == "legible.error/v1" and "bogus" in doc["message"], doc
    code, doc = cli_json(bad, "down")
    assert code == 0 and doc["schema"] == "legible.down/v1" and not doc["was_running"]


def test_every_command_freezes_the_heap_at_exit_so_the_last_collections_skip_it() -> None:
    script = (
        "import atexit, gc, sys; from legible.cli.main import main; sys.argv = ['legible', 'doctor', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(gc.get_freeze_count() == 0); atexit._run_exitfuncs(); print(gc.get_freeze_count() > 0)"
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert res.stdout.split()[-2:] == ["True", "True"], res.stderr


def test_up_starts_its_supervisor_before_importing_the_stack_code_or_pydantic(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", "[app]\ncommand = 'true'\n")
    script = (
        "import sys; from legible._early import begin, discard; pre = begin(); "
        "heavy = sorted(m for m in ('legible.stack', 'legible.config', 'pydantic', 'typer') if m in sys.modules); "
        "[discard(p) for p in pre.procs]; print(len(pre.procs), heavy)"
    )
    res = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["1", "[]"]  # started, and none of them imported yet


def _imported(stderr: str) -> set[str]:
    """The modules ``python -X importtime`` reported."""
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def test_a_stamped_up_plans_without_pydantic_and_answers_as_a_validated_one(tmp_path: Path, down_after: list) -> None:
    root = make_repo(tmp_path / "r", '[app]\ncommand = "sleep 300"\nready = { log = "" }\n')
    down_after.append(root)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}

    def up(*args: str) -> tuple[int, dict, set[str]]:
        cmd = [sys.executable, "-X", "importtime", "-m", "legible.cli.main", "up", *args, "--json"]
        res = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=120, env=env)
        return res.returncode, json.loads(res.stdout), _imported(res.stderr)

    def shape(doc: dict) -> dict:
        return {**doc, "took_ms": 0, "ready_ms": 0, "services": {n: s["status"] for n, s in doc["services"].items()}}

    code, first, imported = up("--wait")
    assert code == 0 and first["status"] == "ready", first
    assert "pydantic" in imported  # the file validated (then stamped)
    assert cli_json(root, "down")[0] == 0
    code, second, imported = up("--wait", "--timeout", "100")
    assert code == 0 and second["status"] == "ready", second
    heavy = sorted(m for m in imported if m.split(".")[0] in ("pydantic", "pydantic_core"))
    assert heavy == [] and "legible.config" not in imported
    assert shape(second) == {**shape(first), "endpoints": second["endpoints"]}
    assert second["services"].keys() == first["services"].keys()
    code, again, _ = up("--wait")  # already running: reported as before
    assert code == 0 and again["already_running"] is True and again["note"] == ""
    (root / "legible.toml").write_text('[app]\ncommand = "sleep 300"\nready = { lgo = "" }\n')
    res = subprocess.run(
        [sys.executable, "-m", "legible.cli.main", "up", "--wait"], cwd=root, capture_output=True, text=True, env=env
    )
    assert (res.returncode, res.stdout) == (2, "")
    assert res.stderr.startswith("error: legible.toml: app.ready.lgo: unknown key\nhint: edit "), res.stderr


def test_an_early_supervisor_stops_importing_ahead_once_the_plan_is_readable() -> None:
    from legible.supervisor import _STACK_MODULES, _import_stack_modules

    r, w = os.pipe()
    try:
        assert _import_stack_modules(stdin=r) == list(_STACK_MODULES)  # nothing to read yet: all of them
        os.write(w, b"/path/to/plan.json\n")
        assert _import_stack_modules(stdin=r) == []  # the plan is there: the rest is imported where used
        assert os.read(r, 100) == b"/path/to/plan.json\n"  # and the line is left for the supervisor to read
    finally:
        os.close(r)
        os.close(w)


def test_the_lease_registry_imports_filelock_only_when_it_takes_the_lock(tmp_path: Path) -> None:
    script = (
        "import sys; from pathlib import Path; from legible.lease import LeaseRegistry; "
        f"reg = LeaseRegistry(Path({str(tmp_path / 'leases.json')!r})); a = 'filelock' in sys.modules; "
        "reg.all(); print(a, 'filelock' in sys.modules)"
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["False", "True"]
