"""Rendering shared by every command: compact text or one JSON document, and errors as one line.

Contract (ARCHITECTURE.md, "CLI contract"): text by default, ``--json`` prints one document with a stable
``schema`` field; errors print ``error: <message>`` then ``hint: <what to do>`` on stderr (and, for a
failing service, its last log lines) and exit with the code of :mod:`legible._errors`.

A :class:`~legible._errors.LegibleError` that escapes a command is reported once, by the entry point
(:mod:`legible.cli.main`, with :func:`report`); commands with ``--out`` wrap their call in :func:`run` so the
error document is also written to that file.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from legible._errors import LegibleError

T = TypeVar("T")


def emit_json(doc: Mapping[str, Any]) -> None:
    """Print ``doc`` (which must have a ``schema`` key) as one JSON document on stdout."""
    assert "schema" in doc, "every --json document carries a schema"
    sys.stdout.write(json.dumps(doc, indent=1, default=str) + "\n")


def print_lines(lines: list[str]) -> None:
    """Write ``lines`` to stdout, one per line."""
    sys.stdout.write("\n".join(lines) + "\n")


#: ``--out PATH``: write the JSON document there and print one summary line (for orchestrator hooks).
OUT_HELP = "Write the JSON document to this file and print one summary line (for hooks)."


def write_out(path: Path | None, doc: Mapping[str, Any]) -> None:
    """Write ``doc`` as JSON to ``path`` (creating its directory); nothing when ``path`` is ``None``."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, default=str) + "\n")


def report(err: LegibleError, as_json: bool = False) -> int:
    """Print ``err`` (one line, a hint, the log tail) and return its exit code.

    With ``as_json`` the error is one ``legible.error/v1`` document on stdout; otherwise ``error: ...``,
    the log tail and ``hint: ...`` on stderr.
    """
    if as_json:
        emit_json({"schema": "legible.error/v1", **err.to_dict()})
    else:
        lines = [f"error: {err.message}"]
        if err.log_tail:
            lines.append(f"last {len(err.log_tail)} log lines:")
            lines.extend(f"  {line}" for line in err.log_tail)
        if err.hint:
            lines.append(f"hint: {err.hint}")
        sys.stderr.write("\n".join(lines) + "\n")
    return err.exit_code


def run(fn: Callable[[], T], out: Path | None = None) -> T:
    """Call ``fn``; a :class:`LegibleError` is also written to ``out`` (as ``legible.error/v1``), then re-raised.

    The entry point (:mod:`legible.cli.main`) prints the re-raised error and exits with its code.
    """
    try:
        return fn()
    except LegibleError as err:
        write_out(out, {"schema": "legible.error/v1", **err.to_dict()})
        raise
