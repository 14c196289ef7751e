"""``legible mcp``: the legible commands as tools of a Model Context Protocol server over stdio.

One server per worktree: it runs in the worktree (the agent's MCP client starts it there) and finds the
stack like every command does. Each tool builds the argv of the CLI command that answers the same question
and runs the CLI's own typer app in-process (:func:`run_cli`), so a tool returns exactly the text the CLI
prints, bounded the same way, with the same "N more" line: there is no second renderer. A non-zero exit
becomes an MCP tool error (``isError: true``) whose text is what the CLI printed, its ``error:`` line and
``hint:`` included. ``browser_screenshot`` also returns the JPEG the CLI wrote (at most 1568 px on the long
side) as an MCP image.

Protocol: MCP (https://modelcontextprotocol.io/specification), stdio transport, served by the official
Python SDK's :class:`mcp.server.mcpserver.MCPServer` (``pip install 'legible[mcp]'``). While it serves, the
SDK points fd 1 at stderr, so nothing a command or its children print can corrupt the JSON-RPC stream.
"""

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from legible._errors import PrerequisiteMissing

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer
    from mcp_types import CallToolResult

__all__ = ["CliAnswer", "build_server", "run_cli", "serve"]

#: The CLI's commands are not thread-safe (the runner swaps ``sys.stdout``); the SDK runs sync tools in
#: worker threads, so one command runs at a time.
_LOCK = threading.Lock()
#: What the CLI prints for a saved screenshot: ``screenshot: /path/shot.jpg (1280x800, 93 KB)``.
_SHOT = re.compile(r"(/\S+\.(?:jpe?g|png))")


@dataclass(frozen=True)
class CliAnswer:
    """What one CLI invocation printed.

    Attributes:
        argv: the arguments after ``legible``.
        exit_code: the CLI's exit code (0 ok, 1 check failed, 2 usage, 3 prerequisite, 4 not ready, 5 conflict).
        stdout: the text printed on stdout.
        stderr: the text printed on stderr (``error:`` and ``hint:`` lines).

    """

    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        """Stdout then stderr, as a terminal shows them, without the final newline."""
        return (self.stdout + self.stderr).rstrip("\n")


def run_cli(argv: list[str]) -> CliAnswer:
    """Run ``legible ARGV`` in-process with the CLI's own typer app and capture what it prints.

    Args:
        argv: the arguments after ``legible``, e.g. ``["logs", "--level", "error"]``.

    Returns:
        A :class:`CliAnswer`; an exception escaping a command becomes exit 1 with its one-line text.

    """
    from typer.testing import CliRunner

    from legible.cli.main import app

    with _LOCK:
        result = CliRunner().invoke(app, argv, catch_exceptions=True)
    stdout, stderr = result.stdout, result.stderr
    code = result.exit_code if isinstance(result.exit_code, int) else 1
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        stderr += f"error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}\n"
        code = code or 1
    return CliAnswer(tuple(argv), code, stdout, stderr)


def _answer(argv: list[str]) -> "CallToolResult":
    """The CLI's text for ``argv`` as a tool result; a non-zero exit makes it a tool error (``isError``).

    The result is built here rather than raised, so the text is exactly the CLI's (the SDK would prefix a
    raised error with "Error executing tool NAME: ").
    """
    from mcp_types import CallToolResult, TextContent

    res = run_cli(argv)
    text = res.text or f"legible {' '.join(argv)} exited {res.exit_code}"
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=res.exit_code != 0)


def _opt(argv: list[str], flag: str, value: Any) -> None:
    """Append ``flag value`` (``None`` and ``False`` skip; ``True`` appends the bare flag; lists repeat)."""
    if value is None or value is False:
        return
    if value is True:
        argv.append(flag)
    elif isinstance(value, list):
        for v in value:
            argv += [flag, str(v)]
    else:
        argv += [flag, str(value)]


def build_server() -> "MCPServer[Any]":
    """Return the MCP server with one tool per legible question (see the module docstring).

    Raises:
        PrerequisiteMissing: the ``mcp`` package is not installed (the hint gives the pip command).

    """
    try:
        from mcp.server.mcpserver import MCPServer
        from mcp.server.mcpserver.utilities.types import Image
        from mcp_types import CallToolResult
    except ImportError:
        raise PrerequisiteMissing(
            "the MCP Python SDK (package mcp) is not installed",
            hint="pip install 'legible[mcp]'  (or: pip install 'mcp>=2.3,<3')",
        ) from None
    from legible.cli.main import COMMANDS

    server: MCPServer[Any] = MCPServer(
        "legible",
        instructions=(
            "This worktree's running app under legible: each tool answers like the `legible` command of the "
            "same name (text bounded, a closing line says how to get more). Start with `status`; if no stack "
            "runs, run `legible up --wait` in a shell. Errors carry the CLI's `error:` and `hint:` lines."
        ),
    )

    @server.tool()
    def status() -> CallToolResult:
        """This worktree's stack: services, their state and ready times, endpoints (legible status)."""
        return _answer(["status"])

    @server.tool()
    def logs(
        level: str | None = None,
        since: str | None = None,
        grep: str | None = None,
        service: list[str] | None = None,
        trace_id: str | None = None,
        raw: bool = False,
        limit: int | None = None,
        sql: str | None = None,
    ) -> CallToolResult:
        """Grouped log lines, errors first, each with a trace id (legible logs).

        Args:
            level: at or above this level: debug, info, warn, error.
            since: window start: 5m, 2h, 14:03, ISO 8601 or 'all' (default 15m).
            grep: case-insensitive substring of the message.
            service: only these services.
            trace_id: only lines of this trace (id or hex prefix).
            raw: plain lines, newest last, instead of groups.
            limit: groups (default 30) or raw lines (default 40).
            sql: one read-only SELECT over the store's tables (logs, spans).
        """
        argv = ["logs"]
        for flag, value in (
            ("--level", level),
            ("--since", since),
            ("--grep", grep),
            ("--service", service),
            ("--trace-id", trace_id),
            ("--raw", raw),
            ("--limit", limit),
            ("--sql", sql),
        ):
            _opt(argv, flag, value)
        return _answer(argv)

    @server.tool()
    def traces(
        errors: bool = False,
        slowest: int | None = None,
        name: str | None = None,
        min_duration: str | None = None,
        since: str | None = None,
        service: list[str] | None = None,
        limit: int | None = None,
        sql: str | None = None,
    ) -> CallToolResult:
        """Recent traces: root span, service, duration, span count, errors (legible traces).

        Args:
            errors: only traces with an error span.
            slowest: the N longest traces, longest first.
            name: traces with a span whose name contains this.
            min_duration: traces at least this long: 500ms, 2s.
            since: window start (default 1h).
            service: traces touching these services.
            limit: traces shown (default 20).
            sql: one read-only SELECT over the store's tables.
        """
        argv = ["traces"]
        for flag, value in (
            ("--errors", errors),
            ("--slowest", slowest),
            ("--name", name),
            ("--min-duration", min_duration),
            ("--since", since),
            ("--service", service),
            ("--limit", limit),
            ("--sql", sql),
        ):
            _opt(argv, flag, value)
        return _answer(argv)

    @server.tool()
    def trace(trace_id: str, limit: int | None = None) -> CallToolResult:
        """One trace as a tree: durations, status, exceptions and its log lines (legible trace ID).

        Args:
            trace_id: the trace id, or a unique prefix of at least 6 hex digits.
            limit: lines of tree shown (default 40).
        """
        argv = ["trace", trace_id]
        _opt(argv, "--limit", limit)
        return _answer(argv)

    @server.tool()
    def metrics(query: str | None = None, range: str | None = None, list_names: bool = False) -> CallToolResult:
        """A PromQL query, instant or over a range, or the metric names (legible metrics).

        Args:
            query: a PromQL expression, e.g. 'histogram_quantile(0.99, sum by (vmrange) (rate(...[5m])))'.
            range: a range such as 10m for a series instead of an instant value.
            list_names: list the metric names instead (query, if given, filters them).
        """
        if list_names or not query:
            return _answer(["metrics", "list", *([query] if query else [])])
        argv = ["metrics", query]
        _opt(argv, "--range", range)
        return _answer(argv)

    @server.tool()
    def check(names: list[str] | None = None) -> CallToolResult:
        """Evaluate the checks of legible.toml: one line each; a failing check is a tool error (legible check).

        Args:
            names: configured checks to run (default: all).
        """
        return _answer(["check", *(names or [])])

    @server.tool()
    def browser_open(url: str) -> CallToolResult:
        """Open a path (/order) or URL in the stack's headless Chromium; prints the page's snapshot head.

        Args:
            url: a path of the app or a full URL.
        """
        return _answer(["browser", "open", url])

    @server.tool()
    def browser_snapshot() -> CallToolResult:
        """The page's accessibility snapshot with refs (e19) to click or fill (legible browser snapshot)."""
        return _answer(["browser", "snapshot"])

    @server.tool()
    def browser_click(target: str) -> CallToolResult:
        """Click a ref from the last snapshot (e19) or a selector (text=Order, #submit).

        Args:
            target: a snapshot ref or a Playwright selector.
        """
        return _answer(["browser", "click", target])

    @server.tool()
    def browser_fill(target: str, text: str) -> CallToolResult:
        """Fill an input (ref or selector) with text (legible browser fill).

        Args:
            target: a snapshot ref or a Playwright selector.
            text: the text to type.
        """
        return _answer(["browser", "fill", target, text])

    @server.tool()
    def browser_press(key: str) -> CallToolResult:
        """Press a key (Enter, Tab, Control+A) on the focused element (legible browser press).

        Args:
            key: a Playwright key name.
        """
        return _answer(["browser", "press", key])

    @server.tool()
    def browser_screenshot() -> CallToolResult:
        """Save a JPEG screenshot (at most 1568 px on the long side): its path, and the image itself."""
        result = _answer(["browser", "screenshot"])
        found = _SHOT.search(str(getattr(result.content[0], "text", "")))
        if not result.is_error and found and Path(found.group(1)).is_file():
            result.content.append(Image(path=found.group(1)).to_image_content())
        return result

    @server.tool()
    def browser_console() -> CallToolResult:
        """Console messages and page errors since the last call, grouped (legible browser console)."""
        return _answer(["browser", "console"])

    @server.tool()
    def browser_diff(reference: str | None = None) -> CallToolResult:
        """What changed on the page since the previous snapshot; with a reference image, also the pixels.

        Args:
            reference: a PNG or JPEG of the same viewport (`legible browser screenshot --png`); the diff
                image's path and the changed fraction are printed.
        """
        argv = ["browser", "diff"]
        _opt(argv, "--screenshot", reference)
        return _answer(argv)

    @server.tool()
    def journey_run(name: str, record: bool = False) -> CallToolResult:
        """Run a scripted journey of legible.toml; a failed step is a tool error (legible journey run).

        Args:
            name: the journey's name (`legible journey list`).
            record: also record a walkthrough video (its path is printed).
        """
        argv = ["journey", "run", name]
        _opt(argv, "--record", record)
        return _answer(argv)

    @server.tool()
    def proof(record: bool = True) -> CallToolResult:
        """Run journeys and checks and write the evidence bundle; prints the verdict and the summary path.

        Args:
            record: record each journey's walkthrough video.
        """
        return _answer(["proof", "--record" if record else "--no-record"])

    if "restart" in COMMANDS:  # built on another branch; offered once it is merged

        @server.tool()
        def restart(service: str | None = None) -> CallToolResult:
            """Restart the app (or one service) and wait until it is ready again (legible restart).

            Args:
                service: one service of the stack (default: the app).
            """
            return _answer(["restart", *([service] if service else [])])

    if "diff" in COMMANDS:

        @server.tool()
        def diff() -> CallToolResult:
            """What changed in the signals since the last deploy (legible diff)."""
            return _answer(["diff"])

    return server


def serve() -> None:
    """Serve the tools over stdio until the client closes stdin.

    Raises:
        PrerequisiteMissing: the ``mcp`` package is not installed.

    """
    build_server().run("stdio")
