"""The per-stack fork server (legible.forkserver) on a real shop stack: same answers, the caller's context.

Every command is run twice, in-process (``LEGIBLE_FORKSERVER=0``) and through the stack's fork server, and
the two runs must agree byte for byte on stdout, stderr and exit code; the server's count of served calls
(``.legible/run/forkserver.json``) proves the second run went there.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import psutil
import pytest
import requests

from legible.schemas import load as load_schema

from .conftest import REPO, cli_json, wait_until
from .test_stack import SHOP_TOML, shop_repo

TOML = (
    SHOP_TOML
    + """
[checks.slow-endpoint]
span = { name = "GET /slow", max = "1s" }
"""
)


def run(
    root: Path, *args: str, routed: bool = True, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """``legible ARGS`` as an agent runs it, through the fork server or (``routed=False``) in-process."""
    full = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "100", **env}
    full["LEGIBLE_FORKSERVER"] = "1" if routed else "0"
    return subprocess.run(
        [sys.executable, "-m", "legible.cli.main", *args],
        cwd=cwd or root,
        capture_output=True,
        text=True,
        timeout=120,
        env=full,
    )


def stats(root: Path) -> dict:
    return json.loads((root / ".legible" / "run" / "forkserver.json").read_text())


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory):
    """A shop stack with the browser, a slow request (fails the check) and an error, its fork server serving."""
    base = tmp_path_factory.mktemp("forkserver")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_STATE_HOME", str(base / "xdg"))
        root = shop_repo(base / "shop", TOML)
        (root / "sub").mkdir()
        try:
            code, doc = cli_json(root, "up", "--wait", "--browser")
            assert code == 0, doc
            app = doc["endpoints"]["app"]
            requests.get(f"{app}/slow?ms=1200", timeout=10)
            requests.get(f"{app}/error", timeout=10)
            wait_until(lambda: "GET /slow" in run(root, "traces", "--since", "5m").stdout, 20, "the GET /slow span")
            wait_until(lambda: (root / ".legible" / "run" / "cli.sock").exists(), 30, "the fork server's socket")
            yield root, doc
        finally:
            run(root, "down", routed=False)


def numbers_out(text: str) -> str:
    """``text`` with every number as ``N``: for answers that carry a query's own time (took_ms, now, refs)."""
    return re.sub(r"\d+(\.\d+)?", "N", text)


def ages_out(text: str) -> str:
    """``text`` with relative ages ("9s ago", "3 s ago", ``"age_s": 10.9``) as ``N``: they follow the clock."""
    return re.sub(r"\b\d+(\.\d+)? ?(ms|s|m|h|d) ago\b|\"age_s\": [\d.]+", "N", text)


def same(
    root: Path, *args: str, cwd: Path | None = None, volatile: bool = False, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``args`` in-process, then routed; assert both agree byte for byte and the routed run was served.

    Relative ages ("3 s ago") follow the clock and are left out; a pair is tried up to 3 times, so only a
    difference that persists fails. With ``volatile``, all numbers are left out of the comparison (the
    answer carries its own timing, e.g. ``took_ms``, or the time of asking).
    """
    norm = numbers_out if volatile else ages_out
    for _attempt in range(3):
        before = stats(root)["served"]
        local = run(root, *args, routed=False, cwd=cwd, **env)
        remote = run(root, *args, cwd=cwd, **env)
        # the server counts a call when its spare reports it, beside the command: the count may trail the exit
        wait_until(lambda: stats(root)["served"] == before + 1, 10, f"legible {' '.join(args)} routed")  # noqa: B023
        got = (remote.returncode, norm(remote.stdout), norm(remote.stderr))
        want = (local.returncode, norm(local.stdout), norm(local.stderr))
        if got == want:
            return remote
    assert got == want, args
    return remote


def test_answers_are_identical(shop: tuple[Path, dict]) -> None:
    root, _doc = shop
    trace_id = json.loads(run(root, "traces", "--since", "5m", "--json").stdout)["traces"][0]["trace_id"]
    now = time.time()
    window = [
        "--since",
        time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now - 600)),
        "--until",
        time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now)),
    ]
    jsonschema.validate(stats(root), load_schema("legible.forkserver/v1"))
    first = run(root, "browser", "open", "/")  # Chromium starts at the first browser call (and says so once)
    assert first.returncode == 0 and "started Chromium" in first.stderr, first.stderr
    # launched by the stack's browser agent, as in-process: nothing of it hangs off the fork server
    chromium = psutil.Process(int((root / ".legible" / "browser" / "chromium.pid").read_text()))
    agent = json.loads((root / ".legible" / "state.json").read_text())["services"]["chromium"]["pid"]
    assert agent in [p.pid for p in chromium.parents()]
    assert stats(root)["pid"] not in [p.pid for p in chromium.parents()]
    cases = [
        (["status"], 0),
        (["status", "--json"], 0),
        (["ps", "--json"], 0),
        (["deploys"], 0),
        (["logs", *window, "--level", "error"], 0),
        (["logs", *window, "--raw", "--service", "app", "--json"], 0, True),
        (["traces", *window], 0),
        (["traces", *window, "--errors", "--json"], 0),
        (["trace", trace_id], 0),
        (["trace", trace_id, "--json"], 0),
        (["trace", "0000deadbeef"], None),
        (["check", "slow-endpoint"], 1, True),
        (["check", "slow-endpoint", "--json"], 1, True),
        (["metrics", "sum(("], 2, True),
        (["logs", "--bogus"], 2),
        (["logs", "--bogus", "--json"], 2),
        (["trace"], 2),
        (["logs", "--help"], 0),
        (["browser", "snapshot"], 0, True),
        (["browser", "click", "#no-such-thing", "--timeout", "200ms"], None),
        (["journey", "list", "--json"], 0),
        (["diff"], None),
        (["diff", "--json"], None, True),
    ]
    wrong = []
    for args, code, *volatile in cases:
        try:
            res = same(root, *args, volatile=bool(volatile))
        except AssertionError as exc:
            wrong.append(f"{args}: {exc}")
            continue
        if code is not None and res.returncode != code:
            wrong.append(f"{args}: exit {res.returncode}, expected {code}: {res.stdout[-300:]} {res.stderr[-300:]}")
    assert not wrong, "\n".join(wrong)


def test_the_routed_client_imports_neither_typer_nor_typing(shop: tuple[Path, dict]) -> None:
    """The client's share of a routed call: the standard library's os, marshal, signal and socket, no more."""
    from .test_cli_start import PROBE

    root, _doc = shop
    before = stats(root)["served"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "100", "LEGIBLE_FORKSERVER": "1"}
    res = subprocess.run(
        [sys.executable, "-c", PROBE, "logs", "--help"], cwd=root, env=env, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0 and "Usage: legible logs" in res.stdout, res.stderr[-500:]
    wait_until(lambda: stats(root)["served"] == before + 1, 10, "the probe's call routed")
    imported = set(json.loads(res.stderr.rstrip("\n").rsplit("\n", 1)[-1].removeprefix("MODULES ")))
    assert {"legible.forkserver", "socket", "signal"} <= imported  # the atexit probe ran: exit handlers kept
    assert not imported & {"typing", "typer", "click", "legible.cli._app", "threading"}, imported


def test_client_environment_and_cwd_win(shop: tuple[Path, dict]) -> None:
    root, _doc = shop
    narrow = same(root, "traces", "--help", COLUMNS="60")
    wide = same(root, "traces", "--help", COLUMNS="120")
    assert narrow.stdout != wide.stdout  # the caller's terminal width, not the server's
    sub = same(root, "status", "--json", cwd=root / "sub")
    assert json.loads(sub.stdout)["worktree"] == str(root)
    trace_id = json.loads(run(root, "traces", "--since", "10m", "--json").stdout)["traces"][0]["trace_id"]
    tz = same(root, "trace", trace_id, TZ="Asia/Tokyo")  # the tree shows local clock times
    utc = same(root, "trace", trace_id, TZ="UTC")
    assert tz.returncode == utc.returncode == 0
    assert tz.stdout != utc.stdout, tz.stdout  # local times: the caller's TZ (time.tzset in the child)


def test_stamp_mismatch_runs_in_process(shop: tuple[Path, dict]) -> None:
    root, _doc = shop
    before = stats(root)
    local = run(root, "logs", "--bogus", routed=False)
    other = run(root, "logs", "--bogus", PYTHONHASHSEED="7")  # another interpreter configuration: refused
    after = stats(root)
    assert (after["served"], after["refused"]) == (before["served"], before["refused"] + 1)
    assert (other.returncode, other.stdout, other.stderr) == (local.returncode, local.stdout, local.stderr)


def follow(root: Path, routed: bool) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "LEGIBLE_FORKSERVER": "1" if routed else "0"}
    return subprocess.Popen(
        [sys.executable, "-m", "legible.cli.main", "logs", "--follow", "--since", "10m", "--raw"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def gone(pid: int) -> bool:
    """The process ``pid`` has exited (a zombie not yet reaped counts as exited)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def server_children(root: Path) -> list[psutil.Process]:
    """The fork server's children running a command: not the idle spare, which stays in the server's cwd."""
    server = psutil.Process(stats(root)["pid"])
    out = []
    for p in server.children():
        try:
            if p.status() != psutil.STATUS_ZOMBIE and p.cwd() != server.cwd():
                out.append(p)
        except psutil.NoSuchProcess:
            continue
    return out


def test_killed_client_ends_its_command(shop: tuple[Path, dict]) -> None:
    root, _doc = shop
    wait_until(lambda: server_children(root) == [], 10, "no command running")
    client = follow(root, routed=True)
    child = wait_until(lambda: server_children(root), 20, "the forked logs --follow")[0]
    client.kill()  # kill -9: no signal to forward
    client.communicate()
    wait_until(lambda: gone(child.pid), 10, "child gone")
    wait_until(lambda: server_children(root) == [], 10, "the child reaped")


def test_ctrl_c_stops_follow_as_in_process(shop: tuple[Path, dict]) -> None:
    root, _doc = shop
    codes = []
    for routed in (False, True):
        proc = follow(root, routed)
        assert proc.stdout is not None
        assert proc.stdout.readline()  # following: the window's lines came out
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        codes.append((proc.returncode, err))
    assert codes[0] == codes[1]
    assert codes[0][0] == 0, codes  # logs --follow ends cleanly on Ctrl-C


def socket_inodes(pid: int) -> set[str]:
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:"):
            out.add(link)
    return out


def test_a_command_holds_no_other_commands_connection(shop: tuple[Path, dict]) -> None:
    root, _doc = shop
    first = follow(root, routed=True)
    child_a = wait_until(lambda: server_children(root), 20, "the first forked logs --follow")[0]
    second = follow(root, routed=True)
    child_b = wait_until(lambda: [c for c in server_children(root) if c.pid != child_a.pid], 20, "the second")[0]
    try:
        assert socket_inodes(child_a.pid) & socket_inodes(child_b.pid) == set()
    finally:
        for client in (first, second):
            client.send_signal(signal.SIGINT)
            client.communicate(timeout=30)


def test_ctrl_z_stops_and_continues_the_command(shop: tuple[Path, dict]) -> None:
    root, _doc = shop
    client = follow(root, routed=True)
    child = wait_until(lambda: server_children(root), 20, "the forked logs --follow")[0]
    client.send_signal(signal.SIGTSTP)  # Ctrl-Z: the client stops, and its command with it
    wait_until(lambda: child.status() == psutil.STATUS_STOPPED, 10, "the command stopped")
    client.send_signal(signal.SIGCONT)  # fg
    wait_until(lambda: child.status() != psutil.STATUS_STOPPED, 10, "the command running again")
    client.send_signal(signal.SIGINT)
    client.communicate(timeout=30)
    assert client.returncode == 0


def test_a_command_killed_by_a_signal_kills_its_client_alike(shop: tuple[Path, dict]) -> None:
    root, _doc = shop
    client = follow(root, routed=True)
    child = wait_until(lambda: server_children(root), 20, "the forked logs --follow")[0]
    child.kill()  # as if the command itself had been killed: the caller sees the same -9
    client.communicate(timeout=30)
    assert client.returncode == -signal.SIGKILL


def test_the_spare_answers_the_first_and_the_20th_call_alike(shop: tuple[Path, dict]) -> None:
    """Every call is answered by a spare forked ahead; an old spare answers as a fresh one, byte for byte."""
    root, _doc = shop
    want = run(root, "logs", "--help", routed=False)
    status = ages_out(run(root, "status", routed=False).stdout)
    spares = set()
    for i in range(20):
        spare = wait_until(lambda: stats(root)["spare"], 10, "a spare forked for the next call")
        assert spare in [p.pid for p in psutil.Process(stats(root)["pid"]).children()]
        spares.add(spare)
        before = stats(root)["served"]
        got = run(root, "logs", "--help") if i % 2 == 0 else run(root, "status")
        wait_until(lambda: stats(root)["served"] == before + 1, 10, f"call {i} served")  # noqa: B023
        if i % 2 == 0:
            assert (got.returncode, got.stdout, got.stderr) == (want.returncode, want.stdout, want.stderr), i
        else:
            assert got.returncode == 0 and ages_out(got.stdout) == status, (i, got.stdout, got.stderr)
    assert len(spares) == 20  # one spare per call: none serves twice
    old = wait_until(lambda: stats(root)["spare"], 10, "a spare")
    before = stats(root)["served"]
    aged = psutil.Process(old).create_time()
    wait_until(lambda: time.time() - aged > 2, 10, "a spare idle for 2 s")
    late = run(root, "logs", "--help")  # an aged spare: same answer, and it was that spare that took it
    wait_until(lambda: stats(root)["served"] == before + 1, 10, "the aged spare's call served")
    assert (late.returncode, late.stdout, late.stderr) == (want.returncode, want.stdout, want.stderr)
    wait_until(lambda: gone(old), 10, "the aged spare, its call done, gone")


def test_calls_at_once_are_each_served(shop: tuple[Path, dict]) -> None:
    """A burst: one spare takes the first call, the server forks a spare per waiting call at once."""
    root, _doc = shop
    want = run(root, "logs", "--help", routed=False)
    before = stats(root)["served"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "100", "LEGIBLE_FORKSERVER": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "legible.cli.main", "logs", "--help"],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(5)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert (proc.returncode, out, err) == (want.returncode, want.stdout, want.stderr)
    wait_until(lambda: stats(root)["served"] == before + 5, 10, "all 5 served")


def test_a_killed_spare_is_replaced(shop: tuple[Path, dict]) -> None:
    """A spare killed while idle (no report): the server logs it and forks another; calls are still served."""
    root, _doc = shop
    spare = wait_until(lambda: stats(root)["spare"], 10, "the spare")
    psutil.Process(spare).kill()
    wait_until(lambda: stats(root)["spare"] not in (0, spare), 10, "another spare")
    same(root, "logs", "--help")  # served (counted) by the new spare, the in-process answer
    log = (root / ".legible" / "run" / "forkserver.log").read_text()
    assert f"the spare child {spare} ended unasked" in log, log


def test_down_leaves_no_fork_server(shop: tuple[Path, dict]) -> None:
    root, _doc = shop
    pid = stats(root)["pid"]
    spare = wait_until(lambda: stats(root)["spare"], 10, "the spare")
    sock = root / ".legible" / "run" / "cli.sock"
    assert psutil.pid_exists(pid) and sock.exists()
    res = run(root, "down", routed=False)
    assert res.returncode == 0, res.stderr
    wait_until(lambda: not psutil.pid_exists(pid), 10, "the fork server gone")
    wait_until(lambda: gone(spare), 10, "its spare child gone")
    assert not sock.exists()
    assert not (root / ".legible" / "run" / "forkserver.json").exists()
    res = run(root, "status")  # no server: in-process, same answer as ever
    assert res.returncode == 0 and "stopped" in res.stdout, res.stdout


def test_a_module_changed_on_disk_stops_the_server(tmp_path: Path) -> None:
    """The server imported a module whose file then changed: it refuses (the call runs in-process) and stops."""
    extra = tmp_path / "site"
    extra.mkdir()
    custom = extra / "sitecustomize.py"  # imported at every start, so the server holds it too
    custom.write_text("# imported by every interpreter of this test\n")
    env = {"PYTHONPATH": f"{REPO}{os.pathsep}{extra}", "XDG_STATE_HOME": str(tmp_path / "xdg")}
    root = shop_repo(tmp_path / "shop")
    try:
        up = run(root, "up", "--wait", routed=False, **env)
        assert up.returncode == 0, up.stderr
        wait_until(lambda: (root / ".legible" / "run" / "cli.sock").exists(), 30, "the fork server's socket")
        pid = stats(root)["pid"]
        assert run(root, "logs", "--bogus", **env).returncode == 2
        wait_until(lambda: stats(root)["served"] == 1, 10, "the call served")
        spare = wait_until(lambda: stats(root)["spare"], 10, "a spare forked before the edit")
        later = custom.stat().st_mtime + 5
        os.utime(custom, (later, later))
        local = run(root, "logs", "--bogus", routed=False, **env)
        refused = run(root, "logs", "--bogus", **env)
        assert (refused.returncode, refused.stdout, refused.stderr) == (local.returncode, local.stdout, local.stderr)
        wait_until(lambda: not psutil.pid_exists(pid), 10, "the stale fork server gone (and reaped)")
        wait_until(lambda: gone(spare), 10, "the spare forked before the edit gone")
        assert not (root / ".legible" / "run" / "cli.sock").exists()
        log = (root / ".legible" / "run" / "forkserver.log").read_text()
        assert "sitecustomize.py changed on disk" in log, log
    finally:
        run(root, "down", routed=False, **env)


def test_a_spare_ends_with_its_server(tmp_path: Path) -> None:
    """The server killed by SIGKILL (no handler runs): its idle spare sees its channel end and exits."""
    env = {"XDG_STATE_HOME": str(tmp_path / "xdg")}
    root = shop_repo(tmp_path / "shop")
    try:
        up = run(root, "up", "--wait", routed=False, **env)
        assert up.returncode == 0, up.stderr
        wait_until(lambda: (root / ".legible" / "run" / "cli.sock").exists(), 30, "the fork server's socket")
        spare = wait_until(lambda: stats(root)["spare"], 10, "the spare")
        server = psutil.Process(stats(root)["pid"])
        assert spare in [p.pid for p in server.children()]
        server.kill()
        wait_until(lambda: gone(spare), 10, "the spare gone with its server")
        res = run(root, "status", **env)  # a socket with no server behind it: the call runs in-process
        assert res.returncode == 0 and ": ready" in res.stdout, (res.stdout, res.stderr)
    finally:
        run(root, "down", routed=False, **env)


def test_module_watch_sees_a_change_in_a_process_forked_before_it(tmp_path: Path) -> None:
    """:class:`legible.forkserver._Modules` as a spare uses it: forked first, the file edited after.

    A change (rewrite, touch, replace by rename) is seen by the forked process; an event that changes no
    module file (a new file beside it) leads to a full check that finds nothing.
    """
    from legible.forkserver import _module_files, _Modules

    mod = tmp_path / "mod.py"
    mod.write_text("x = 1\n")
    files = {str(mod): (mod.stat().st_mtime_ns, mod.stat().st_size)}
    assert set(_module_files()) >= {__file__}  # what the server watches: every imported module's file
    edits = {
        "rewrite": lambda: mod.write_text("x = 22\n"),
        "touch": lambda: os.utime(mod, ns=(mod.stat().st_atime_ns, mod.stat().st_mtime_ns + 10**9)),
        "rename": lambda: ((tmp_path / "new.py").write_text("x = 1\n"), os.replace(tmp_path / "new.py", mod)),
    }
    for name, edit in edits.items():
        mod.write_text("x = 1\n")
        files = {str(mod): (mod.stat().st_mtime_ns, mod.stat().st_size)}
        modules = _Modules(files)
        assert modules.watch is not None and modules.maybe_changed() is None
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the "spare": waits for the edit, then asks as a call would
            os.close(w)
            os.read(r, 1)
            os._exit(0 if modules.maybe_changed() == str(mod) else 1)
        os.close(r)
        edit()
        os.write(w, b"x")
        os.close(w)
        _pid, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, name
        modules.watch.close()
    mod.write_text("x = 1\n")
    modules = _Modules({str(mod): (mod.stat().st_mtime_ns, mod.stat().st_size)})
    (tmp_path / ".mod.py.swp").write_text("an editor's swap file")
    assert modules.maybe_changed() is None  # an event, a full check, no change
    assert modules.renew() is None and modules.maybe_changed() is None  # renewed: the fast path again
    modules.watch.close()


@pytest.mark.skipif(
    os.getuid() != 0 or not os.path.exists("/usr/bin/python3"), reason="needs root and Debian's python3"
)
def test_the_client_sends_nothing_to_a_server_of_another_user() -> None:
    """A socket someone else listens on (the ``/tmp`` fallback path can be taken first) gets no environment.

    A real listener, run as ``nobody``, stands where the stack's socket would be; the client must see its
    ``SO_PEERCRED`` uid, run the command in-process instead and send it not one byte.
    """
    import shutil
    import tempfile

    from legible.forkserver import run_remote, socket_path

    top = Path(tempfile.mkdtemp(prefix="legible-peer-", dir="/tmp"))  # pytest's tmp_path is root's alone
    root = top / "wt"
    (root / ".git").mkdir(parents=True)
    run_dir = root / ".legible" / "run"
    run_dir.mkdir(parents=True)
    for d in (top, root, root / ".legible", run_dir):
        d.chmod(0o777)
    sock = socket_path(str(root / ".legible"))
    got = top / "received"
    listener = subprocess.Popen(
        [
            "/usr/bin/python3",  # nobody cannot run the venv's interpreter under /root; the stdlib is enough
            "-c",
            "import socket, sys\n"
            "s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(); print('ready', flush=True)\n"
            "c, _ = s.accept(); c.settimeout(5)\n"
            "try: data = c.recv(65536)\n"
            "except OSError: data = b''\n"
            "open(sys.argv[2], 'w').write(str(len(data)))\n",
            sock,
            str(got),
        ],
        user=65534,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
        cwd = os.getcwd()
        os.chdir(root)
        try:
            assert run_remote(["legible", "logs"]) is None  # not served there: the caller runs it itself
        finally:
            os.chdir(cwd)
        listener.wait(timeout=30)
        assert got.read_text() == "0"
    finally:
        listener.kill()
        listener.wait()
        if listener.stdout is not None:
            listener.stdout.close()
        shutil.rmtree(top, ignore_errors=True)
