"""``legible init``: write a commented ``legible.toml`` by looking at the repository.

Guesses, in order: ``package.json`` (``npm run dev`` or ``npm start``), Django (``manage.py``), a Flask or
FastAPI ``app.py``/``main.py``, a ``Procfile`` ``web:`` line, ``go.mod``; else a placeholder to edit.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Final

from legible._errors import UsageError
from legible.config import CONFIG_FILENAME
from legible.worktree import find_worktree

if TYPE_CHECKING:
    from legible.contract import InitDoc

INIT_SCHEMA: Final = "legible.init/v1"

TEMPLATE = """\
# legible.toml: what `legible up` runs for this worktree. Guessed from {guessed_from}; check the command.
# Reference: the docstring of legible/config.py (every key, its type and default).

[app]
# The command that starts your app. $PORT is this worktree's own port; the OpenTelemetry variables
# (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME, ...) are set for you.
command = {command}
# cwd = "."
# env = {{ LOG_LEVEL = "debug" }}

# When is the app ready? Default: a TCP connect to $PORT. Or {{ http = "/healthz" }}, {{ log = "listening" }}.
ready = {ready}
ready_timeout = 30          # seconds

# A Prometheus endpoint to scrape (remove if the app has none).
{metrics}

# Zero-code instrumentation: run the command under `opentelemetry-instrument`.
# instrument = true

# Extra services start after what they depend on:
# [services.worker]
# command = "python worker.py"
# depends_on = ["app"]

# [stack]
# scrape_interval = "5s"
"""


def _guess(root: Path) -> tuple[str, str, str, bool]:
    """Return ``(command, ready, guessed_from, has_metrics)``."""
    pkg = root / "package.json"
    if pkg.is_file():
        try:
            scripts = json.loads(pkg.read_text()).get("scripts", {})
        except (json.JSONDecodeError, AttributeError):
            scripts = {}
        script = "dev" if "dev" in scripts else "start"
        return f"npm run {script} -- --port $PORT", "{ tcp = true }", "package.json", False
    if (root / "manage.py").is_file():
        return "python manage.py runserver 127.0.0.1:$PORT --noreload", "{ tcp = true }", "manage.py (Django)", False
    for name in ("app.py", "main.py", "server.py"):
        f = root / name
        if f.is_file():
            text = f.read_text(errors="replace")
            metrics = "/metrics" in text
            if "FastAPI(" in text:
                mod = name.removesuffix(".py")
                return (
                    f"uvicorn {mod}:app --host 127.0.0.1 --port $PORT",
                    "{ tcp = true }",
                    f"{name} (FastAPI)",
                    metrics,
                )
            return f"python {name}", "{ tcp = true }", f"{name}", metrics
    proc = root / "Procfile"
    if proc.is_file():
        m = re.search(r"^web:\s*(.+)$", proc.read_text(), re.MULTILINE)
        if m:
            return m.group(1).strip(), "{ tcp = true }", "Procfile", False
    if (root / "go.mod").is_file():
        return "go run .", "{ tcp = true }", "go.mod", False
    return "echo 'edit legible.toml: set app.command' && exit 1", "{ tcp = true }", "nothing (placeholder)", False


def write_config(start: Path, *, force: bool = False, keep: bool = False) -> InitDoc:
    """Write ``legible.toml`` at the worktree root.

    With ``keep``, an existing file is left alone and reported (``written`` false) instead of an error: the
    orchestrator's ``after_create`` hook can run ``legible init --keep`` on every worktree.

    Returns:
        ``legible.init/v1``: ``{"schema", "path", "written", "command", "guessed_from"}``.

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
    command, ready, source, metrics = _guess(wt.root)
    text = TEMPLATE.format(
        command=json.dumps(command),
        ready=ready,
        guessed_from=source,
        metrics='metrics_path = "/metrics"' if metrics else '# metrics_path = "/metrics"',
    )
    path.write_text(text)
    wt.ensure_state_dir()
    return {"schema": INIT_SCHEMA, "path": str(path), "written": True, "command": command, "guessed_from": source}
