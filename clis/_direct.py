"""The query commands without typer: ``logs``, ``traces``, ``trace`` and ``check``, parsed here when plain.

On a stopped stack (after ``legible down``) each query command runs in a fresh interpreter, and importing
typer (with its vendored click) and building the command costs 40-50 ms of a ~200 ms call whose floor is
``import duckdb`` and the query (issue 12). :func:`run` parses the command lines of these four commands
that use only what :data:`SPECS` describes, in the plain forms (``--name VALUE``, ``--name=VALUE``,
``-x VALUE``, flags, positional arguments) and calls the command's body (the ``run_*`` functions here, which
the typer commands call too) with exactly the values typer would pass. Anything else (``--help``, an unknown
or repeated option, a value starting with ``-``, a missing value, a number click would read differently,
``--``) returns ``None`` and the command goes through typer, whose usage errors stay the reference.
``tests/test_cli_direct.py`` checks that :data:`SPECS` matches the typer commands and that both paths print
the same bytes.

Errors are reported as :meth:`legible.cli._app.LegibleGroup.main` reports them: a
:class:`~legible._errors.LegibleError` as ``error:``/``hint:`` (or a ``legible.error/v1`` document with
``--json``) and its exit code; Ctrl-C as click's ``Abort`` (an empty line, then ``aborted``, exit 1).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._output import emit_json, print_lines, report, write_out

if TYPE_CHECKING:
    from legible.contract import CheckDoc

#: Per command: option name -> (parameter, kind), kind one of ``str``, ``int``, ``path``, ``flag``, ``list``
#: (a repeatable string option); and the positional parameter: ``(name, "one")`` (required, exactly one),
#: ``(name, "many")`` (zero or more; ``None`` when none, as typer passes it) or ``None``.
SPECS: dict[str, tuple[dict[str, tuple[str, str]], tuple[str, str] | None]] = {
    "logs": (
        {
            "--since": ("since", "str"),
            "--until": ("until", "str"),
            "--service": ("service", "list"),
            "-s": ("service", "list"),
            "--level": ("level", "str"),
            "-l": ("level", "str"),
            "--grep": ("grep", "str"),
            "-g": ("grep", "str"),
            "--regex": ("regex", "str"),
            "-e": ("regex", "str"),
            "--attr": ("attr", "list"),
            "-a": ("attr", "list"),
            "--trace-id": ("trace_id", "str"),
            "-t": ("trace_id", "str"),
            "--raw": ("raw", "flag"),
            "--fields": ("fields", "str"),
            "--follow": ("follow", "flag"),
            "-f": ("follow", "flag"),
            "--limit": ("limit", "int"),
            "-n": ("limit", "int"),
            "--sql": ("sql", "str"),
            "--from": ("from_", "path"),
            "--json": ("as_json", "flag"),
        },
        None,
    ),
    "traces": (
        {
            "--since": ("since", "str"),
            "--until": ("until", "str"),
            "--slowest": ("slowest", "int"),
            "--errors": ("errors", "flag"),
            "--service": ("service", "list"),
            "-s": ("service", "list"),
            "--name": ("name", "str"),
            "--min-duration": ("min_duration", "str"),
            "--limit": ("limit", "int"),
            "-n": ("limit", "int"),
            "--sql": ("sql", "str"),
            "--from": ("from_", "path"),
            "--json": ("as_json", "flag"),
        },
        None,
    ),
    "trace": (
        {
            "--limit": ("limit", "int"),
            "-n": ("limit", "int"),
            "--from": ("from_", "path"),
            "--json": ("as_json", "flag"),
        },
        ("trace_id", "one"),
    ),
    "check": (
        {
            "--startup": ("startup", "list"),
            "--span": ("span", "list"),
            "--promql": ("promql", "list"),
            "--logs": ("logs", "list"),
            "--journey": ("journey", "list"),
            "--browser": ("browser", "list"),
            "--db": ("db", "list"),
            "--from": ("from_", "path"),
            "--since": ("since", "str"),
            "--out": ("out", "path"),
            "--json": ("as_json", "flag"),
        },
        ("names", "many"),
    ),
}


def parse(argv: list[str]) -> tuple[str, dict[str, Any]] | None:
    """``argv`` (without the program name) as ``(command, keyword arguments of its run_* function)``.

    Returns:
        ``None`` when the command is not one of :data:`SPECS` or the line is not in the plain forms (see the
        module docstring): typer parses it then.

    """
    if not argv or argv[0] not in SPECS:
        return None
    options, positional = SPECS[argv[0]]
    values: dict[str, Any] = {}
    for param, kind in options.values():
        values[param] = [] if kind == "list" else False if kind == "flag" else None
    seen: set[str] = set()
    args: list[str] = []
    rest = argv[1:]
    i = 0
    while i < len(rest):
        word = rest[i]
        i += 1
        if not word.startswith("-") or word == "-":
            args.append(word)
            continue
        name, eq, attached = word.partition("=") if word.startswith("--") else (word, "", "")
        spec = options.get(name)
        if spec is None:
            return None  # --help, --, an unknown or combined option: typer's answer
        param, kind = spec
        if kind == "flag":
            if eq or param in seen:
                return None
            values[param] = True
            seen.add(param)
            continue
        if eq:
            value = attached
        elif i < len(rest):
            value, i = rest[i], i + 1
        else:
            return None  # click: "option requires an argument"
        if value.startswith("-") or (kind != "list" and param in seen):
            return None
        seen.add(param)
        if kind == "list":
            values[param].append(value)
        elif kind == "int":
            if not value.isascii() or not value.isdigit():
                return None
            values[param] = int(value)
        elif kind == "path":
            if not value:
                return None
            values[param] = Path(value)
        else:
            values[param] = value
    if positional is None:
        if args:
            return None
    elif positional[1] == "one":
        if len(args) != 1:
            return None
        values[positional[0]] = args[0]
    else:
        values[positional[0]] = args or None
    return argv[0], values


def run(argv: list[str]) -> int | None:
    """Run ``argv`` (without the program name) here when :func:`parse` reads it; return the exit code.

    Returns:
        The exit code (0 ok, 1 a check failed, a :class:`~legible._errors.LegibleError`'s code), or ``None``
        when the command line is left to typer.

    """
    parsed = parse(argv)
    if parsed is None:
        return None
    import errno

    from legible._errors import LegibleError

    command, kwargs = parsed
    try:
        return _COMMANDS[command](**kwargs) or 0
    except LegibleError as err:
        return report(err, "--json" in argv)
    except (EOFError, KeyboardInterrupt):  # what click's main turns into Abort, and LegibleGroup reports
        sys.stderr.write("\naborted\n")
        return 1
    except OSError as exc:  # click's main: a closed pipe ends the command quietly with 1
        if exc.errno != errno.EPIPE:
            raise
        import os

        # what is still buffered goes nowhere at exit instead of failing again (the recipe of the Python
        # docs, "Note on SIGPIPE"; click wraps the streams for the same purpose)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


# -- the command bodies (the typer commands in logs.py, traces.py and check.py call these) ----------------
def run_logs(
    since: str | None,
    until: str | None,
    service: list[str],
    level: str | None,
    grep: str | None,
    regex: str | None,
    attr: list[str],
    trace_id: str | None,
    raw: bool,
    fields: str | None,
    follow: bool,
    limit: int | None,
    sql: str | None,
    from_: Path | None,
    as_json: bool,
) -> None:
    """``legible logs``: see :mod:`legible.cli.logs` for the options."""
    from legible.queries import logs as q
    from legible.queries.source import bundle_or_worktree

    from ._deploy import deploy_window, label, stale_warning

    opener = bundle_or_worktree(from_)
    since = since or ("all" if from_ else "15m")
    win_since, until, since_label, until_label = (
        deploy_window(since, until) if not from_ else (since, until, None, None)
    )
    flt = q.make_filter(win_since or since, until, service, level, grep, regex, attr, trace_id)
    label(flt, since_label, until_label)
    if follow:
        _print_follow(q.follow_lines(flt, fields=fields, limit=limit, opener=opener))
        return
    view = q.logs_view(flt, raw=raw, fields=fields, limit=limit, sql=sql, opener=opener)
    if not from_ and not sql:
        stale_warning(as_json)
    emit_json(view.doc) if as_json else print_lines(view.lines)


def _print_follow(batches: Iterator[list[str]]) -> None:
    """Print each batch of lines as it comes until Ctrl-C (exit 0) or a closed pipe."""
    try:
        for lines in batches:
            if lines:
                print_lines(lines)
                sys.stdout.flush()
    except KeyboardInterrupt:
        sys.stdout.flush()
    except BrokenPipeError:
        sys.stderr.close()


def run_traces(
    since: str | None,
    until: str | None,
    slowest: int | None,
    errors: bool,
    service: list[str],
    name: str | None,
    min_duration: str | None,
    limit: int | None,
    sql: str | None,
    from_: Path | None,
    as_json: bool,
) -> None:
    """``legible traces``: see :mod:`legible.cli.traces` for the options."""
    from legible.queries import traces as q
    from legible.queries.source import bundle_or_worktree

    from ._deploy import deploy_window, label, stale_warning

    store = bundle_or_worktree(from_)()
    since = since or ("all" if from_ else "1h")
    win_since, until, since_label, until_label = (
        deploy_window(since, until) if not from_ else (since, until, None, None)
    )
    flt = q.make_trace_filter(win_since or since, until, service, name, min_duration, errors)
    label(flt, since_label, until_label)
    view = q.traces_view(flt, slowest=slowest, limit=limit, sql=sql, store=store)
    if not from_ and not sql:
        stale_warning(as_json)
    emit_json(view.doc) if as_json else print_lines(view.lines)


def run_trace(trace_id: str, limit: int | None, from_: Path | None, as_json: bool) -> None:
    """``legible trace ID``: see :mod:`legible.cli.traces` for the options."""
    from legible.queries.source import bundle_or_worktree
    from legible.queries.traces import trace_view

    view = trace_view(trace_id, limit=limit, store=bundle_or_worktree(from_)())
    emit_json(view.doc) if as_json else print_lines(view.lines)


def run_check(
    names: list[str] | None,
    startup: list[str],
    span: list[str],
    promql: list[str],
    logs: list[str],
    journey: list[str],
    browser: list[str],
    db: list[str],
    from_: Path | None,
    since: str | None,
    out: Path | None,
    as_json: bool,
) -> int:
    """``legible check``: see :mod:`legible.cli.check` for the options; returns 1 when a check did not pass."""
    from legible.checks import context_for, parse_adhoc, run_checks
    from legible.render import render_check

    from ._output import run as run_reporting

    def go() -> CheckDoc:
        adhoc = []
        for kind, values in (
            ("startup", startup),
            ("span", span),
            ("promql", promql),
            ("logs", logs),
            ("journey", journey),
            ("browser", browser),
            ("db", db),
        ):
            for i, value in enumerate(values, 1):
                adhoc.append((f"{kind}-{i}", parse_adhoc(kind, value)))
        if from_ is None:
            ctx = context_for()
            if since:
                from legible.deploys import resolve_window

                w = resolve_window(ctx.worktree.state_dir, since)
                ctx.window = (w.since_ns, w.until_ns, w.label)
            doc = run_checks(ctx, names or None, adhoc)
            from legible.deploys import record_checks

            record_checks(ctx.worktree.state_dir, dict(doc))
            return doc
        from legible.bundle import bundle_end_ns, bundle_store

        ctx = context_for(browser=False)
        ctx.state, ctx._store = None, bundle_store(from_)  # the bundle, never the live stack
        end = bundle_end_ns(from_)
        ctx.now_ns = lambda: end
        return run_checks(ctx, names or None, adhoc)

    doc = run_reporting(go, out)
    write_out(out, doc)
    if not as_json and not out and from_ is None:
        from ._deploy import stale_warning

        stale_warning(as_json)
    emit_json(doc) if as_json else print_lines(render_check(doc, out))
    return 0 if doc["passed"] else 1


_COMMANDS: dict[str, Any] = {"logs": run_logs, "traces": run_traces, "trace": run_trace, "check": run_check}
