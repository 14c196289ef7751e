"""The supervisor's control channel and file watcher: how ``legible restart`` and ``watch`` reach a running stack.

Control protocol (newline-delimited JSON over a Unix stream socket, ``.legible/supervisor.sock``, mode 0600;
a short path in the temp dir when the worktree's is too long for ``sun_path``):

* request, one line: ``{"op": "restart", "services": ["app", ...]}`` (empty list: every user service);
* first answer line: ``{"ok": true, "deploy": N, "services": [...]}`` or ``{"ok": false, "error": "...",
  "hint": "..."}``;
* once the deploy ended, a second line: ``{"done": true, "deploy": {deploy record}}`` (see
  :mod:`legible.deploys`), after which the supervisor closes the connection.

:class:`ControlServer` is polled from the supervisor's main loop (``select``, no thread); :class:`Watcher`
runs ``watchfiles.watch`` in a daemon thread and hands changed paths to the main loop through a queue.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import select
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from legible._errors import NotReady, NotRunning, UsageError

SOCKET_NAME = "supervisor.sock"
#: ``sun_path`` holds 108 bytes including the terminating NUL.
_MAX_SUN_PATH = 107
#: Paths under these directories never trigger a watch restart.
_IGNORED_DIRS = (".legible", ".git", "__pycache__", ".venv", "node_modules", ".mypy_cache", ".ruff_cache")


def socket_path(state_dir: Path) -> Path:
    """``<state_dir>/supervisor.sock``, or ``$TMPDIR/legible-<uid>-<hash>.ctl.sock`` when that is too long."""
    p = Path(state_dir) / SOCKET_NAME
    if len(str(p).encode()) <= _MAX_SUN_PATH:
        return p
    digest = hashlib.sha256(str(p).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"legible-{os.getuid()}-{digest}.ctl.sock"


class ControlServer:
    """The listening side, owned by the supervisor's main loop.

    Args:
        state_dir: the stack's ``.legible`` directory.

    Raises:
        OSError: the socket cannot be bound.

    """

    def __init__(self, state_dir: Path) -> None:
        self.path = socket_path(state_dir)
        self.path.unlink(missing_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # created 0600: only this user may ask for a restart
        try:
            self.sock.bind(str(self.path))
        finally:
            os.umask(old)
        self.sock.listen(8)
        self.sock.setblocking(False)

    def wait(self, timeout: float, wake: int | None = None) -> list[tuple[socket.socket, dict[str, Any]]]:
        """Wait up to ``timeout`` seconds for requests; return ``(connection, request)`` pairs (maybe none).

        A connection whose request is not one JSON object gets an error line and is closed.

        Args:
            timeout: seconds to wait at most.
            wake: a non-blocking file descriptor (the supervisor's ``signal.set_wakeup_fd`` pipe) that ends
                the wait as soon as it is readable; what it holds is read and dropped.

        """
        fds: list[Any] = [self.sock] if wake is None else [self.sock, wake]
        ready, _, _ = select.select(fds, [], [], max(timeout, 0.0))
        got: list[tuple[socket.socket, dict[str, Any]]] = []
        if wake is not None and wake in ready:
            try:
                while os.read(wake, 512):
                    pass
            except (BlockingIOError, InterruptedError):
                pass
        if self.sock not in ready:
            return got
        while True:
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                break
            conn.settimeout(1.0)
            try:
                data = b""
                while not data.endswith(b"\n") and len(data) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                req = json.loads(data or b"null")
                if not isinstance(req, dict):
                    raise ValueError("not a JSON object")
            except (OSError, ValueError) as exc:
                send(conn, {"ok": False, "error": f"bad request: {exc}", "hint": "one JSON object per line"})
                conn.close()
                continue
            got.append((conn, req))
        return got

    def close(self) -> None:
        """Stop listening and remove the socket file."""
        self.sock.close()
        self.path.unlink(missing_ok=True)


def send(conn: socket.socket, doc: dict[str, Any]) -> bool:
    """Write ``doc`` as one JSON line to ``conn``; False when the peer is gone."""
    try:
        conn.sendall(json.dumps(doc).encode() + b"\n")
        return True
    except OSError:
        return False


def request_restart(state_dir: Path, services: list[str], timeout: float = 60.0) -> dict[str, Any]:
    """Ask the running supervisor to restart ``services`` and wait for the new deploy to end.

    Args:
        state_dir: the stack's ``.legible`` directory.
        services: user service names; empty for all of them.
        timeout: seconds to wait for the deploy to be ready or failed.

    Returns:
        The deploy record (``status`` ``ready`` or ``failed``; see :mod:`legible.deploys`).

    Raises:
        NotRunning: no supervisor listens (no stack, or one started before restarts existed).
        UsageError: the supervisor refused the request (unknown service, the stack is starting, ...).
        NotReady: the deploy did not end within ``timeout``.

    """
    path = socket_path(state_dir)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    deadline = time.monotonic() + timeout
    try:
        try:
            sock.settimeout(5.0)
            sock.connect(str(path))
            sock.sendall(json.dumps({"op": "restart", "services": services}).encode() + b"\n")
        except OSError as exc:
            raise NotRunning(
                f"the supervisor does not answer on {path} ({exc.strerror or exc})",
                hint="run `legible status`; a stack started by an older legible needs `legible down && legible up`",
            ) from None
        reader = sock.makefile("rb")
        first = _read_line(sock, reader, deadline)
        if not first.get("ok"):
            raise UsageError(str(first.get("error") or "restart refused"), hint=str(first.get("hint") or ""))
        done = _read_line(sock, reader, deadline)
        if not done.get("done"):  # the stack is stopping under us
            raise NotRunning(str(done.get("error") or "the supervisor gave up"), hint=str(done.get("hint") or ""))
        rec: dict[str, Any] = done.get("deploy") or {}
        return rec
    finally:
        sock.close()


def _read_line(sock: socket.socket, reader: Any, deadline: float) -> dict[str, Any]:
    left = deadline - time.monotonic()
    if left <= 0:
        raise NotReady("the restart did not finish in time", hint="see `legible status` and .legible/logs/")
    sock.settimeout(left)
    try:
        line = reader.readline()
    except TimeoutError:
        raise NotReady("the restart did not finish in time", hint="see `legible status` and .legible/logs/") from None
    except OSError as exc:
        raise NotRunning(f"the supervisor went away during the restart: {exc}", hint="run `legible status`") from None
    if not line:
        raise NotRunning("the supervisor closed the connection during the restart", hint="run `legible status`")
    doc: dict[str, Any] = json.loads(line)
    return doc


class Watcher:
    """Watch ``root`` for changes matching each service's patterns; :meth:`drain` returns services to restart.

    Args:
        root: the worktree root.
        patterns: per service, gitignore-style globs relative to ``root`` (``src/**/*.py``, ``templates/**``).
        debounce_ms: changes closer together than this are one batch (watchfiles' ``debounce``).

    """

    def __init__(self, root: Path, patterns: dict[str, list[str]], debounce_ms: int = 300) -> None:
        self.root = Path(root).resolve()
        self.specs: dict[str, Any] = {}
        if any(patterns.values()):
            import pathspec

            self.specs = {n: pathspec.PathSpec.from_lines("gitwildmatch", p) for n, p in patterns.items() if p}
        self.debounce_ms = debounce_ms
        self.changes: queue.SimpleQueue[set[str]] = queue.SimpleQueue()
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="legible-watch", daemon=True)

    def start(self) -> None:
        """Start the watching thread (no-op without patterns)."""
        if self.specs:
            self.thread.start()

    def services_for(self, paths: set[str]) -> set[str]:
        """The services whose patterns match any of ``paths`` (absolute or relative to the root)."""
        hit: set[str] = set()
        for p in paths:
            try:
                rel = Path(p).resolve().relative_to(self.root).as_posix()
            except ValueError:
                continue
            if any(part in _IGNORED_DIRS for part in rel.split("/")):
                continue
            hit |= {n for n, spec in self.specs.items() if spec.match_file(rel)}
        return hit

    def _run(self) -> None:
        from watchfiles import watch

        try:
            for batch in watch(
                self.root,
                debounce=self.debounce_ms,
                step=50,
                stop_event=self.stop_event,
                raise_interrupt=False,
                ignore_permission_denied=True,
            ):
                names = self.services_for({p for _, p in batch})
                if names:
                    self.changes.put(names)
        except Exception as exc:  # noqa: BLE001 - a dead watcher must be visible, not take the supervisor down
            print(f"supervisor: file watching stopped: {exc}", flush=True)

    def drain(self) -> set[str]:
        """Services whose files changed since the last call (empty when none)."""
        names: set[str] = set()
        while True:
            try:
                names |= self.changes.get_nowait()
            except queue.Empty:
                return names

    def close(self) -> None:
        """Stop the thread (it notices within about 50 ms)."""
        self.stop_event.set()
