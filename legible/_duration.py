"""The one duration parser and the one duration formatter of legible.

Every duration a user types (``--since``, ``--range``, ``--step``, ``--min-duration``, ``--startup``, the
``max`` and ``since`` keys of ``[checks.*]`` in ``legible.toml``) goes through :func:`parse_duration`, and
every duration legible prints (query listings, trace trees, check lines, the proof summary, ``legible up``)
goes through :func:`format_ms`, so one value always reads the same.

Parsing accepts one or more ``<number><unit>`` parts, largest first or not, with optional spaces:
``250ms``, ``1.5s``, ``2m``, ``1h30m``, ``1d``, ``3.4 ms``; units ``ns us µs ms s m h d w``. A bare
number (``45``) means the unit the caller names (``bare="s"``), or is refused when the caller passes
``bare=None``. The unit letters are those of Go's ``time.ParseDuration`` plus ``d`` and ``w``.

Formatting rule (one rule, used everywhere):

* below 1 ms: two decimals, ``0.42 ms``; below 10 ms: one decimal, ``3.4 ms``; below 1 s: whole
  milliseconds, ``87 ms``;
* below 10 s: two decimals, ``1.23 s``; below a minute: one decimal, ``12.3 s``;
* from a minute: whole units, largest two, no spaces (Go's ``time.Duration`` style): ``1m30s``,
  ``2m05s``, ``12m`` (seconds dropped from 10 minutes on), ``1h30m``, ``2d``, ``1d3h``;
* trailing zeros are dropped (``1 s``, ``2.3 s``, ``4 ms``) and ``None`` prints as ``-``.

Every string :func:`format_ms` prints is accepted by :func:`parse_duration` (round trip).
"""

from __future__ import annotations

import math
import re

from legible._errors import UsageError

__all__ = ["UNITS_S", "format_ms", "format_seconds", "parse_duration"]

#: Seconds per unit letter.
UNITS_S = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ns|us|µs|ms|s|m|h|d|w)")
#: Examples for error hints.
EXAMPLES = "250ms, 1.5s, 2m, 1h30m or 1d"


def parse_duration(text: str, *, what: str = "duration", bare: str | None = "s") -> float:
    """Parse a duration such as ``250ms``, ``1.5s``, ``2m``, ``1h30m``, ``1d`` or ``3.4 ms``.

    Args:
        text: the duration (case and spaces do not matter).
        what: what the value is, for the error message: the flag (``"--since"``) or the config key.
        bare: the unit a bare number means (``"s"``, ``"ms"``, any key of :data:`UNITS_S`), or ``None`` to
            refuse a bare number (the message then asks for a unit).

    Returns:
        The duration in seconds (``float``, finite, ``>= 0``).

    Raises:
        UsageError: ``text`` is empty, negative, not finite, has an unknown unit or trailing junk, or is a
            bare number where ``bare`` is ``None``; the message names ``what`` and the hint gives examples.

    """
    s = text.strip().lower().replace(" ", "")
    if not s:
        raise UsageError(f"{what}: empty duration", hint=f"use e.g. {EXAMPLES}")
    try:
        value = float(s)
    except ValueError:
        pos, total = 0, 0.0
        for m in _PART.finditer(s):
            if m.start() != pos:
                break
            total += float(m.group(1)) * UNITS_S[m.group(2)]
            pos = m.end()
        if pos != len(s) or pos == 0:
            raise UsageError(f"{what}: {text!r} is not a duration", hint=f"use e.g. {EXAMPLES}") from None
        return total
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"{what}: {text!r} is not a duration", hint=f"use e.g. {EXAMPLES}")
    if bare is None:
        raise UsageError(f"{what}: {text!r} needs a unit", hint=f"use e.g. {text.strip()}ms or {text.strip()}s")
    return value * UNITS_S[bare]


def _trim(number: str) -> str:
    """``"1.00"`` -> ``"1"``, ``"2.30"`` -> ``"2.3"``, ``"87"`` -> ``"87"``."""
    return number.rstrip("0").rstrip(".") if "." in number else number


def format_ms(ms: float | None) -> str:
    """Format a duration in milliseconds by the module's one rule (see the module docstring).

    Args:
        ms: the duration in milliseconds (``>= 0``; a negative value prints with a ``-`` sign), or ``None``.

    Returns:
        ``0.42 ms``, ``3.4 ms``, ``87 ms``, ``1.23 s``, ``12.3 s``, ``1m30s``, ``1h30m``, ``2d``; ``-`` for
        ``None``.

    """
    if ms is None:
        return "-"
    if ms < 0:
        return "-" + format_ms(-ms)
    if round(ms, 2) < 1:
        return f"{_trim(f'{ms:.2f}')} ms"
    if round(ms, 1) < 10:
        return f"{_trim(f'{ms:.1f}')} ms"
    if round(ms) < 1000:
        return f"{ms:.0f} ms"
    s = ms / 1000
    if round(s, 2) < 10:
        return f"{_trim(f'{s:.2f}')} s"
    if round(s, 1) < 60:
        return f"{_trim(f'{s:.1f}')} s"
    whole = round(s)
    if whole < 3600:
        m, r = divmod(whole, 60)
        return f"{m}m" if r == 0 or m >= 10 else f"{m}m{r:02d}s"
    if whole < 86400:
        h, r = divmod(whole, 3600)
        return f"{h}h" if r < 60 else f"{h}h{r // 60:02d}m"
    d, r = divmod(whole, 86400)
    return f"{d}d" if r < 3600 else f"{d}d{r // 3600}h"


def format_seconds(seconds: float | None) -> str:
    """Format a duration in seconds: ``format_ms(seconds * 1000)`` (``30 s``, ``1m30s``, ``2h``)."""
    return format_ms(None if seconds is None else seconds * 1000)
