"""Deploys: every start of the user services (by ``up``, ``restart`` or a watch) numbered and recorded.

A deploy is written by the supervisor to ``.legible/deploys.jsonl`` (mode 0600), one JSON object per line,
append-only: a line with ``status = "starting"`` when the deploy begins, and a line with the same ``number``
and ``status = "ready"`` or ``"failed"`` when it ends; readers keep the last line of each number. A record:

``{"schema": "legible.deploy/v1", "number": 4, "started_at": 1764390000.123 (unix s), "trigger": "up" |
"restart" | "watch", "services": ["app", ...], "status": "starting" | "ready" | "failed", "ready_ms": 312.4 |
null (the slowest restarted service, spawn to ready, ms), "ready": {service: ms}, "error": "", "commit":
"abc123..." | null, "dirty": bool, "changes": "<16 hex: sha256 of git diff COMMIT>", "files": {path: <16
hex of its diff section>}}``

The git fields come from one ``git diff --binary COMMIT`` (plus ``git rev-parse HEAD`` at deploy time):
comparing that diff again later tells which tracked files changed since the deploy (the stale-code warning),
with one git call and no state beyond the record. A new commit whose content equals the running tree is not
a change.

Deploys are also signal windows: deploy N covers ``[started_at(N), started_at(N + 1))`` and the current
one ends now. :func:`resolve_window` turns ``deploy``, ``deploy~1`` and ``deploy:7`` into those bounds.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from legible._errors import UsageError

DEPLOY_SCHEMA = "legible.deploy/v1"
DEPLOYS_SCHEMA = "legible.deploys/v1"
DEPLOYS_FILE = "deploys.jsonl"
#: ``legible deploys`` shows at most this many (the file keeps all).
MAX_LIST = 50
_REF_RE = re.compile(r"^deploy(?:(~)(\d+)|:(\d+))?$")


@dataclass(frozen=True)
class GitSnapshot:
    """The tracked content of a worktree at one moment.

    Attributes:
        commit: ``HEAD``'s full hash, or ``None`` outside a repository with commits.
        dirty: tracked files differ from ``commit``.
        changes: 16 hex digits of sha256 of ``git diff --binary COMMIT`` (empty diff: of ``b""``).
        files: per changed path, 16 hex of its section of that diff.

    """

    commit: str | None
    dirty: bool
    changes: str
    files: dict[str, str]


def _h(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", "-c", "core.quotepath=off", *args],
        cwd=root,
        capture_output=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _diff_files(root: Path, commit: str) -> tuple[bytes, dict[str, str]] | None:
    """``git diff --binary COMMIT`` of the worktree and a hash per file section; ``None`` if git fails."""
    out = _git(root, "diff", "--no-color", "--no-ext-diff", "--binary", commit, "--")
    if out.returncode != 0:
        return None
    files: dict[str, str] = {}
    for section in re.split(rb"(?m)^(?=diff --git )", out.stdout):
        if not section.startswith(b"diff --git "):
            continue
        head = section.split(b"\n", 1)[0].decode("utf-8", "replace")
        m = re.match(r"diff --git a/(.*) b/(.*)$", head)
        path = m.group(2) if m else head
        files[path] = _h(section)
    return out.stdout, files


def git_snapshot(root: Path) -> GitSnapshot:
    """Take a :class:`GitSnapshot` of the worktree at ``root`` (two git calls); never raises."""
    try:
        head = _git(root, "rev-parse", "--verify", "-q", "HEAD")
        commit = head.stdout.decode().strip() if head.returncode == 0 else None
        if not commit:
            return GitSnapshot(None, False, _h(b""), {})
        got = _diff_files(root, commit)
    except OSError:
        return GitSnapshot(None, False, _h(b""), {})
    if got is None:
        return GitSnapshot(commit, False, _h(b""), {})
    raw, files = got
    return GitSnapshot(commit, bool(files), _h(raw), files)


def changed_since(root: Path, deploy: dict[str, Any]) -> list[str] | None:
    """Tracked files whose content changed after ``deploy`` started (one ``git diff`` call).

    Args:
        root: the worktree root.
        deploy: a deploy record (needs ``commit`` and ``files``).

    Returns:
        Sorted paths (empty when the running code is current), or ``None`` when it cannot be told (no
        commit recorded, git failed).

    """
    commit = deploy.get("commit")
    if not commit:
        return None
    try:
        got = _diff_files(root, str(commit))
    except OSError:
        return None
    if got is None:
        return None
    now = got[1]
    then: dict[str, str] = deploy.get("files") or {}
    return sorted(p for p in set(now) | set(then) if now.get(p) != then.get(p))


# -- the file -----------------------------------------------------------------------------------------
def deploys_path(state_dir: Path) -> Path:
    """``<state_dir>/deploys.jsonl``."""
    return Path(state_dir) / DEPLOYS_FILE


def append(state_dir: Path, record: dict[str, Any]) -> None:
    """Append ``record`` as one line to ``deploys.jsonl``, creating it with mode 0600.

    Raises:
        OSError: the file cannot be written.

    """
    path = deploys_path(state_dir)
    line = json.dumps({"schema": DEPLOY_SCHEMA, **record}, sort_keys=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def load(state_dir: Path) -> list[dict[str, Any]]:
    """Every deploy of the worktree, oldest first (the last line of each number wins); ``[]`` if none."""
    try:
        text = deploys_path(state_dir).read_text()
    except OSError:
        return []
    by_number: dict[int, dict[str, Any]] = {}
    for line in text.splitlines():
        try:
            rec = json.loads(line)
            by_number[int(rec["number"])] = rec
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by a crash mid-write
    return [by_number[n] for n in sorted(by_number)]


def next_number(state_dir: Path) -> int:
    """The number the next deploy gets (1 for the first)."""
    found = load(state_dir)
    return int(found[-1]["number"]) + 1 if found else 1


def new_record(number: int, trigger: str, services: list[str], snap: GitSnapshot | None) -> dict[str, Any]:
    """A deploy record with ``status = "starting"`` (see the module docstring for the fields)."""
    return {
        "number": number,
        "started_at": round(time.time(), 6),
        "trigger": trigger,
        "services": services,
        "status": "starting",
        "ready_ms": None,
        "ready": {},
        "error": "",
        "commit": snap.commit if snap else None,
        "dirty": snap.dirty if snap else False,
        "changes": snap.changes if snap else "",
        "files": snap.files if snap else {},
    }


# -- windows ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Window:
    """The time span of one deploy.

    Attributes:
        deploy: the deploy record.
        since_ns: its start, ns since the epoch.
        until_ns: the next deploy's start, or ``None`` for the current deploy (until now).
        label: ``deploy 4``.

    """

    deploy: dict[str, Any]
    since_ns: int
    until_ns: int | None
    label: str

    def seconds(self, now_ns: int | None = None) -> float:
        """The window's length in seconds (to now for the current deploy); at least 1 ms."""
        end = self.until_ns if self.until_ns is not None else (now_ns or time.time_ns())
        return max((end - self.since_ns) / 1e9, 0.001)


def is_ref(text: str | None) -> bool:
    """True when ``text`` is a deploy reference (``deploy``, ``deploy~N``, ``deploy:N``)."""
    return bool(text) and _REF_RE.match(str(text).strip()) is not None


def window(deploys: list[dict[str, Any]], ref: str, *, what: str = "--since") -> Window:
    """Resolve ``ref`` against ``deploys`` (oldest first).

    Args:
        deploys: as :func:`load` returns them.
        ref: ``deploy`` (the current one), ``deploy~N`` (N before the current), ``deploy:N`` (number N).
        what: the option, for messages.

    Raises:
        UsageError: ``ref`` is not a deploy reference, or that deploy does not exist.

    """
    m = _REF_RE.match(ref.strip())
    if not m:
        raise UsageError(f"{what}: {ref!r} is not a deploy", hint="use deploy, deploy~1 or deploy:7")
    if not deploys:
        raise UsageError(f"{what}: no deploy recorded here yet", hint="`legible up --wait` makes deploy 1")
    if m.group(3) is not None:
        numbers = [int(d["number"]) for d in deploys]
        want = int(m.group(3))
        if want not in numbers:
            raise UsageError(
                f"{what}: there is no deploy {want}",
                hint=f"deploys here: {numbers[0]}..{numbers[-1]} (legible deploys)",
            )
        i = numbers.index(want)
    else:
        back = int(m.group(2)) if m.group(1) else 0
        i = len(deploys) - 1 - back
        if i < 0:
            raise UsageError(
                f"{what}: only {len(deploys)} deploys recorded, no {ref.strip()}", hint="see `legible deploys`"
            )
    d = deploys[i]
    until = int(float(deploys[i + 1]["started_at"]) * 1e9) if i + 1 < len(deploys) else None
    return Window(d, int(float(d["started_at"]) * 1e9), until, f"deploy {d['number']}")


def resolve_window(state_dir: Path, ref: str, *, what: str = "--since") -> Window:
    """:func:`window` over the deploys recorded in ``state_dir``.

    Raises:
        UsageError: see :func:`window`.

    """
    return window(load(state_dir), ref, what=what)


def iso_bounds(w: Window) -> tuple[str, str | None]:
    """``(since, until)`` of ``w`` as ISO 8601 UTC strings (microseconds), for the ``--since`` parsers."""
    import datetime as dt

    def iso(ns: int) -> str:
        return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")

    return iso(w.since_ns), (iso(w.until_ns) if w.until_ns is not None else None)


# -- what the commands show ---------------------------------------------------------------------------
def current(state_dir: Path) -> dict[str, Any] | None:
    """The newest deploy, or ``None``."""
    found = load(state_dir)
    return found[-1] if found else None


def stale_note(root: Path, state_dir: Path, *, alive: bool = True) -> dict[str, Any] | None:
    """Whether the running deploy is older than the tracked files (one git call).

    Returns:
        ``None`` when nothing is running or no deploy is recorded, else ``{"deploy": N, "commit": "abc1234",
        "changed": [path...] | None, "stale": bool, "message": str}``; ``message`` is the one-line warning
        (``app runs deploy 4 (commit abc1234, 2 files changed since): legible restart``) or ``""``.

    """
    if not alive:
        return None
    dep = current(state_dir)
    if dep is None:
        return None
    changed = changed_since(root, dep)
    short = str(dep.get("commit") or "")[:7] or "no commit"
    who = "app" if "app" in (dep.get("services") or ["app"]) else ", ".join(dep.get("services") or [])
    msg = ""
    if changed:
        n = len(changed)
        msg = (
            f"{who} runs deploy {dep['number']} (commit {short}, {n} file{'s' if n != 1 else ''} changed since): "
            "legible restart"
        )
    return {"deploy": dep["number"], "commit": short, "changed": changed, "stale": bool(changed), "message": msg}


def warning_lines(start: Path | None = None) -> list[str]:
    """The warnings a query command prints first for the worktree containing ``start``, one line each.

    ``"warning: ..."``: the stale-code warning (:func:`stale_note`), and a collector that is not ready in a
    running stack (:func:`collector_note`: the answer then lacks what the collector has not stored). ``logs``
    and ``traces`` also put them in their JSON document (``warnings``). Cheap: reads ``state.json`` and
    ``deploys.jsonl`` and runs one ``git diff``; never raises.

    Returns:
        The lines, ``[]`` when there is nothing to say (or no worktree, or no stack running).

    """
    from legible._errors import LegibleError
    from legible.contract import read_state  # liveness without importing legible.stack
    from legible.worktree import find_worktree

    try:
        wt = find_worktree(start)
        state = read_state(wt.state_file, stopped_is_final=True) if wt.state_file.exists() else None
        alive = bool(state and state["alive"])
        note = stale_note(wt.root, wt.state_dir, alive=alive)
    except (LegibleError, OSError):
        return []
    lines = [f"warning: {note['message']}"] if note and note["message"] else []
    if state is not None and alive and (collector := collector_line(state)):
        lines.append(collector)
    return lines


def collector_line(state: Mapping[str, Any], *, in_status: bool = False) -> str:
    """:func:`collector_note` as one ``warning: <message>; <command>`` line, or ``""``.

    ``in_status``: for ``legible status`` itself, which does not name itself as the command to run.
    """
    note = collector_note(state)
    if note is None:
        return ""
    message, command = note
    return f"warning: {message}" + ("" if in_status and command == "legible status" else f"; {command}")


def collector_note(state: Mapping[str, Any]) -> tuple[str, str] | None:
    """Why a running stack's logs and spans may be incomplete (its collector is not ready), and what to run.

    Args:
        state: the stack's ``state.json`` (:func:`legible.contract.read_state`), supervisor alive.

    Returns:
        ``None`` when the collector is ready or the stack has none; else ``(message, command)``:
        ``("collector failed (<its error>): logs and spans after it stopped are not stored", "legible down &&
        legible up")``, or for ``starting``, ``backoff`` and ``unhealthy`` ``("collector <status> (<why>): new
        logs and spans may be missing until it is ready", "legible status")``.

    """
    svc = (state.get("services") or {}).get("collector") or {}
    status = svc.get("status")
    if status in (None, "ready"):
        return None
    why = svc.get("error") or f"restarts={svc.get('restarts', 0)}"
    if status == "failed":
        return f"collector failed ({why}): logs and spans after it stopped are not stored", "legible down && legible up"
    return f"collector {status} ({why}): new logs and spans may be missing until it is ready", "legible status"


def listing(start: Path | None = None, limit: int = 10) -> dict[str, Any]:
    """The last ``limit`` deploys of the worktree containing ``start`` (at most :data:`MAX_LIST`).

    Returns:
        ``legible.deploys/v1``: ``{"schema", "key", "total", "current": N | null, "deploys": [record...]}``,
        newest first; each record without its per-file hashes, with ``age_s``.

    Raises:
        UsageError: not in a git worktree, or ``limit`` below 1.

    """
    from legible.worktree import find_worktree

    if limit < 1:
        raise UsageError("--limit must be at least 1", hint="e.g. --limit 10")
    wt = find_worktree(start)
    found = load(wt.state_dir)
    now = time.time()
    shown = []
    for d in reversed(found[-min(limit, MAX_LIST) :]):
        rec = {k: v for k, v in d.items() if k != "files"}
        rec["files_changed"] = len(d.get("files") or {})
        rec["age_s"] = round(now - float(d["started_at"]), 1)
        shown.append(rec)
    return {
        "schema": DEPLOYS_SCHEMA,
        "key": wt.key,
        "total": len(found),
        "current": found[-1]["number"] if found else None,
        "deploys": shown,
    }


# -- restart ------------------------------------------------------------------------------------------
RESTART_SCHEMA = "legible.restart/v1"


def restart(start: Path | None = None, services: list[str] | None = None, *, timeout: float = 60.0) -> dict[str, Any]:
    """Restart the user services of the running stack (default: the app and its extra services) as a new deploy.

    The stores, collector and browser keep running (same tab, cookies, port lease); the supervisor stops the
    named services and their dependents, starts them in dependency order and waits for readiness.

    Args:
        start: a path inside the worktree (default: the current directory).
        services: user service names; ``None`` or empty for all of them.
        timeout: seconds to wait for the new deploy to be ready.

    Returns:
        ``legible.restart/v1``: ``{"schema", "key", "deploy": record (see the module docstring),
        "ready_ms", "took_ms"}``; ``ready_ms`` is the app's (or slowest service's) spawn-to-ready time.

    Raises:
        NotRunning: no stack runs here.
        UsageError: the supervisor refused (unknown or observability service, stack still starting).
        NotReady: a service exited or was not ready in time (exit 4); the message names it and carries its
            last log lines; the previous deploy's data stays queryable.

    """
    from legible._errors import NotReady, NotRunning
    from legible.control import request_restart, socket_path
    from legible.worktree import find_worktree

    t0 = time.monotonic()
    wt = find_worktree(start)
    if not socket_path(wt.state_dir).exists():  # a live supervisor listens there; connecting tells the rest
        raise NotRunning(f"no stack is running for {wt.key}", hint="run `legible up --wait` first")
    rec = request_restart(wt.state_dir, list(services or []), timeout=timeout)
    took = round((time.monotonic() - t0) * 1000, 1)
    if rec.get("status") != "ready":
        name = str(rec.get("failed_service") or "app")
        log = str(wt.logs_dir / f"{name}.log")
        raise NotReady(
            f"deploy {rec.get('number')}: {rec.get('error') or name + ' did not start'}",
            hint=f"the rest of the stack runs; fix it and run `legible restart` (log: {log})",
            log_tail=_tail_since(log, int(rec.get("log_offset") or 0)),
        )
    return {
        "schema": RESTART_SCHEMA,
        "key": wt.key,
        "deploy": rec,
        "ready_ms": rec.get("ready_ms"),
        "took_ms": took,
    }


def _tail_since(path: str, offset: int, lines: int = 10) -> list[str]:
    """The last ``lines`` lines written to ``path`` after byte ``offset`` (this start's output only)."""
    from legible.supervisor import log_tail

    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            text = fh.read()[-64 * 1024 :].decode("utf-8", "replace")
    except OSError:
        return log_tail(path, lines)
    tail = [ln.rstrip() for ln in text.splitlines() if ln.strip()][-lines:]
    return [ln if len(ln) <= 300 else ln[:297] + "..." for ln in tail] or log_tail(path, lines)


def window_args(
    since: str | None, until: str | None, state_dir: Path
) -> tuple[str | None, str | None, str | None, str | None]:
    """Turn ``--since deploy...`` into ISO bounds for the ordinary time parsers.

    Returns:
        ``(since, until, since_label, until_label)``: unchanged with ``None`` labels when ``since`` is not a
        deploy reference; else the deploy window's bounds (``until`` is the next deploy's start, or the
        caller's ``until`` for the current deploy) labelled ``deploy N`` and ``deploy N+1``.

    Raises:
        UsageError: an unknown deploy.

    """
    if not is_ref(since):
        return since, until, None, None
    assert since is not None
    found = load(state_dir)
    w = window(found, since)
    lo, hi = iso_bounds(w)
    if hi is None:
        return lo, until, w.label, until
    nxt = next((d for d in found if float(d["started_at"]) * 1e9 >= w.until_ns), None) if w.until_ns else None
    return lo, hi, w.label, f"deploy {nxt['number']}" if nxt else hi


# -- check verdicts per deploy (for legible diff) -----------------------------------------------------
CHECKS_FILE = "checks.jsonl"
#: ``checks.jsonl`` is cut to its newest half past this many lines.
MAX_CHECK_LINES = 2000


def record_checks(state_dir: Path, doc: dict[str, Any]) -> None:
    """Append the verdicts of a ``legible check`` run to ``.legible/checks.jsonl`` (0600), tagged with the deploy.

    One line: ``{"deploy": N | null, "time": unix s, "checks": {name: {"status", "summary"}}}``. Never raises
    (the verdicts are already printed; a full disk must not turn a pass into an error).
    """
    dep = current(state_dir)
    line = {
        "deploy": dep["number"] if dep else None,
        "time": round(time.time(), 3),
        "checks": {c["name"]: {"status": c["status"], "summary": c["summary"]} for c in doc.get("checks", [])},
    }
    path = Path(state_dir) / CHECKS_FILE
    try:
        if not Path(state_dir).is_dir():
            return
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (json.dumps(line, sort_keys=True) + "\n").encode())
        finally:
            os.close(fd)
        if path.stat().st_size > MAX_CHECK_LINES * 400:
            lines = path.read_text().splitlines()
            if len(lines) > MAX_CHECK_LINES:
                tmp = path.with_suffix(".tmp")
                tmp.write_text("\n".join(lines[-MAX_CHECK_LINES // 2 :]) + "\n")
                os.chmod(tmp, 0o600)
                os.replace(tmp, path)
    except OSError:
        return


def check_verdicts(state_dir: Path, number: int) -> dict[str, dict[str, Any]]:
    """The last verdict of each check run during deploy ``number`` (``{name: {"status", "summary"}}``)."""
    out: dict[str, dict[str, Any]] = {}
    try:
        text = (Path(state_dir) / CHECKS_FILE).read_text()
    except OSError:
        return out
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("deploy") == number:
            out.update(rec.get("checks") or {})
    return out
