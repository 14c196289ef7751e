"""Setup steps per deploy: ``[app] setup = ["alembic upgrade head", "python seed.py"]``.

The supervisor starts a service that has setup steps as ``python -m legible.setup_steps ... -- ARGV``
(:func:`wrap`): each step runs with ``/bin/sh -c`` in the service's directory and environment (so it sees
``DATABASE_URL``), in order, its output appended to ``logs/<service>-setup.log`` (tailed by the collector
like every log: ``legible logs --service app-setup``); then the service's own command replaces this process
(``os.execvp``), keeping its pid and process group. A step that exits non-zero ends the start: this process
exits with code 3 after printing one line (``setup step 2/2 failed (exit 1): python seed.py``) and the
step's last output lines to stderr (the service's log), so the deploy fails with that line and its tail.

What happened is written to ``run/<service>-setup.json`` (:func:`record_path`), which the supervisor copies
into the deploy record as ``setup``: ``{"ok": bool, "ms": float, "steps": [{"command", "ms", "exit_code"}],
"error": str}`` (durations in milliseconds).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from legible._files import write_private

#: Exit code of a start whose setup step failed.
SETUP_FAILED = 3
_TAIL = 10


def setup_log(service_log: str) -> str:
    """``logs/<service>-setup.log`` beside ``logs/<service>.log``."""
    p = Path(service_log)
    return str(p.with_name(f"{p.stem}-setup.log"))


def record_path(service_log: str) -> str:
    """``.legible/run/<service>-setup.json`` for the service whose log is ``service_log`` (``.legible/logs/x.log``)."""
    p = Path(service_log)
    return str(p.parent.parent / "run" / f"{p.stem}-setup.json")


def wrap(argv: list[str], steps: list[str], service_log: str) -> list[str]:
    """The argv that runs ``steps`` and then ``argv`` (see the module docstring)."""
    out = [sys.executable, "-m", "legible.setup_steps", "--log", setup_log(service_log)]
    out += ["--record", record_path(service_log)]
    for s in steps:
        out += ["--step", s]
    return [*out, "--", *argv]


def read_record(service_log: str) -> dict[str, Any] | None:
    """The last setup record of the service whose log is ``service_log``, or ``None``."""
    try:
        data = json.loads(Path(record_path(service_log)).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def run_steps(steps: list[str], log: Path, record: Path) -> dict[str, Any]:
    """Run ``steps`` in order, output appended to ``log``; stop at the first failure; write and return the record."""
    log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    record.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    rec: dict[str, Any] = {"ok": True, "ms": 0.0, "steps": [], "error": "", "pid": os.getpid()}
    t0 = time.monotonic()
    for i, step in enumerate(steps, 1):
        with open(log, "ab") as fh:
            fh.write(f"legible setup: step {i}/{len(steps)}: {step}\n".encode())
            fh.flush()
            start_at = fh.tell()
            t = time.monotonic()
            code = subprocess.run(  # noqa: S603 - the user's own command from legible.toml
                ["/bin/sh", "-c", step], stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT, check=False
            ).returncode
        ms = round((time.monotonic() - t) * 1000, 1)
        rec["steps"].append({"command": step, "ms": ms, "exit_code": code})
        if code != 0:
            rec["ok"] = False
            rec["error"] = f"setup step {i}/{len(steps)} failed (exit {code}): {step}"
            rec["tail"] = _tail(log, start_at)
            break
    rec["ms"] = round((time.monotonic() - t0) * 1000, 1)
    with open(log, "ab") as fh:
        fh.write(f"legible setup: {'done' if rec['ok'] else rec['error']} ({rec['ms']} ms)\n".encode())
    write_private(record, json.dumps(rec))
    return rec


def _tail(log: Path, offset: int) -> list[str]:
    with open(log, "rb") as fh:
        fh.seek(offset)
        text = fh.read()[-64 * 1024 :].decode("utf-8", "replace")
    return [ln.rstrip()[:300] for ln in text.splitlines() if ln.strip()][-_TAIL:]


def main(argv: list[str] | None = None) -> None:
    """Run the steps, then exec the service's command (or exit :data:`SETUP_FAILED`)."""
    p = argparse.ArgumentParser(prog="legible.setup_steps")
    p.add_argument("--log", required=True)
    p.add_argument("--record", required=True)
    p.add_argument("--step", action="append", default=[])
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    rec = run_steps(args.step, Path(args.log), Path(args.record))
    if not rec["ok"]:
        print(rec["error"], file=sys.stderr)
        for line in rec.get("tail", []):
            print(f"  {line}", file=sys.stderr)
        sys.stderr.flush()
        raise SystemExit(SETUP_FAILED)
    os.execvp(command[0], command)  # noqa: S606 - the service's own command, as the plan says


if __name__ == "__main__":
    main()
