"""Parsing and formatting shared by the query modules: times, numbers, cut lines.

Durations are parsed and printed by :mod:`legible._duration` (re-exported here as ``parse_duration``,
``fmt_ms`` and ``format_seconds``), the one parser and formatter of the whole package.

Everything here is pure (the current time is passed in or read once by the caller), cheap to import and
never prints.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
import time
from collections.abc import Mapping
from typing import Any, NamedTuple, overload

from legible._duration import format_ms as fmt_ms
from legible._duration import format_seconds, parse_duration
from legible._errors import UsageError

__all__ = [
    "View",
    "align",
    "cut_line",
    "fmt_ago",
    "fmt_clock",
    "fmt_count",
    "fmt_ms",
    "format_seconds",
    "iso",
    "now_ns",
    "one_line",
    "parse_duration",
    "parse_limit",
    "parse_time",
    "sig4",
]


class View(NamedTuple):
    """What a query command shows: its ``--json`` document (with ``schema``) and its text lines (bounded)."""

    doc: Mapping[str, Any]
    lines: list[str]


def parse_limit(value: int | None, default: int, *, what: str = "--limit") -> int:
    """Check a count option (a positive integer) and apply its default.

    Args:
        value: what the user gave, or ``None``.
        default: the count when ``value`` is ``None``.
        what: the option, for the message (``--limit``, ``--slowest``).

    Raises:
        UsageError: zero or negative.

    """
    if value is None:
        return default
    if value < 1:
        raise UsageError(f"{what}: {value} must be at least 1", hint=f"e.g. {what} 100")
    return value


def parse_time(text: str, now_ns: int, *, what: str = "--since") -> int:
    """Parse a point in time: a duration back from now, a clock time today, or an ISO 8601 timestamp.

    Args:
        text: ``5m`` (5 minutes ago), ``14:03`` / ``14:03:10`` (today, local time; yesterday if that is in
            the future), ``2026-11-22T14:03:10`` (local time unless it carries an offset or ``Z``), or
            ``all`` / ``0`` (the epoch: no bound).
        now_ns: the current time, nanoseconds since the Unix epoch.
        what: the option name, for the error message.

    Returns:
        Nanoseconds since the Unix epoch (UTC).

    Raises:
        UsageError: none of the forms above.

    """
    s = text.strip()
    if s.lower() in ("all", "0", "forever"):
        return 0
    if re.fullmatch(r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?", s):
        parts = s.split(":")
        today = _dt.datetime.fromtimestamp(now_ns / 1e9).astimezone()
        t = today.replace(
            hour=int(parts[0]),
            minute=int(parts[1]),
            second=int(float(parts[2])) if len(parts) > 2 else 0,
            microsecond=0,
        )
        ns = int(t.timestamp() * 1e9)
        return ns - 86400 * 10**9 if ns > now_ns else ns
    if re.match(r"\d{4}-\d{2}-\d{2}", s):
        try:
            t = _dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(f"{what}: {text!r} is not an ISO 8601 time", hint="e.g. 2026-11-22T14:03:10") from None
        if t.tzinfo is None:
            t = t.astimezone()
        return int(t.timestamp() * 1e9)
    try:
        return now_ns - int(parse_duration(s, what=what) * 1e9)
    except UsageError:
        raise UsageError(f"{what}: {text!r} is not a time", hint=f"use {TIME_FORMS}") from None


#: What ``--since`` and ``--until`` accept, for the hint of a bad one (the deploy forms are resolved before
#: :func:`parse_time`, by :func:`legible.deploys.window_args`).
TIME_FORMS = "5m or 2h (ago), 14:03, 2026-11-22T14:03:10, all, or deploy, deploy~1, deploy:7"


def now_ns() -> int:
    """Return the current time in nanoseconds since the Unix epoch."""
    return time.time_ns()


@overload
def iso(ns: int) -> str: ...
@overload
def iso(ns: None) -> None: ...
@overload
def iso(ns: int | None) -> str | None: ...


def iso(ns: int | None) -> str | None:
    """Nanoseconds since the epoch -> ISO 8601 in UTC with milliseconds (``2026-11-22T14:03:10.123Z``)."""
    if ns is None:
        return None
    t = _dt.datetime.fromtimestamp(ns / 1e9, tz=_dt.UTC)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fmt_clock(ns: int, *, ms: bool = False) -> str:
    """Nanoseconds since the epoch -> local ``HH:MM:SS`` (``HH:MM:SS.mmm`` with ``ms``)."""
    t = _dt.datetime.fromtimestamp(ns / 1e9)
    return t.strftime("%H:%M:%S.%f")[:12] if ms else t.strftime("%H:%M:%S")


def fmt_ago(ns: int, now: int) -> str:
    """How long before ``now`` the instant ``ns`` was: ``3s ago``, ``12m ago``, ``in 2s`` (clock skew)."""
    delta = (now - ns) / 1e9
    if delta < 0:
        return f"in {format_seconds(max(1, round(-delta)))}"
    if delta < 1:
        return "now"
    return f"{format_seconds(round(delta))} ago"


def fmt_count(n: int) -> str:
    """``1204`` -> ``1,204``."""
    return f"{n:,}"


def sig4(x: float) -> str:
    """Round to 4 significant digits without exponent noise: ``0.001234``, ``12.35``, ``1.235e+07``."""
    if x is None or isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    if 1e-4 <= abs(x) < 1e7:
        digits = 3 - math.floor(math.log10(abs(x)))
        s = f"{round(x, digits):.{max(digits, 0)}f}"
        return s.rstrip("0").rstrip(".") if "." in s else s
    return f"{x:.3e}"


def one_line(text: str, width: int = 160) -> str:
    """Collapse whitespace to single spaces and cut at ``width`` characters with ``…``."""
    s = " ".join(str(text).split())
    return s if len(s) <= width else s[: width - 1] + "…"


def cut_line(hidden: int, noun: str, how: str) -> str:
    """The last line of a cut listing: ``… 17 more groups: --limit 60 or --raw``."""
    return f"… {fmt_count(hidden)} more {noun}: {how}"


def align(rows: list[list[str]]) -> list[str]:
    """Left-align columns separated by two spaces (the last column is not padded); no borders, no colour."""
    if not rows:
        return []
    n = len(rows[0])
    widths = [max(len(r[i]) for r in rows) for i in range(n - 1)]
    return ["  ".join([*(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)), r[-1]]).rstrip() for r in rows]
