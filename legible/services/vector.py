"""The ``vector`` service kind: stdout/stderr shipping through Vector where it is installed (not in Debian).

Planned when a ``vector`` binary is on PATH or in legible's tool cache (``<cache>/vector/bin/vector``);
then the collector's built-in tailer is off (:mod:`legible.services.collector` leaves out ``--logs-dir``)
and Vector reads ``.legible/logs/*.log`` (file source, multi-line records continued by indented lines),
finds the level (JSON ``level``/``severity``, else a level word in the line) and sends one OTLP/HTTP JSON
log record per line to the collector's ``/v1/logs`` with its ``opentelemetry`` sink (retrying while the
collector starts or is busy). The config is rendered from ``stacks/vector/vector.toml.j2`` into
``.legible/config/vector.toml``; Vector's checkpoints live in ``.legible/data/vector/``. Its API is off,
so it opens no port. Role ``collector``: it starts beside the collector, and user services do not wait
for it (the log files are read from the beginning).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from legible._paths import tool_cache
from legible.services.base import Component, Probe, ServicePlan

if TYPE_CHECKING:
    from legible.services.context import PlanContext

INSTALL = "optional: not in Debian; see https://vector.dev/docs/setup/installation/ (then `legible up` uses it)"


def find_vector() -> Path | None:
    """Return ``vector`` on PATH, else ``<tool cache>/vector/bin/vector``, else ``None``."""
    found = shutil.which("vector")
    if found:
        return Path(found)
    cached = tool_cache() / "vector" / "bin" / "vector"
    return cached if cached.is_file() else None


class VectorService:
    """The ``vector`` service kind (see the module docstring)."""

    name = "vector"

    def detect(self) -> Component:
        """Find Vector; never required (the collector tails the logs itself without it)."""
        import subprocess

        path = find_vector()
        version = ""
        if path is not None:
            try:
                out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=15, check=False)
                version = out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""
            except (OSError, subprocess.TimeoutExpired):
                version = ""
        return Component(self.name, path, version, INSTALL, required=False)

    def plan(self, ctx: PlanContext) -> ServicePlan | None:
        """Plan Vector when it is installed, else ``None``."""
        binary = find_vector()
        if binary is None and ctx.config.stack.backend == "docker":
            binary = Path("vector")  # the official image runs it
        if binary is None:
            return None
        config = ctx.render(
            "vector/vector.toml.j2",
            "vector.toml",
            data_dir=str(ctx.worktree.data_dir / "vector"),
            logs_dir=str(ctx.worktree.logs_dir),
            otlp_http_port=ctx.ports["otlp-http"],
        )
        env = ctx.env_for(self.name, 0)
        for k in [k for k in env if k.startswith("OTEL_")]:
            del env[k]
        return ServicePlan(
            name=self.name,
            role="collector",
            argv=[str(binary), "--config", str(config), "--quiet"],
            cwd=str(ctx.worktree.root),
            env=env,
            probe=Probe("none"),
            ready_timeout=30.0,
            depends_on=["collector"],
            log=str(ctx.worktree.logs_dir.parent / "vector.out"),
            stop_timeout=5.0,
        )
