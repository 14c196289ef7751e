"""Rendering shared by every command: compact text or one JSON document, and errors as one line.

Contract (ARCHITECTURE.md, "CLI contract"): text by default, ``--json`` prints one document with a stable
``schema`` field; errors print ``error: <message>`` then ``hint: <what to do>`` on stderr (and, for a
failing service, its last log lines) and exit with the code of :mod:`legible._errors`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer

from legible._errors import LegibleError

if TYPE_CHECKING:
    from legible.contract import ErrorDoc

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


def fail(err: LegibleError, as_json: bool = False, out: Path | None = None) -> NoReturn:
    """Print ``err`` (one line, a hint, the log tail) and exit with its exit code; also to ``out`` as JSON."""
    write_out(out, error_doc(err))
    if as_json:
        emit_json(error_doc(err))
    else:
        lines = [f"error: {err.message}"]
        if err.log_tail:
            lines.append(f"last {len(err.log_tail)} log lines:")
            lines.extend(f"  {line}" for line in err.log_tail)
        if err.hint:
            lines.append(f"hint: {err.hint}")
        sys.stderr.write("\n".join(lines) + "\n")
    raise typer.Exit(err.exit_code)


def error_doc(err: LegibleError) -> ErrorDoc:
    """The ``legible.error/v1`` document of ``err`` (what ``--json`` and ``--out`` carry on failure)."""
    return {
        "schema": "legible.error/v1",
        "error": type(err).__name__,
        "message": err.message,
        "hint": err.hint,
        "exit_code": err.exit_code,
        "log_tail": err.log_tail,
    }


@contextmanager
def errors_to_exit(as_json: bool = False, out: Path | None = None) -> Iterator[None]:
    """Turn a :class:`LegibleError` raised inside the block into :func:`fail`."""
    try:
        yield
    except LegibleError as err:
        fail(err, as_json, out)


def run(fn: Callable[[], T], as_json: bool = False, out: Path | None = None) -> T:
    """Call ``fn`` and turn a :class:`LegibleError` into :func:`fail` (its JSON also written to ``out``)."""
    with errors_to_exit(as_json, out):
        return fn()
    raise AssertionError("unreachable")


def fmt_ms(ms: float | None) -> str:
    """``1234.5`` -> ``"1.23 s"``, ``87.2`` -> ``"87 ms"``, ``None`` -> ``"-"``."""
    if ms is None:
        return "-"
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    return f"{ms:.0f} ms"


def table(rows: list[list[str]], header: list[str] | None = None) -> str:
    """Left-aligned columns separated by two spaces; no borders, no colour (cheap for an agent)."""
    all_rows = ([header] if header else []) + rows
    if not all_rows:
        return ""
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(all_rows[0]))]
    out = []
    for r in all_rows:
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(out)
