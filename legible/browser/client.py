"""Talk to a stack's browser agent: where its socket is, and one request per call.

The ``chromium`` service runs :mod:`legible.browser.agent`, which owns the stack's Chromium and one
Playwright connection to it (CDP over a pipe). Each ``legible browser ...`` command is a short process that
sends one request over the agent's Unix socket and prints the answer, so the tab, the last snapshot's refs
and the console/network buffers live on between calls, and a call costs no Playwright start-up. The agent
launches Chromium at its first request; that answer carries ``"launched_ms"`` beside ``ok`` and
:func:`call` prints one line about it on stderr.

Wire format (one request per connection): the client writes one JSON line ``{"op": str, "args": {...}}``;
the agent answers one JSON line ``{"ok": true, "result": {...}}`` or ``{"ok": false, "error": {"kind",
"message", "hint"}}`` where ``kind`` is ``usage`` (exit 2), ``failed`` (exit 1) or ``notready`` (exit 4).
This module imports neither Playwright nor anything heavy.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from legible._errors import CheckFailed, LegibleError, NotReady, NotRunning, UsageError

#: Longest Unix socket path Linux accepts (``sun_path`` is 108 bytes with the terminating NUL).
_MAX_SOCK = 107


def browser_dir(state_dir: Path) -> Path:
    """``.legible/browser``: profile, screenshots, snapshots, recordings and journey runs."""
    return Path(state_dir) / "browser"


def socket_path(state_dir: Path) -> Path:
    """The agent's Unix socket: ``.legible/browser/agent.sock``, or ``/tmp/legible-<uid>-<hash>.sock`` when too long.

    The fallback is ``/tmp`` itself, not ``$TMPDIR``: the agent runs with ``TMPDIR`` under ``.legible/`` and
    the CLI does not, and both must name the same socket. The agent removes it when it stops.
    """
    p = browser_dir(state_dir) / "agent.sock"
    if len(str(p)) <= _MAX_SOCK:
        return p
    digest = hashlib.sha256(str(Path(state_dir).resolve()).encode()).hexdigest()[:16]
    return Path("/tmp") / f"legible-{os.getuid()}-{digest}.sock"  # noqa: S108 - see above


def pid_file(state_dir: Path) -> Path:
    """``.legible/browser/chromium.pid``: the pid of the Chromium the agent launched; absent while it is idle.

    The agent launches Chromium at its first request (lazy browser), writes this file then, and removes it
    when Chromium stops; :func:`browser_launched` reads it.
    """
    return browser_dir(state_dir) / "chromium.pid"


def browser_launched(state_dir: Path) -> bool:
    """True when the stack's agent has launched Chromium and that process still runs (``idle`` otherwise)."""
    try:
        pid = int(pid_file(state_dir).read_text().strip() or 0)
    except (OSError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


#: Longest ``TMPDIR`` Chromium can use: its ProcessSingleton binds
#: ``<TMPDIR>/org.chromium.Chromium.XXXXXX/SingletonSocket`` (45 bytes more), which must fit ``sun_path``.
MAX_TMPDIR = _MAX_SOCK - len("/org.chromium.Chromium.XXXXXX/SingletonSocket")


def browser_tmp_dir(state_dir: Path) -> Path:
    """The browser's ``TMPDIR``: ``.legible/tmp``, or ``/tmp/legible-<uid>-<hash>`` when that path is too long.

    Chromium's scratch folders (``org.chromium.Chromium.*``, its singleton socket among them), Playwright's
    artifacts and the agent's temp files go there; the agent empties it when it starts and removes it when
    it stops, and ``legible down`` removes it. The fallback exists because a longer ``TMPDIR`` makes Chromium
    abort ("Socket path too long"); it is private (0700) and as short-lived as the ``.legible`` one.
    """
    p = Path(state_dir) / "tmp"
    if len(str(p)) <= MAX_TMPDIR:
        return p
    digest = hashlib.sha256(str(Path(state_dir).resolve()).encode()).hexdigest()[:16]
    return Path("/tmp") / f"legible-{os.getuid()}-{digest}"  # noqa: S108 - see above


class BrowserError(LegibleError):
    """A browser action failed (the element was not there, the text never showed up); exit 1."""

    exit_code = 1


_KINDS: dict[str, type[LegibleError]] = {
    "usage": UsageError,
    "failed": BrowserError,
    "check": CheckFailed,
    "notready": NotReady,
}


#: Extra seconds a call waits while the stack's Chromium is not launched yet (Playwright's launch gives up at 20).
LAUNCH_ALLOWANCE_S = 30.0


def call(state_dir: Path, op: str, args: dict[str, Any] | None = None, timeout: float = 60.0) -> dict[str, Any]:
    """Send one request to the agent of the stack whose state directory is ``state_dir``.

    Args:
        state_dir: the worktree's ``.legible`` directory.
        op: the operation (``open``, ``snapshot``, ``click``, ... see :mod:`legible.browser.agent`).
        args: its arguments (JSON-compatible).
        timeout: seconds to wait for the answer; :data:`LAUNCH_ALLOWANCE_S` more while Chromium is idle.

    Returns:
        The operation's result document.

    Raises:
        NotRunning: no agent listens (the stack runs without ``--browser``, or is down).
        UsageError: a bad ref, selector or argument (exit 2).
        BrowserError: the action failed in the page (exit 1).
        NotReady: the page did not load in time (exit 4).

    """
    path = socket_path(state_dir)
    if not browser_launched(state_dir):
        timeout += LAUNCH_ALLOWANCE_S  # this call may have to start Chromium first
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise NotRunning(
                "no browser runs in this stack",
                hint="run `legible up --wait --browser` (or set [stack] browser = true in legible.toml)",
            ) from exc
        sock.sendall(json.dumps({"op": op, "args": args or {}}).encode() + b"\n")
        chunks = []
        while True:
            try:
                data = sock.recv(1 << 16)
            except TimeoutError as exc:
                raise NotReady(
                    f"browser {op}: no answer within {timeout:g} s", hint="see .legible/logs/chromium.log"
                ) from exc
            if not data:
                break
            chunks.append(data)
    finally:
        sock.close()
    raw = b"".join(chunks)
    if not raw:
        raise NotReady(f"browser {op}: the agent closed the connection", hint="see .legible/logs/chromium.log")
    doc: dict[str, Any] = json.loads(raw)
    if doc.get("launched_ms") is not None:  # this call started the stack's browser: say so, once
        print(
            f"browser: started Chromium for this stack ({float(doc['launched_ms']) / 1000:.1f} s; "
            "it starts at the first browser call)",
            file=sys.stderr,
            flush=True,
        )
    if doc.get("ok"):
        result: dict[str, Any] = doc["result"]
        return result
    err = doc.get("error", {})
    cls = _KINDS.get(err.get("kind", "failed"), BrowserError)
    raise cls(err.get("message", "browser error"), hint=err.get("hint", ""))
