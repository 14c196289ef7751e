"""``legible up``'s body, and its plain command lines run without typer (issue 12).

Importing typer (and click) costs ``legible up`` about 45 ms of CPU before it can hand the plan to the
stack's supervisor, on the path every service waits for. The entry point (:func:`legible.cli.main.main`)
asks :func:`parse` first: a command line made only of ``up``'s own options, each spelled out once
(``--wait``, ``--browser``, ``--watch``, ``--json``, ``--timeout SECONDS`` with a plain decimal number,
``--out PATH``, also as ``--option=value``), is run here by :func:`main`, with the same body
(:func:`up`) and the same error output (:func:`legible.cli._output.report`) as the typer command
``legible.cli.stack.up``. Anything else (``--help``, a typo, a repeated option, ``--timeout 1e3``) returns
``None`` and goes through typer, which parses it or reports the usage error as before.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["UpArgs", "main", "parse", "up"]

#: The flags of ``legible up`` and the :class:`UpArgs` field each sets.
_FLAGS = {"--wait": "wait", "--browser": "browser", "--watch": "watch", "--json": "as_json"}
#: The options with a value, and the :class:`UpArgs` field each sets.
_OPTIONS = {"--timeout": "timeout", "--out": "out"}
#: A ``--timeout`` this parser reads itself (click's FLOAT accepts more: those go through typer).
_SECONDS = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9})?")


@dataclass(frozen=True)
class UpArgs:
    """The options of ``legible up`` (see ``legible up --help``).

    Attributes:
        wait: block until every service is ready.
        timeout: seconds to wait for readiness.
        browser: also start the browser.
        watch: restart the app on file changes.
        out: write the JSON document to this file and print one summary line.
        as_json: print one JSON document.

    """

    wait: bool = False
    timeout: float = 60.0
    browser: bool = False
    watch: bool = False
    out: Path | None = None
    as_json: bool = False


def parse(args: list[str]) -> UpArgs | None:
    """Read ``args`` (what follows ``up``) when they are a plain command line; ``None`` for typer to parse.

    Args:
        args: the words after ``legible up``.

    Returns:
        The options, or ``None`` when anything is not one of the plain forms (see the module docstring).

    """
    values: dict[str, Any] = {}
    words = iter(args)
    for word in words:
        value: bool | float | Path
        if word in _FLAGS:
            name, value = _FLAGS[word], True
        else:
            option, eq, text = word.partition("=")
            if option not in _OPTIONS:
                return None
            if not eq:
                text = next(words, "")
            name = _OPTIONS[option]
            if name == "timeout":
                if not _SECONDS.fullmatch(text):
                    return None
                value = float(text)
            elif not text or text.startswith("-"):
                return None
            else:
                value = Path(text)
        if name in values:
            return None
        values[name] = value
    return UpArgs(**values)


def up(args: UpArgs) -> None:
    """Start this worktree's stack and print the result (the body of ``legible up``, typer or not).

    Raises:
        LegibleError: what :func:`legible.stack.up` raises (also written to ``args.out``).

    """
    from legible._early import begin, take_started

    from ._output import emit_json, print_lines, run, write_out

    t0 = time.monotonic()
    # the supervisor starts before the rest of `up` is imported (issue 12); `legible up` started it even
    # before typer (legible.cli.main)
    early = take_started() or run(begin, args.out)
    from legible.render import render_up
    from legible.stack import up as do_up

    res = run(
        lambda: do_up(wait=args.wait, timeout=args.timeout, browser=args.browser, watch=args.watch, early=early),
        args.out,
    )
    res["took_ms"] = round((time.monotonic() - t0) * 1000, 1)
    write_out(args.out, res)
    emit_json(res) if args.as_json else print_lines(render_up(res, args.out))


def main(args: UpArgs) -> int:
    """Run :func:`up` as the typer app would: a :class:`LegibleError` is reported; return the exit code."""
    from legible._errors import LegibleError

    from ._output import report

    try:
        up(args)
    except LegibleError as err:
        return report(err, args.as_json)
    except KeyboardInterrupt:  # outside the stack's own handling: what click's Abort prints
        import sys

        sys.stderr.write("aborted\n")
        return 1
    return 0
