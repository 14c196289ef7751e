"""``legible init``: write a commented ``legible.toml`` by looking at the repository.

:func:`guess` is pure (it reads files, starts nothing) and tries, in order:

1. a ``Procfile``'s ``web:`` line (an all-interfaces host, the unspecified IPv4 or IPv6 address, rewritten to
   ``127.0.0.1``: legible binds loopback only);
2. ``package.json``: its ``dev`` script, else ``start`` (``npm run dev``, ``npm start``; Vite and Next get
   their port and host flags, other servers read ``$PORT``), else its ``main`` file, else ``server.js``,
   ``app.js`` or ``index.js`` (``node FILE``); zero-code instrumentation through
   ``NODE_OPTIONS=--require @opentelemetry/auto-instrumentations-node/register`` when the package is a
   dependency, else a commented line saying how;
3. Python: Django (``manage.py runserver``), FastAPI or Starlette (``uvicorn module:app``), Flask
   (``flask --app module run``), a script that reads ``PORT`` (``python app.py``), a package with a
   ``__main__.py`` (``python -m pkg``); all with ``instrument = true`` (``opentelemetry-instrument``);
4. Go (``go.mod``: ``go run .``) and Rust (``Cargo.toml``: ``cargo run``);
5. otherwise a placeholder that fails clearly: a shell command printing what to edit, exiting 1.

A compose file (``compose.yaml``, ``docker-compose.yml``, ...) adds a comment naming its services and what
to move into ``[services.<name>]``; with nothing else to go on it is the placeholder's message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from legible._errors import UsageError
from legible.config import CONFIG_FILENAME
from legible.worktree import find_worktree

__all__ = ["INIT_SCHEMA", "Guess", "guess", "write_config"]

if TYPE_CHECKING:
    from legible.contract import InitDoc

INIT_SCHEMA: Final = "legible.init/v1"
#: The package whose ``register`` module instruments a Node app with no code change.
NODE_AUTO = "@opentelemetry/auto-instrumentations-node"
NODE_OPTIONS = f"--require {NODE_AUTO}/register"
COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")

TEMPLATE = """\
# legible.toml: what `legible up` runs for this worktree. Guessed from {guessed_from}; check the command.
# Reference: the docstring of legible/config.py (every key, its type and default).

[app]
# The command that starts your app. $PORT is this worktree's own port; the OpenTelemetry variables
# (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME, ...) are set for you.
command = {command}
{shell}# cwd = "."
{env}
# When is the app ready? Default: a TCP connect to $PORT. Or {{ http = "/healthz" }}, {{ log = "listening" }}.
ready = {{ tcp = true }}
ready_timeout = {ready_timeout}          # seconds

# A Prometheus endpoint to scrape (remove if the app has none).
{metrics}

# Zero-code instrumentation: run the command under `opentelemetry-instrument` (Python apps).
{instrument}
{notes}
# Extra services start after what they depend on:
# [services.worker]
# command = "python worker.py"
# depends_on = ["app"]

# [stack]
# scrape_interval = "5s"
"""


@dataclass
class Guess:
    """What :func:`guess` found.

    Attributes:
        command: the app's command (``$PORT`` substituted by legible).
        source: what it was guessed from, for the file's first line (``package.json (scripts.dev)``).
        shell: run the command with ``/bin/sh -c`` (the placeholder).
        instrument: zero-code Python instrumentation applies (``instrument = true``).
        env: extra environment variables for the app (Node's ``NODE_OPTIONS``).
        metrics: the source mentions ``/metrics``.
        notes: comment lines added to the file (how to instrument, what to move from a compose file).
        ready_timeout: seconds to wait for readiness (compiling Go and Rust takes longer).

    """

    command: str
    source: str
    shell: bool = False
    instrument: bool = False
    env: dict[str, str] = field(default_factory=dict)
    metrics: bool = False
    notes: list[str] = field(default_factory=list)
    ready_timeout: int = 30


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


#: An IPv4 literal, a bracketed IPv6 literal or a bare ``::``, standing alone in a command line.
_ADDRESS = re.compile(r"(?<![\w.:\[])(\[[0-9a-fA-F:.]*\]|\d+(?:\.\d+){3}|::)(?![\w.])")


def loopback_hosts(command: str) -> str:
    """``command`` with every unspecified (all-interfaces) address, IPv4 or IPv6, replaced by ``127.0.0.1``.

    Addresses are recognised by :mod:`ipaddress` (``is_unspecified``), token by token, so ``--bind``
    values like ``[::]:8000`` are rewritten and other addresses (``192.168.1.10``) are left as they are.
    """
    import ipaddress

    def one(m: re.Match[str]) -> str:
        try:
            unspecified = ipaddress.ip_address(m.group(1).strip("[]")).is_unspecified
        except ValueError:
            return m.group(1)
        return "127.0.0.1" if unspecified else m.group(1)

    return _ADDRESS.sub(one, command)


def _procfile(root: Path) -> Guess | None:
    m = re.search(r"^web:\s*(.+)$", _read(root / "Procfile"), re.M)
    if not m:
        return None
    command = loopback_hosts(m.group(1).strip())
    python = bool(re.match(r"(python|gunicorn|uvicorn|flask|django-admin)\b", command))
    # a Procfile line is run by a shell (foreman, honcho, Heroku): keep that when it uses shell syntax
    shell = re.search(r"&&|\|\||[;|<>`]|\$\{|\$\(", command) is not None
    return Guess(command, "Procfile (web)", shell=shell, instrument=python)


def _node(root: Path) -> Guess | None:
    pkg_path = root / "package.json"
    if not pkg_path.is_file():
        return None
    try:
        pkg = json.loads(pkg_path.read_text())
    except ValueError:
        pkg = {}
    pkg = pkg if isinstance(pkg, dict) else {}
    scripts: dict[str, Any] = pkg["scripts"] if isinstance(pkg.get("scripts"), dict) else {}
    deps = {**(pkg.get("dependencies") or {}), **(pkg.get("devDependencies") or {})}
    found: Guess | None = None
    for name in ("dev", "start"):
        script = str(scripts.get(name) or "")
        if not script:
            continue
        run = "npm run dev" if name == "dev" else "npm start"
        if re.search(r"\bvite\b", script):
            run += " -- --port $PORT --strictPort --host 127.0.0.1"
        elif re.search(r"\bnext\b", script):
            run += " -- --port $PORT --hostname 127.0.0.1"
        found = Guess(run, f"package.json (scripts.{name}: {script})")
        break
    if found is None:
        main = pkg.get("main")
        candidates = [main] if isinstance(main, str) and main else []
        for name in [*candidates, "server.js", "app.js", "index.js"]:
            if (root / name).is_file():
                found = Guess(f"node {name}", f"package.json (main: {name})" if name == main else name)
                break
    if found is None:
        return None
    if NODE_AUTO in deps:
        found.env["NODE_OPTIONS"] = NODE_OPTIONS
    else:
        found.notes.append(
            f"# Zero-code Node instrumentation: `npm install {NODE_AUTO}`, then add to [app]:\n"
            f'# env = {{ NODE_OPTIONS = "{NODE_OPTIONS}" }}'
        )
    found.metrics = any("/metrics" in _read(root / f) for f in ("server.js", "app.js", "index.js"))
    return found


def _python(root: Path) -> Guess | None:
    if (root / "manage.py").is_file():
        return Guess("python manage.py runserver 127.0.0.1:$PORT --noreload", "manage.py (Django)", instrument=True)
    files = [root / n for n in ("app.py", "main.py", "server.py", "asgi.py", "wsgi.py")]
    files += [root / "app" / "main.py", root / "src" / "main.py"]
    for f in files:
        text = _read(f) if f.is_file() else ""
        if not text:
            continue
        module = ".".join(f.relative_to(root).with_suffix("").parts)
        metrics = "/metrics" in text
        var = re.search(r"^(\w+)\s*=\s*(FastAPI|Starlette|Flask)\(", text, re.M)
        if var and var.group(2) in ("FastAPI", "Starlette"):
            return Guess(
                f"uvicorn {module}:{var.group(1)} --host 127.0.0.1 --port $PORT",
                f"{f.relative_to(root)} ({var.group(2)})",
                instrument=True,
                metrics=metrics,
            )
        reads_port = re.search(r"""environ(\.get\(|\[)\s*["']PORT""", text) is not None
        if reads_port and f.parent == root:
            return Guess(f"python {f.name}", f"{f.name} (reads PORT)", instrument=True, metrics=metrics)
        if var:
            return Guess(
                f"flask --app {module}:{var.group(1)} run --host 127.0.0.1 --port $PORT --no-reload",
                f"{f.relative_to(root)} (Flask)",
                instrument=True,
                metrics=metrics,
            )
    for main in sorted([*root.glob("*/__main__.py"), *root.glob("src/*/__main__.py")]):
        pkg = main.parent.name
        cwd_note = [] if main.parent.parent == root else ['# cwd = "src"   (the package lives under src/)']
        return Guess(f"python -m {pkg}", f"{main.relative_to(root)}", instrument=True, notes=cwd_note)
    return None


def _compiled(root: Path) -> Guess | None:
    if (root / "go.mod").is_file():
        return Guess("go run .", "go.mod (Go)", ready_timeout=120)
    if (root / "Cargo.toml").is_file():
        return Guess("cargo run", "Cargo.toml (Rust)", ready_timeout=300)
    return None


def _compose_services(root: Path) -> tuple[str, list[tuple[str, str]]] | None:
    """``(file name, [(service, image or "build")...])`` of the repository's compose file, if any."""
    for name in COMPOSE_FILES:
        text = _read(root / name)
        if not text:
            continue
        block = re.search(r"^services:\s*\n((?:[ \t]+.*\n?|\s*\n)*)", text, re.M)
        services: list[tuple[str, str]] = []
        if block:
            indent = None
            current = None
            for line in block.group(1).splitlines():
                m = re.match(r"^([ \t]+)([\w.-]+):\s*$", line)
                if m and (indent is None or m.group(1) == indent):
                    indent = m.group(1)
                    current = m.group(2)
                    services.append((current, "build"))
                    continue
                img = re.match(r"^\s+image:\s*['\"]?([^'\"\s]+)", line)
                if img and current and services and services[-1][0] == current:
                    services[-1] = (current, img.group(1))
        return name, services
    return None


def guess(root: Path) -> Guess:
    """Guess how to run the app of the repository at ``root`` (see the module docstring for the order).

    Returns:
        A :class:`Guess`; for an unknown repository, a shell placeholder that prints what to edit and exits 1.

    """
    found = _procfile(root) or _node(root) or _python(root) or _compiled(root)
    compose = _compose_services(root)
    if found is None:
        msg = "legible.toml: set [app] command to how this app starts (see the comments in legible.toml)"
        if compose:
            msg = f"legible.toml: set [app] command; {compose[0]} runs the app in a container, legible runs it directly"
        found = Guess(f"echo '{msg}' >&2; exit 1", "nothing recognisable (placeholder)", shell=True)  # noqa: S604 - a config value, run by /bin/sh on purpose
    if compose:
        name, services = compose
        lines = [f"# {name} defines: " + (", ".join(f"{s} ({img})" for s, img in services) or "no services")]
        lines.append("# legible runs processes, not containers: move each one legible should start into")
        lines.append("# [services.<name>] with the command that starts it, and depends_on = [...] for the order:")
        for svc, img in services[:6]:
            if img == "build":
                lines.append(f'# [services.{svc}]\n# command = "..."   (what its Dockerfile runs)')
            else:
                lines.append(
                    f'# [services.{svc}]\n# command = "docker run --rm -p 127.0.0.1:${svc.upper()}_PORT:... {img}"'
                )
            lines.append("# port = true")
        found.notes.extend(lines)
    return found


def write_config(start: Path, *, force: bool = False, keep: bool = False) -> InitDoc:
    """Write ``legible.toml`` at the worktree root.

    With ``keep``, an existing file is left alone and reported (``written`` false) instead of an error: the
    orchestrator's ``after_create`` hook can run ``legible init --keep`` on every worktree.

    Returns:
        ``legible.init/v1``: ``{"schema", "path", "written", "command", "guessed_from"}``, and when written
        ``"instrument"`` (bool) and ``"env"`` (the extra variables, e.g. Node's ``NODE_OPTIONS``).

    Raises:
        UsageError: the file exists and neither ``force`` nor ``keep`` is set.

    """
    wt = find_worktree(start)
    path = wt.root / CONFIG_FILENAME
    if path.exists() and keep and not force:
        wt.ensure_state_dir()
        return {"schema": INIT_SCHEMA, "path": str(path), "written": False, "command": "", "guessed_from": ""}
    if path.exists() and not force:
        raise UsageError(f"{path} already exists", hint="edit it, or run `legible init --force` to overwrite it")
    g = guess(wt.root)
    env = '# env = {{ LOG_LEVEL = "debug" }}'.replace("{{", "{").replace("}}", "}")
    if g.env:
        env = "env = { " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in g.env.items()) + " }"
    text = TEMPLATE.format(
        command=json.dumps(g.command),
        shell="shell = true              # the command runs with /bin/sh -c\n" if g.shell else "",
        env=env,
        ready_timeout=g.ready_timeout,
        guessed_from=g.source,
        metrics='metrics_path = "/metrics"' if g.metrics else '# metrics_path = "/metrics"',
        instrument="instrument = true" if g.instrument else "# instrument = true",
        notes="\n".join(g.notes) + "\n" if g.notes else "",
    )
    path.write_text(text)
    wt.ensure_state_dir()
    return {
        "schema": INIT_SCHEMA,
        "path": str(path),
        "written": True,
        "command": g.command,
        "guessed_from": g.source,
        "instrument": g.instrument,
        "env": g.env,
    }
