"""A per-stack fork server: ``legible`` commands on a running stack start warm instead of importing typer.

Starting ``legible logs`` costs more in imports (typer and its click, psutil, http.client, legible's own
modules) than in the query itself. The standard lever is a warm process that forks per call (Python's
``multiprocessing`` "forkserver", Android's zygote, Gradle's daemon): the supervisor starts
``python -P -m legible.forkserver --state-dir DIR`` once the stack is ready, it imports what the commands
use and listens on ``.legible/run/cli.sock``; :func:`run_remote`, called by :func:`legible.cli.main.main`
before typer is imported, hands it the command line, and a forked child runs it with the caller's
environment, working directory and terminal. The child is forked before the call comes (a spare, see
"Prefork" below), so a routed ``legible logs --help`` costs about as much as the root ``--help``.

Protocol (one connection per command; the fd passing is ``SCM_RIGHTS``, unix(7), packed as the stdlib's
:func:`socket.send_fds` packs it):

1. the client connects to the AF_UNIX stream socket :func:`socket_path` and sends one header, a
   :mod:`marshal` dump (same interpreter on both ends, checked by the stamp; ``json`` would cost the client
   2 ms of imports) after its length as 4 big-endian bytes, with its fds 0, 1 and 2 attached. The header
   holds ``argv`` (the whole ``sys.argv``), ``cwd``, ``env`` (the whole environment), ``umask``,
   ``stdio`` (for fds 0, 1, 2 the text layer Python built, ``[encoding, errors, line_buffering,
   write_through]`` or ``None``), ``ignored`` (the forwarded signals the client ignores),
   ``dont_write_bytecode``, ``sys_path`` and ``stamp`` (:func:`stamp`);
2. the spare child that accepted the connection answers the line ``ok``, or ``no <why>`` (a stamp that is
   not the server's, a module the server imported changed on disk since, a bad header): the client then
   runs the command in-process;
3. the client sends ``go`` and from then on never runs the command itself (no double side effects); the
   child takes on the client's context meanwhile and runs the command only on ``go``, so a client that
   gave up before it (closed the connection) never has a twin;
4. the child sends ``pid <N>``, then, when the command is done, ``exit <code>``; a child killed by a
   signal sends nothing, and the server, which reaps it, sends ``signal <n>``.

Guarantees:

* the child computes everything from the client's side: ``os.chdir``, ``os.environ`` replaced wholesale
  (then ``time.tzset()`` for ``TZ``, ``LC_CTYPE`` from the environment, ``tempfile``'s cached directory
  forgotten), the umask, ``sys.argv``, ``sys.path``, the client's fds dup2'd onto 0/1/2 and
  ``sys.stdin/stdout/stderr`` rebuilt as the interpreter builds them (the client's encoding, errors and
  buffering), Python's default signal handlers (the client's ignored signals stay ignored), then
  :func:`legible.cli.main.main` exactly as the console script runs it; the exit code follows Python's
  ``SystemExit`` rules, an uncaught exception prints its traceback and exits 1, an uncaught
  ``KeyboardInterrupt`` ends the child by SIGINT (as the interpreter does since 3.8), and the interpreter's
  own shutdown (non-daemon threads, ``atexit``, flushing stdout: a closed pipe exits 120) runs before exit;
* the client forwards SIGINT, SIGTERM, SIGHUP and SIGQUIT to the child, stops and continues it with itself
  (Ctrl-Z: SIGSTOP, then SIGCONT), returns the child's exit code, and re-raises a signal that killed the
  child on itself, so the caller sees the same status as in-process;
* a child whose client is gone (``kill -9``: the connection closed) is killed at once by a watcher thread
  (started in the spare, armed on ``go``), so a ``logs --follow`` does not run on as an orphan; the server
  reaps every child (no zombies);
* only peers whose ``SO_PEERCRED`` uid is the server's own are served; the socket is 0600 in a 0700
  directory;
* the server imports in a thread with nice 10 (on Linux nice is per thread), so its start does not slow
  the stack's first calls, and forks from its main thread, so children run at the caller's priority;
* the server's environment has no ``LEGIBLE_STACK``: a command still running at ``legible down`` is the
  caller's, not a stack process to reclaim (as in-process);
* the server builds typer's click command once, every command loaded
  (:meth:`legible.cli._app.LegibleTyper.prebuild`; typer rebuilds it per call) and freezes its objects
  (``gc.freeze``) so children neither scan nor copy them; a finished command closes the caller's fds before
  it reports its exit code, so a pipe reading its output ends at once.

Prefork (issue 12: a routed call at most ~1.25x ``legible --help``). Forking a process of this size (a page
table copy, then the copy-on-write faults of every page the call writes), closing the server's descriptors,
starting the watcher thread and stat-ing every module file cost more than the command's own work, so all
of it is done before the call comes, as gunicorn's and Apache's "prefork" workers do:

* the server keeps one spare child (:func:`_spare`); only the spare accepts on the listener (one at a
  time, so no two processes race for a call); it runs the handshake above itself, then tells the server
  over its channel (an AF_UNIX socketpair) ``served`` with the connection's fd attached (the server keeps
  it to send ``signal <n>`` and counts the call), ``refused``, ``stale`` or ``gone``, and is then either that
  call's child or exits. The spare reads nothing of the server's state that changes after the server's
  start (imports, the prebuilt CLI, the stamp, the module files and their watch are fixed before the first
  fork; the counts and the children's connections are the server's alone, the latter closed in the spare
  at once), so a spare forked long ago answers exactly as a fresh fork would; what depends on the caller is
  set from the header as before. ``random`` is reseeded by Python at every fork, as before;
* the next spare is forked when the served call ends, or :data:`SPARE_DELAY_S` after it started while it
  runs (so the fork does not compete for the CPU with the call), or at once when a call comes and there is
  no spare (the server then listens itself); a spare that dies unasked is replaced after
  :data:`SPARE_RETRY_S`. ``.legible/run/forkserver.json`` names the spare (``spare``), written after each
  change, off the answer's path (so its counts may trail a call's exit by a moment);
* an idle spare renders one ``--help`` (:data:`SPARE_WARMUP`, output discarded) so the pages a call writes
  first are copied before the call; the server itself rendered every routed command's ``--help`` once
  before the first fork (:func:`_prewarm`), so help has nothing left to change. An idle spare costs about
  5 MiB of private memory (USS 4-5 MiB; server and spare together 39 MiB PSS against the server's 33 MiB
  alone, measured with one call served);
* a module changed on disk is seen by inotify on the module directories (:class:`_Modules`): a call costs
  one ``poll`` instead of about 440 ``stat`` calls (1.2 ms warm, 2-3 ms in a fresh child); after any event
  the call checks every file, and the server renews the watch, checks every file and stops when one
  changed, as a refused call stopped it before; it also checks every :data:`CHECK_EVERY_S` seconds;
* an idle spare exits as soon as its channel ends: the server stopped (``legible down``: the server also
  waits a moment for it) or died (even by SIGKILL), so nothing is left behind.

The client's own share: it imports no ``typing`` (``TYPE_CHECKING`` is a plain ``False`` in the modules it
loads: ~3 ms) and, once the child reported its exit code, ends with ``os._exit`` after running the exit
handlers and flushing stdout and stderr (:func:`legible.cli.main._end`): the interpreter's teardown of its
modules cost 5-10 ms and has nothing to finalise in a process that only relayed the command.

Limits: the command runs in the stack's cgroup and its parent is the fork server (``os.getppid``), and
``/proc/<pid>/environ`` shows the server's environment (``os.environ`` is the caller's); a resource limit
or namespace that differs from the server's is refused by the stamp instead.

Fallback (the command runs in-process, identically, only slower): no socket (no stack, the server not
started yet or dead: the supervisor never restarts it), ``LEGIBLE_FORKSERVER=0``, ``GIT_DIR`` or
``GIT_WORK_TREE`` set (the worktree is then git's to find), a command not in :data:`ROUTED`, a refused
stamp, or no answer to the handshake within :data:`HANDSHAKE_S` seconds (no spare could be forked). Once
the spare said ``ok`` and the client said ``go``, a connection that ends without an exit code is reported
as one ``error:`` line (exit 1): the command may have run in part.

The client side (:func:`run_remote`) imports only the standard library, and of it only what costs nearly
little: os, marshal, :mod:`signal` and :mod:`socket` (their C modules ``_signal``/``_socket`` alone would save
about 4 ms per call, but a private module is not an interface we build on). Timed by
``benchmarks/bench_forkserver.py``.
"""

from __future__ import annotations

import marshal
import os
import signal
import sys

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: the client imports no ``typing`` (about 3 ms)
if TYPE_CHECKING:
    import socket
    from typing import Any

    from legible.contract import ForkServerDoc

__all__ = ["ROUTED", "SWITCH_ENV", "run_remote", "serve", "socket_path", "stamp", "start_server", "stop_server"]

#: Set to ``0`` to run every command in-process.
SWITCH_ENV = "LEGIBLE_FORKSERVER"
#: The commands sent to the fork server: short, read-only or browser ones. Never the lifecycle commands
#: (``up``, ``down``, ``restart``, ``reset``, ``init``, ``gc``), the stdio servers and long runs (``mcp``,
#: ``proof``) or those that write the user's files (``skills``, ``hook``, ``doctor``).
ROUTED = frozenset(
    {"logs", "traces", "trace", "metrics", "check", "diff", "deploys", "status", "ps", "browser", "journey"}
)
#: Seconds the client waits for the server's answer before running the command itself.
HANDSHAKE_S = 5.0
#: The signals the client forwards to the child.
FORWARDED: tuple[int, ...] = tuple(int(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT))
#: The version of this protocol (part of the stamp).
PROTOCOL = 1
#: Longest Unix socket path Linux accepts (``sun_path`` is 108 bytes with the terminating NUL).
_MAX_SOCK = 107
#: True in the fork server and its children: a command there never goes to a fork server again.
_SERVING = False


def socket_path(state_dir: str) -> str:
    """The socket of the stack whose state directory is ``state_dir``: ``<state_dir>/run/cli.sock``.

    When that path is longer than Linux allows (107 bytes), ``/tmp/legible-<uid>-<16 hex of
    sha256(realpath(state_dir))>-cli.sock`` instead (as the browser agent's socket does).
    """
    path = os.path.join(state_dir, "run", "cli.sock")
    if len(path) <= _MAX_SOCK:
        return path
    import hashlib

    digest = hashlib.sha256(os.path.realpath(state_dir).encode()).hexdigest()[:16]
    return f"/tmp/legible-{os.getuid()}-{digest}-cli.sock"  # noqa: S108 - a private (0600) socket, see above


def stats_path(state_dir: str) -> str:
    """``<state_dir>/run/forkserver.json``: the server's pid, start time and counts (served, refused)."""
    return os.path.join(state_dir, "run", "forkserver.json")


def _find_socket(cwd: str) -> str | None:
    """The socket for a command run in ``cwd``: under the first directory upwards holding ``.git``."""
    if os.environ.get("GIT_DIR") or os.environ.get("GIT_WORK_TREE"):
        return None
    d = cwd
    while True:
        if os.path.lexists(os.path.join(d, ".git")):
            return socket_path(os.path.join(d, ".legible"))
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def stamp() -> dict[str, Any]:
    """What must be equal in the client and the server for a forked child to answer as the client would.

    The interpreter (``sys.executable``), where ``legible`` is imported from, the module search path
    (without its first entry, the script's directory or the current one), the interpreter's flags that
    change behaviour, ``-W``/``-X`` options, the filesystem encoding, ``PYTHONHASHSEED``, the Linux
    namespaces (mount, network, pid, user, ipc, uts: a sandboxed caller sees another machine) and the
    resource limits (``/proc/self/limits``: a child inherits the server's). The cgroup is not compared
    (every terminal has its own); a command runs in the stack's. legible's
    version is not read here (``importlib.metadata`` costs 80 ms): the server instead refuses once any
    module it imported changed on disk, which a new version implies.
    """
    import legible

    f = sys.flags
    return {
        "protocol": PROTOCOL,
        "executable": sys.executable,
        "legible": legible.__file__,
        "path": sys.path[0 if f.safe_path else 1 :],
        "flags": [
            f.optimize,
            f.no_user_site,
            f.no_site,
            f.ignore_environment,
            f.isolated,
            f.dev_mode,
            f.utf8_mode,
            f.bytes_warning,
            f.hash_randomization,
            f.warn_default_encoding,
            getattr(f, "int_max_str_digits", None),
        ],
        "warnoptions": list(sys.warnoptions),
        "xoptions": {str(k): str(v) for k, v in sys._xoptions.items()},
        "fsencoding": [sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()],
        "hashseed": os.environ.get("PYTHONHASHSEED"),
        "namespaces": [_read(f"/proc/self/ns/{ns}", link=True) for ns in ("mnt", "net", "pid", "user", "ipc", "uts")],
        "limits": _read("/proc/self/limits"),
    }


def _read(path: str, link: bool = False) -> str | None:
    """The text of ``path`` (or where the link ``path`` points), ``None`` when it cannot be read."""
    try:
        if link:
            return os.readlink(path)
        with open(path) as fh:
            return fh.read()
    except OSError:
        return None


def _peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of the connected AF_UNIX ``sock`` (``SO_PEERCRED``, unix(7)).

    ``struct ucred`` is three native ints: pid, uid, gid.
    """
    import socket

    cred = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    return int.from_bytes(cred[4:8], sys.byteorder, signed=True)


def _stdio_spec(stream: Any) -> list[Any] | None:
    """``[encoding, errors, line_buffering, write_through]`` of a standard stream, ``None`` when there is none."""
    if stream is None:
        return None
    return [stream.encoding, stream.errors, stream.line_buffering, stream.write_through]


# -- the client --------------------------------------------------------------------------------------------
def run_remote(argv: list[str]) -> int | None:
    """Run the command line ``argv`` (``sys.argv``) in the stack's fork server; ``None`` to run it in-process.

    See the module docstring for when it returns ``None``. Otherwise it waits for the command, forwarding
    SIGINT, SIGTERM, SIGHUP and SIGQUIT to it, and returns its exit code (0-255); a command killed by a
    signal kills this process with the same signal. A connection that ends without an exit code prints
    ``error: ...`` and ``hint: ...`` on stderr and returns 1.

    Args:
        argv: the whole command line, program name first.

    Returns:
        The command's exit code, or ``None`` when it was not run there.

    """
    if _SERVING or os.environ.get(SWITCH_ENV) == "0" or len(argv) < 2 or argv[1] not in ROUTED:
        return None
    try:
        path = _find_socket(os.getcwd())
    except OSError:  # the working directory was removed: in-process reports it
        return None
    if path is None or not os.path.exists(path):  # no stack here, or no fork server: nothing more to import
        return None
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(HANDSHAKE_S)
        sock.connect(path)
        if _peer_uid(sock) != os.getuid():  # the environment goes only to a server of this user (see /tmp above)
            sock.close()
            return None
        umask = os.umask(0o022)
        os.umask(umask)
        header = {
            "argv": argv,
            "cwd": os.getcwd(),
            "env": dict(os.environ),
            "umask": umask,
            "stdio": [_stdio_spec(s) for s in (sys.stdin, sys.stdout, sys.stderr)],
            "ignored": [s for s in FORWARDED if signal.getsignal(s) == signal.SIG_IGN],
            "dont_write_bytecode": sys.dont_write_bytecode,
            "sys_path": list(sys.path),
            "stamp": stamp(),
        }
        body = marshal.dumps(header)
        data = len(body).to_bytes(4, "big") + body
        sent = socket.send_fds(sock, [data], [0, 1, 2])
        if sent < len(data):
            sock.sendall(data[sent:])
        reader = _Lines(sock)
        if reader.next() != "ok":  # "no <why>": refused
            sock.close()
            return None
        sock.sendall(b"go\n")
    except OSError:  # no server, a stale socket, a closed fd 0-2, no answer in time
        sock.close()
        return None
    sock.settimeout(None)
    return _wait(sock, reader)


class _Lines:
    """Lines read from a socket, one :meth:`next` at a time (the answers: ``ok``, ``pid 12``, ``exit 0``...)."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.buf = b""

    def next(self) -> str | None:
        """The next line, without its newline; ``None`` at the end of the connection.

        Raises:
            OSError: as ``recv`` raises it (a timeout included).

        """
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode("utf-8", "replace")


def _kill(pid: int, signum: int) -> None:
    """``os.kill``, quiet when the process is gone already."""
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _wait(sock: Any, reader: _Lines) -> int:
    """After ``go``: forward signals to the child, return its exit code (or die by its signal)."""
    child = {"pid": 0}
    pending: list[int] = []

    def forward(signum: int, frame: object) -> None:
        if child["pid"]:
            _kill(child["pid"], signum)
        else:
            pending.append(signum)

    def suspend(signum: int, frame: object) -> None:  # Ctrl-Z: stop the child too, resume it with us
        if child["pid"]:
            _kill(child["pid"], signal.SIGSTOP)  # not SIGTSTP: the child's process group is orphaned, so the
            # kernel discards a SIGTSTP to it (POSIX job control)
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTSTP)  # stops here until SIGCONT
        signal.signal(signal.SIGTSTP, suspend)
        if child["pid"]:
            _kill(child["pid"], signal.SIGCONT)

    for sig in FORWARDED:
        if signal.getsignal(sig) != signal.SIG_IGN:
            signal.signal(sig, forward)
    if signal.getsignal(signal.SIGTSTP) == signal.SIG_DFL:
        signal.signal(signal.SIGTSTP, suspend)
    try:
        while True:
            try:
                msg = reader.next()
            except OSError:
                msg = None
            if msg is None:
                break
            word, _, value = msg.partition(" ")
            if word == "pid":
                child["pid"] = int(value)
                while pending:
                    forward(pending.pop(0), None)
            elif word == "exit":
                return int(value)
            elif word == "signal":
                signum = int(value)
                sock.close()
                if signum != signal.SIGKILL:  # SIGKILL has no handler to reset
                    signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
                return 128 + signum  # only for a signal that does not end a process by default
    finally:
        sock.close()
    sys.stderr.write(
        "error: the command ended without an exit status: the stack's fork server or the command's process "
        "was stopped, and the command may have run in part\n"
        f"hint: run it again; {SWITCH_ENV}=0 runs legible commands in-process\n"
    )
    return 1


# -- the server --------------------------------------------------------------------------------------------
#: Modules the server imports before it listens: the CLI (typer, click), every command module, and what the
#: routed commands import on every call. Not DuckDB: on a running stack the queries ask the collector.
#: Measured PSS of a process holding them (median of 3): typer+click+psutil+http.client 13.6 MiB, with
#: pydantic (``check``, the config) 17.2 MiB, with prometheus-api-client's connection and requests
#: (``metrics``) 20.2 MiB; everything here, 27 MiB.
PREIMPORT = (
    "legible.cli._app",
    "psutil",
    "http.client",
    "legible.config",
    "legible.stack",
    "legible.render",
    "legible.queries.logs",
    "legible.queries.traces",
    "legible.queries.metrics",
    "legible.queries.source",
    "legible.checks",
    "legible.diff",
    "legible.deploys",
    "legible.browser.client",
    "legible.browser.journey",
    "legible.store",
    "legible.cli._deploy",
    "legible._config_file",
    "typer._click.decorators",
    "legible._loopback",
    "pydantic",
    "prometheus_api_client.prometheus_connect",
    "urllib3.util.retry",
    "inotify_simple",
)


def _preimport() -> list[str]:
    """Import :data:`PREIMPORT` and every command module of :data:`legible.cli.main.COMMANDS`, build the CLI, warm it.

    Returns the modules that failed to import (``name: error``).

    Runs in a thread with nice 10 (Linux nice values are per thread): the imports yield to the stack and to
    the commands of the moment, and the main thread, which forks the children, keeps its priority.
    """
    import importlib

    try:
        os.nice(10)
    except OSError:
        pass
    from legible.cli.main import COMMANDS

    failed = []
    names = [*PREIMPORT, *sorted({f"legible.cli.{mod}" for mod, _line in COMMANDS.values()})]
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - a module that cannot load is loaded by the child, which reports it
            failed.append(f"{name}: {exc}")
    _prebuild()
    _prewarm()
    return failed


def _prebuild() -> None:
    """Build the CLI's click command once, every command loaded (:meth:`legible.cli._app.LegibleTyper.prebuild`)."""
    try:
        from legible.cli.main import app

        app.prebuild()
    except Exception as exc:  # noqa: BLE001 - the children then build it per call, as in-process
        print(f"forkserver: the CLI was not prebuilt: {exc}", file=sys.stderr, flush=True)


def _prewarm(names: Any = ROUTED) -> None:
    """Run ``legible CMD --help`` once for every routed command, output discarded, before the first fork.

    A child's first click call pays for work click and typer do once per process (building parsers and
    formatters, compiling patterns): done here, every child inherits it. Help has no side effect; its text
    is rendered again, for the caller's terminal, by each child.
    """
    import contextlib
    import io

    try:
        from legible.cli.main import app
    except Exception:  # noqa: BLE001 - reported by _preimport already; the children load it as in-process
        return
    for name in sorted(names):
        sink = io.StringIO()
        try:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                app([name, "--help"], prog_name="legible", standalone_mode=False)
        except BaseException as exc:  # noqa: BLE001 - a warm-up only: the child runs it for real
            print(f"forkserver: warm-up of {name} --help failed: {exc!r}", file=sys.stderr, flush=True)


def _module_files() -> dict[str, tuple[int, int]]:
    """``{file: (mtime_ns, size)}`` of every imported module that has a file."""
    out = {}
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if f and f not in out:
            try:
                st = os.stat(f)
            except OSError:
                continue
            out[f] = (st.st_mtime_ns, st.st_size)
    return out


def _changed(files: dict[str, tuple[int, int]]) -> str | None:
    """The first of ``files`` whose mtime or size changed (or that is gone), else ``None``."""
    for f, (mtime, size) in files.items():
        try:
            st = os.stat(f)
        except OSError:
            return f
        if st.st_mtime_ns != mtime or st.st_size != size:
            return f
    return None


#: What an inotify watch on a module directory reports: any write, metadata change (``touch``), creation,
#: removal or rename of an entry, and the directory itself removed or moved (inotify(7): IN_MODIFY,
#: IN_ATTRIB, IN_CLOSE_WRITE, IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE, IN_DELETE_SELF, IN_MOVE_SELF;
#: numbers, so that the client, which imports this module, does not import inotify_simple).
_WATCH_MASK = 0x2 | 0x4 | 0x8 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800


class _Modules:
    """The files of the server's imported modules, as they were at its start, and whether one changed since.

    Stat-ing every file (about 440, 1.2 ms warm, 2-3 ms in a fresh child) on every call was the biggest part
    of the answer's latency. Instead an inotify instance (:mod:`inotify_simple`, inotify(7)) watches the
    directories that hold them (about 50 watches: inotify is per inode and sees every writer, whichever
    path or mount it used); a call then only asks whether that descriptor is readable (one ``poll``), and
    only when it is does it stat every file (:meth:`changed`), so a spurious event (an editor's swap file
    beside a module) costs one full check, never a wrong answer. The server renews the instance after each
    event (:meth:`renew`: the new watches are set before the files are checked, so no change falls in
    between) and stops when a file did change; a spare forked earlier keeps the old, readable descriptor
    and checks fully. As a net for changes inotify cannot see (a network filesystem written from another
    machine), the server also checks fully every :data:`CHECK_EVERY_S` seconds. Without inotify (no
    watches left: ``fs.inotify.max_user_watches``/``max_user_instances``), every call checks fully, as
    before.
    """

    def __init__(self, files: dict[str, tuple[int, int]]) -> None:
        """Watch the directories of ``files`` (``{path: (mtime_ns, size)}``, :func:`_module_files`)."""
        self.files = files
        self.watch: Any = self._watch()

    def _watch(self) -> Any:
        """A new non-blocking inotify instance on every module directory, ``None`` when inotify fails."""
        try:
            from inotify_simple import INotify

            watch = INotify(nonblocking=True)
        except (OSError, ImportError) as exc:
            print(f"forkserver: no inotify ({exc}): every call checks the module files", file=sys.stderr, flush=True)
            return None
        try:
            for d in sorted({os.path.dirname(f) for f in self.files}):
                watch.add_watch(d, _WATCH_MASK)
        except OSError as exc:
            watch.close()
            print(f"forkserver: no inotify ({exc}): every call checks the module files", file=sys.stderr, flush=True)
            return None
        return watch

    def changed(self) -> str | None:
        """The first module file that changed on disk since the server's start (stat-ing every one), or ``None``."""
        return _changed(self.files)

    def maybe_changed(self) -> str | None:
        """:meth:`changed`, when the watch saw an event (or there is no watch); else ``None`` at once."""
        if self.watch is not None:
            import select

            poller = select.poll()
            poller.register(self.watch.fileno(), select.POLLIN)
            if not poller.poll(0):
                return None
        return self.changed()

    def renew(self) -> str | None:
        """After an event (server only): watch anew, then check every file; the changed one, or ``None``."""
        old, self.watch = self.watch, self._watch()
        if old is not None:
            old.close()
        return self.changed()

    def fileno(self) -> int:
        """The inotify descriptor (for the server's selector); ``-1`` when there is none."""
        return -1 if self.watch is None else int(self.watch.fileno())


#: Seconds between the server's full checks of the module files (beside inotify, see :class:`_Modules`).
CHECK_EVERY_S = 5.0
#: Least seconds between two renewals of the watch: a directory written without end (a file that is no module
#: beside modules) costs the server one full check a second, and the calls meanwhile a full check each.
RENEW_EVERY_S = 1.0


def serve(state_dir: str) -> None:
    """Serve the stack whose state directory is ``state_dir`` until SIGTERM, SIGINT or SIGHUP.

    Imports what the commands use (then runs every routed command's ``--help`` once, output discarded, so the
    children find click's first-call work done), writes :func:`stats_path`, then binds :func:`socket_path` (its
    directory 0700, the socket 0600; a stale socket is replaced: whoever sees the socket finds the stats file), and
    keeps one spare child forked ahead (:func:`_spare`): the spare accepts the next connection, checks it and tells
    the server over its channel (``served`` with the connection's fd, ``refused``, ``stale`` or ``gone``); the
    server counts it, forks the next spare, then writes the stats file. Children are reaped as they exit (a SIGCHLD
    wakes the loop); a spare that dies unasked is replaced after :data:`SPARE_RETRY_S`. At the end the spare is
    ended, the socket and the stats file are removed; running children are left to finish (they are the callers'
    commands).

    Args:
        state_dir: the worktree's ``.legible`` directory.

    Raises:
        OSError: the socket cannot be bound.

    """
    import math
    import selectors
    import signal
    import socket
    import threading
    import time

    global _SERVING
    _SERVING = True
    t0 = time.monotonic()
    failed: list[str] = []
    importer = threading.Thread(target=lambda: failed.extend(_preimport()), name="legible-preimport")
    importer.start()
    importer.join()
    for line in failed:
        print(f"forkserver: not preimported: {line}", file=sys.stderr, flush=True)
    if "duckdb" in sys.modules:
        print("forkserver: duckdb was imported by a preimported module", file=sys.stderr, flush=True)
    modules = _Modules(_module_files())
    mine = stamp()
    import gc

    gc.collect()
    gc.freeze()  # children never scan (and so never copy) the server's objects: the gc module's advice for fork
    changed = modules.changed()  # after the watches were set: a change made during the imports is seen here
    if changed:
        print(
            f"forkserver: {changed} changed on disk while the fork server started: stopping",
            file=sys.stderr,
            flush=True,
        )
        return

    stop = {"flag": False}
    wake_r, wake_w = os.pipe()
    for fd in (wake_r, wake_w):
        os.set_blocking(fd, False)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)

    def on_stop(signum: int, frame: object) -> None:
        stop["flag"] = True

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_stop)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # only to wake the loop (set_wakeup_fd)

    path = socket_path(state_dir)
    run_dir = os.path.join(state_dir, "run")
    os.makedirs(run_dir, mode=0o700, exist_ok=True)
    os.chmod(run_dir, 0o700)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    stats: ForkServerDoc = {
        "schema": "legible.forkserver/v1",
        "pid": os.getpid(),
        "started_at": time.time(),
        "ready_ms": round((time.monotonic() - t0) * 1000, 1),
        "modules": len(sys.modules),
        "socket": path,
        "served": 0,
        "refused": 0,
        "spare": 0,
    }
    # the stats file first, then the socket: whoever sees the socket finds the stats file beside it
    _write_stats(state_dir, stats)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # the socket is created 0600: no window in which another user could connect
    try:
        listener.bind(path)
    except OSError:
        listener.close()
        _remove_files(state_dir)
        raise
    finally:
        os.umask(old)
    listener.listen(64)
    listener.setblocking(False)
    print(f"forkserver: serving {path} ({stats['modules']} modules in {stats['ready_ms']} ms)", flush=True)
    children: dict[int, socket.socket] = {}
    sel = selectors.DefaultSelector()
    sel.register(wake_r, selectors.EVENT_READ)
    spare: dict[str, Any] = {"pid": 0, "chan": None}  # the idle child, the server's end of its channel
    written = (0, 0, 0)  # the counts and the spare the stats file holds
    # monotonic times: fork again after a failure; fork the next spare; check every module file; renew the
    # module watch (after an event); when it was last renewed
    at = {"retry": 0.0, "due": 0.0, "check": time.monotonic() + CHECK_EVERY_S, "renew": math.inf, "renewed": 0.0}
    if modules.watch is not None:
        sel.register(modules.fileno(), selectors.EVENT_READ)

    def take(outcome: str, conn: socket.socket | None) -> None:
        """The spare's report: count it, keep the served connection; the spare is one no more."""
        sel.unregister(spare["chan"])
        spare["chan"].close()
        if outcome == "served" and conn is not None:
            children[spare["pid"]] = conn
            at["due"] = time.monotonic() + SPARE_DELAY_S
        elif conn is not None:
            conn.close()
        spare.update(pid=0, chan=None)
        if outcome in ("served", "refused", "stale"):
            stats["served" if outcome == "served" else "refused"] += 1
        if outcome == "stale":  # legible changed on disk: every later call would be refused too
            print("forkserver: a module changed on disk: stopping", file=sys.stderr, flush=True)
            stop["flag"] = True

    try:
        while not stop["flag"]:
            now = time.monotonic()
            listening = not spare["pid"] and now >= at["retry"] and now < at["due"]
            if listening:  # a call runs: its spare's successor is forked when it ends, or now if a call comes
                sel.register(listener, selectors.EVENT_READ)
            elif not spare["pid"] and now >= at["retry"]:
                try:
                    spare["pid"], spare["chan"] = _fork_spare(listener, mine, modules, (sel, wake_r, wake_w), children)
                    sel.register(spare["chan"], selectors.EVENT_READ)
                except OSError as exc:
                    print(f"forkserver: cannot fork a spare child: {exc}", file=sys.stderr, flush=True)
                    at["retry"] = time.monotonic() + SPARE_RETRY_S
            if (stats["served"], stats["refused"], spare["pid"]) != written:  # off the answer's path
                stats["spare"] = spare["pid"]
                _write_stats(state_dir, stats)
                written = (stats["served"], stats["refused"], spare["pid"])
            wake_at = min(at["check"], at["renew"])
            if not spare["pid"]:
                wake_at = min(wake_at, at["due"] if listening else at["retry"])
            for key, _ in sel.select(max(0.0, wake_at - time.monotonic())):
                if key.fileobj == listener:  # a call and no spare: fork one now (it accepts the call)
                    at["due"] = 0.0
                elif key.fileobj == modules.fileno():  # a module directory changed: renew the watch, check all
                    sel.unregister(key.fileobj)
                    at["renew"] = max(time.monotonic(), at["renewed"] + RENEW_EVERY_S)
                elif key.fileobj == wake_r:
                    try:
                        os.read(wake_r, 4096)
                    except BlockingIOError:
                        pass
                elif spare["chan"] is not None and key.fileobj == spare["chan"]:
                    outcome, conn = _report(spare["chan"])
                    if not outcome:  # its channel ended without a report: it died
                        print(f"forkserver: the spare child {spare['pid']} ended unasked", file=sys.stderr, flush=True)
                        at["retry"] = time.monotonic() + SPARE_RETRY_S
                    take(outcome, conn)
            if listening:
                sel.unregister(listener)
            for pid, status in _reap(children):
                if pid != spare["pid"]:
                    continue
                outcome, conn = _report(spare["chan"], wait=False)  # read before its death is believed
                if not outcome:
                    print(f"forkserver: the spare child {pid} ended unasked ({status})", file=sys.stderr, flush=True)
                    at["retry"] = time.monotonic() + SPARE_RETRY_S
                take(outcome, conn)
                if outcome == "served":  # the call ended before its report was read: it is reaped already
                    _ended(children.pop(pid), status)
            if not children:
                at["due"] = 0.0  # the last call ended: the next spare is forked now
            now = time.monotonic()
            if now >= at["check"] or now >= at["renew"]:
                renew = now >= at["renew"]
                changed = modules.renew() if renew else modules.changed()
                if renew:
                    at.update(renew=math.inf, renewed=now)
                    if modules.watch is not None:
                        sel.register(modules.fileno(), selectors.EVENT_READ)
                at["check"] = time.monotonic() + CHECK_EVERY_S
                if changed:  # every later call would be refused: stop (the socket goes, calls run in-process)
                    print(
                        f"forkserver: {changed} changed on disk since the fork server started: stopping",
                        file=sys.stderr,
                        flush=True,
                    )
                    stop["flag"] = True
    finally:
        _remove_files(state_dir)
        listener.close()
        if spare["pid"]:
            spare["chan"].close()  # the spare sees its channel end and exits (unless it just took a call)
            _end_spare(spare["pid"])
        for _pid, _status in _reap(children):
            pass


#: The ``--help`` the spare renders (output discarded) while it waits: click's parse and format path, common
#: to every command, then runs on pages the spare already copied (copy-on-write after the fork) instead of
#: faulting them in during the call (-2 ms of ``logs --help``'s answer, measured with ``trace``; any command
#: does). Its state afterwards is the server's own after :func:`_prewarm`: help changes nothing.
SPARE_WARMUP = ("status",)
#: Seconds before the server forks a new spare child when the last one died unasked or could not be forked.
SPARE_RETRY_S = 1.0
#: Seconds the server waits, while a call it served runs, before it forks the next spare: the fork (a page
#: table copy of the whole server) and the spare's start then do not compete for the CPU with that call; a
#: call that comes meanwhile has its spare forked at once. Measured with :func:`run_remote` of ``logs --help``
#: in one process (median of 30, 40 ms apart): forking the next spare as soon as the call was reported made
#: the answer 18 ms, forking it when the call ended 8 ms (2 cores).
SPARE_DELAY_S = 0.05


def _end_spare(pid: int) -> None:
    """Reap the spare ``pid`` once it saw its closed channel and exited; give up after 1 s.

    An idle spare exits at once; one in a handshake within :data:`HANDSHAKE_S`; one that took a call at
    that very moment is a caller's command now and is left to run (it is not the server's to kill).
    """
    import time

    deadline = time.monotonic() + 1.0
    while True:
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done or time.monotonic() > deadline:
            return
        time.sleep(0.005)


def _fork_spare(
    listener: socket.socket,
    mine: dict[str, Any],
    modules: _Modules,
    server: tuple[Any, int, int],
    children: dict[int, socket.socket],
) -> tuple[int, socket.socket]:
    """Fork the next spare child (:func:`_spare`); return its pid and the server's end of its channel.

    The channel is an AF_UNIX stream socketpair: the spare writes one report on it; the server closing its
    end (or dying) tells an idle spare to exit.

    Raises:
        OSError: the fork or the socketpair failed.

    """
    import socket

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        pid = os.fork()
    except OSError:
        ours.close()
        theirs.close()
        raise
    if pid == 0:
        try:
            ours.close()
            _spare(listener, theirs, mine, modules, server, list(children.values()))
        finally:
            os._exit(70)  # _spare never returns; this is the last resort (EX_SOFTWARE)
    theirs.close()
    return pid, ours


def _report(chan: socket.socket, wait: bool = True) -> tuple[str, socket.socket | None]:
    """Read the spare's report from ``chan``: ``(outcome, connection)``, ``("", None)`` when there is none.

    ``outcome`` is ``served`` (then with the client's connection, passed as an fd), ``refused``, ``stale``
    or ``gone`` (a peer of another user or a bad header: not counted). ``wait``: False to read only what
    is there already.
    """
    import socket

    try:
        chan.setblocking(wait)
        data, fds, _flags, _addr = socket.recv_fds(chan, 64, 1)
    except OSError:  # nothing there (BlockingIOError) or the spare died
        return "", None
    conn = socket.socket(fileno=fds[0]) if fds else None
    return data.decode("ascii", "replace").strip(), conn


def _write_stats(state_dir: str, stats: ForkServerDoc) -> None:
    """Write the stats file atomically (0600, as everything under ``.legible/``)."""
    import json

    target = stats_path(state_dir)
    tmp = target + ".tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(stats, fh)
        os.replace(tmp, target)
    except OSError as exc:
        print(f"forkserver: cannot write {target}: {exc}", file=sys.stderr, flush=True)


def _reap(children: dict[int, socket.socket]) -> list[tuple[int, int]]:
    """Reap every exited child; tell the client of one killed by a signal which signal it was.

    Returns:
        ``(pid, wait status)`` of every reaped child that was not running a call (the spare, or one that
        refused).

    """
    others: list[tuple[int, int]] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return others
        if pid == 0:
            return others
        conn = children.pop(pid, None)
        if conn is None:
            others.append((pid, status))
            continue
        _ended(conn, status)


def _ended(conn: socket.socket, status: int) -> None:
    """A call's child ended with wait ``status``: tell its client the signal that killed it, if one did."""
    if os.WIFSIGNALED(status):
        import socket

        try:
            conn.send(f"signal {os.WTERMSIG(status)}\n".encode(), socket.MSG_NOSIGNAL)
        except OSError:
            pass
    conn.close()


def _spare(
    listener: socket.socket,
    chan: socket.socket,
    mine: dict[str, Any],
    modules: _Modules,
    server: tuple[Any, int, int],
    others: list[socket.socket],
) -> None:
    """The spare child: drop the server's parts, wait for one connection, answer it, run it (:func:`_child`).

    Forked ahead of the call (gunicorn's and Apache's "prefork"), so the fork, the release of the server's
    descriptors and the start of the client watcher are off the answer's path. The server's state the child
    uses (imports, the prebuilt CLI, ``mine``, ``modules``) never changes after the server's start, so a spare
    forked long ago answers as a fresh fork would; what depends on the call (environment, cwd, TZ, locale,
    umask, stdio, signals) is set from the header as before. An idle spare exits when its channel ends (the
    server stopped or died). It takes exactly one connection: a refused one ends it (the server forks the
    next), a served one makes it that call's child.

    ``server``: the server's selector and wake-up pipe. ``others``: the connections of running children.
    """
    import select
    import signal
    import threading

    sel, wake_r, wake_w = server
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    sel.close()
    os.close(wake_r)
    os.close(wake_w)
    for other in others:  # a copy of another client's connection would keep that client waiting
        other.close()

    armed = threading.Lock()
    armed.acquire()
    watched: list[Any] = []

    def watch() -> None:  # the client is gone (the connection closed): end the command as its kill would
        armed.acquire()  # released once the command runs
        try:
            while watched[0].recv(4096):
                pass
        except OSError:
            pass
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="legible-client-watch", daemon=True).start()
    poller = select.poll()
    poller.register(listener, select.POLLIN)
    poller.register(chan, select.POLLIN)
    if not poller.poll(0):  # while idle: the pages a call writes first are copied now, not during the call
        _prewarm(SPARE_WARMUP)
    while True:
        ready = {fd for fd, _ev in poller.poll()}
        if chan.fileno() in ready:  # the server closed its end or died: nothing to serve
            os._exit(0)
        try:
            conn, _addr = listener.accept()
        except BlockingIOError:
            continue
        break
    outcome, header, fds, pending = _handshake(conn, mine, modules)

    def tell(word: str, fds: list[int]) -> None:
        import socket

        try:
            socket.send_fds(chan, [word.encode()], fds)
        except OSError:  # the server is gone: the call is still answered
            pass

    if outcome != "served":
        tell(outcome or "gone", [])
        os._exit(0)
    tell("served", [conn.fileno()])
    listener.close()
    chan.close()

    def arm() -> None:
        watched.append(conn)
        armed.release()

    _child(conn, fds, header, pending, arm)


def _handshake(
    conn: socket.socket, mine: dict[str, Any], modules: _Modules
) -> tuple[str, dict[str, Any], list[int], bytes]:
    """One connection: check the peer and the header, answer ``ok`` or ``no <why>``.

    Returns:
        ``(outcome, header, fds, pending)``: ``outcome`` ``served`` (``ok`` was sent; ``fds`` are the
        client's 0, 1, 2, ``pending`` what was read after the header), ``refused``, ``stale`` (refused
        because a module changed on disk) or ``""`` (the peer went away or is not this user: not counted).
        The connection is closed unless served.

    """
    import socket

    fds: list[int] = []
    try:
        conn.setblocking(True)
        conn.settimeout(HANDSHAKE_S)
        if _peer_uid(conn) != os.getuid():
            conn.close()
            return "", {}, [], b""
        data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 20, 3)
        while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
            more = conn.recv(1 << 20)
            if not more:
                raise ValueError("the connection ended inside the header")
            data += more
        size = 4 + int.from_bytes(data[:4], "big")
        header = marshal.loads(data[4:size])  # noqa: S302 - only this uid connects (SO_PEERCRED), and could run code anyway
        if not isinstance(header, dict):
            raise ValueError("the header is not a mapping")
        why = ""
        if len(fds) != 3:
            why = "a header with fds 0, 1 and 2 was expected"
        elif header.get("stamp") != mine:
            theirs = header.get("stamp") or {}
            why = f"the stamp differs in {sorted(k for k in mine if theirs.get(k) != mine[k])}"
        changed = modules.maybe_changed()
        if changed:
            why = f"{changed} changed on disk since the fork server started"
        if why:
            print(f"forkserver: refused {header.get('argv', [])[1:2]}: {why}", file=sys.stderr, flush=True)
            conn.sendall(f"no {' '.join(why.split())}\n".encode())
            conn.close()
            return ("stale" if changed else "refused"), {}, [], b""
        conn.sendall(b"ok\n")
        return "served", header, fds, data[size:]
    except (OSError, ValueError, EOFError, TypeError):  # marshal raises the last three on bad data
        conn.close()
        for fd in fds:
            os.close(fd)
        return "", {}, [], b""


def _child(conn: socket.socket, fds: list[int], header: dict[str, Any], pending: bytes, arm: Any) -> None:
    """In the served spare: take on the client's context, run ``legible``, exit with its code.

    ``fds``: the client's 0, 1, 2. ``pending``: what the handshake read after the header. ``arm``: starts
    the client watcher (:func:`_spare`). The command runs only once the client said ``go``; a client that
    gave up (closed) gets no command at all.
    """
    import signal

    conn.settimeout(None)
    conn.sendall(f"pid {os.getpid()}\n".encode())
    ignored = set(header.get("ignored") or [])
    signal.signal(signal.SIGINT, signal.SIG_IGN if signal.SIGINT in ignored else signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN if sig in ignored else signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTSTP, signal.SIG_DFL)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in fds:
        os.close(fd)
    os.chdir(header["cwd"])
    os.umask(int(header["umask"]))
    os.environ.clear()
    os.environ.update(header["env"])
    _after_environ()
    sys.dont_write_bytecode = bool(header.get("dont_write_bytecode"))
    sys.argv = list(header["argv"])
    sys.path[:] = list(header["sys_path"])
    _rebuild_stdio(header["stdio"])
    go = _Lines(conn)
    go.buf = pending
    try:
        while b"\n" not in go.buf:
            more = conn.recv(16)
            if not more:
                break
            go.buf += more
    except OSError:
        pass
    if go.buf[:3] != b"go\n":
        os._exit(0)  # the client gave up before it committed (and ran the command itself, or not at all)
    arm()
    code = _run_main()
    for fd in (0, 1, 2):  # flushed: the caller's pipes see their end now, not after this process's teardown
        try:
            os.close(fd)
        except OSError:
            pass
    try:
        conn.sendall(f"exit {code}\n".encode())
    except OSError:
        pass
    os._exit(code)


def _after_environ() -> None:
    """Make what the interpreter and the stdlib derived from the environment follow the new one."""
    import time

    time.tzset()  # TZ: local times are the client's
    try:
        import locale

        locale.setlocale(locale.LC_CTYPE, "")  # what the interpreter does at start, from LC_ALL/LC_CTYPE/LANG
    except Exception:  # noqa: BLE001, S110 - an unknown locale: the interpreter keeps the previous one as well
        pass
    tempfile: Any = sys.modules.get("tempfile")
    if tempfile is not None:
        tempfile.tempdir = None  # gettempdir() caches TMPDIR's value of its first call


def _rebuild_stdio(specs: list[Any]) -> None:
    r"""``sys.stdin/stdout/stderr`` (and their ``__x__`` twins) on fds 0-2, as the interpreter's start builds them.

    As ``create_stdio`` in CPython's ``Python/pylifecycle.c``: a buffered binary layer (unbuffered for the
    writers under ``-u``) whose raw file is named ``<stdin>``/``<stdout>``/``<stderr>``, a text layer with
    ``newline="\n"``, the client's encoding, errors, line buffering and write-through.
    """
    import io

    for fd, (name, spec) in enumerate(zip(("stdin", "stdout", "stderr"), specs, strict=True)):
        if spec is None:
            stream = None
        else:
            encoding, errors, line_buffering, write_through = spec
            writer = fd > 0
            buffered = not (writer and write_through)
            buf: Any = open(fd, "wb" if writer else "rb", buffering=-1 if buffered else 0, closefd=False)  # noqa: SIM115
            raw = buf.raw if buffered else buf
            raw.name = f"<{name}>"
            stream = io.TextIOWrapper(
                buf,
                encoding=encoding,
                errors=errors,
                newline="\n",
                line_buffering=line_buffering,
                write_through=write_through,
            )
            stream.mode = "w" if writer else "r"  # type: ignore[misc]
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def _run_main() -> int:
    """Run :func:`legible.cli.main.main` as the interpreter runs the console script; return the exit code."""
    import signal

    code = 0
    try:
        from legible.cli.main import main

        main()
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except KeyboardInterrupt:
        sys.excepthook(*sys.exc_info())
        _shutdown()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)  # as the interpreter exits on an uncaught KeyboardInterrupt
    except BaseException:  # noqa: BLE001 - the interpreter prints any uncaught exception and exits 1
        sys.excepthook(*sys.exc_info())
        code = 1
    if not _shutdown():
        code = 120  # Py_FinalizeEx failed to flush stdout: the interpreter exits 120
    return code & 0xFF


def _exit_code(value: object) -> int:
    """The process exit code of ``SystemExit(value)``: ``None`` 0, an int itself, anything else printed, 1."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    try:
        sys.stderr.write(f"{value}\n")
    except Exception:  # noqa: BLE001, S110 - as the interpreter: printing the message is best effort
        pass
    return 1


def _shutdown() -> bool:
    """The interpreter's finalisation: non-daemon threads, ``atexit``, flushing stdout and stderr.

    Returns:
        False when flushing stdout failed (a closed pipe); the error is printed as the interpreter does
        ("Exception ignored in: ...").

    """
    import atexit
    import threading

    try:
        threading._shutdown()  # type: ignore[attr-defined]  # what Py_FinalizeEx calls first
    except Exception:  # noqa: BLE001, S110 - best effort, as the interpreter's own
        pass
    atexit._run_exitfuncs()
    ok = True
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None:
            continue
        try:
            stream.flush()
        except Exception as exc:  # noqa: BLE001 - reported as the interpreter reports it
            if name == "stdout":
                ok = False
                try:
                    sys.stderr.write(f"Exception ignored in: {stream!r}\n{type(exc).__name__}: {exc}\n")
                    sys.stderr.flush()
                except Exception:  # noqa: BLE001, S110
                    pass
    return ok


# -- the supervisor's side ---------------------------------------------------------------------------------
def start_server(state_dir: str, log: str, preexec_fn: Any = None) -> Any:
    """Start ``python -P -m legible.forkserver --state-dir STATE_DIR`` in its own session, output to ``log``.

    ``log`` is truncated (one stack start's lines) and its directory created 0700.

    Its environment is this process's without ``LEGIBLE_STACK`` and ``LEGIBLE_REGISTRY`` (see the module
    docstring); ``-P`` keeps the working directory off its module path.

    Args:
        state_dir: the worktree's ``.legible`` directory.
        log: the log file.
        preexec_fn: run in the child before ``exec`` (the supervisor's ``PR_SET_PDEATHSIG``).

    Returns:
        The ``subprocess.Popen`` of the server.

    Raises:
        OSError: the interpreter cannot be started.

    """
    import subprocess

    from legible._procs import REGISTRY_ENV, STACK_ENV

    env = {k: v for k, v in os.environ.items() if k not in (STACK_ENV, REGISTRY_ENV)}
    os.makedirs(os.path.dirname(log), mode=0o700, exist_ok=True)
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-P", "-m", "legible.forkserver", "--state-dir", state_dir],
            cwd=state_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec_fn,  # noqa: PLW1509 - the caller's prctl only
            close_fds=True,
        )


def stop_server(proc: Any, state_dir: str, timeout: float = 2.0) -> None:
    """SIGTERM the server ``proc`` (a ``subprocess.Popen``), SIGKILL it after ``timeout`` s; remove its socket.

    Commands it forked that still run are not touched: they are their callers'.
    """
    import subprocess

    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _remove_files(state_dir)


def _remove_files(state_dir: str) -> None:
    """Remove the server's socket and stats file (:func:`socket_path`, :func:`stats_path`), if there."""
    for p in (socket_path(state_dir), stats_path(state_dir)):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


def main(argv: list[str] | None = None) -> int:
    """``python -P -m legible.forkserver --state-dir DIR``: :func:`serve` until stopped; returns 0."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m legible.forkserver", description="legible's per-stack fork server")
    ap.add_argument("--state-dir", required=True, help="the worktree's .legible directory")
    args = ap.parse_args(argv)
    serve(args.state_dir)
    return 0


if __name__ == "__main__":
    # Run the module's own copy, not ``__main__``'s: the children import ``legible.forkserver`` and must see
    # ``_SERVING`` set there.
    from legible.forkserver import main as _main

    code = _main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip the teardown of everything preimported
