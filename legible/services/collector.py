"""The collector service kind: legible's own OTLP receiver, log tailer and store writer (role ``collector``).

It runs this Python (``sys.executable -m legible.collector``), so :meth:`CollectorService.detect` only checks
that the package imports. Ports: ``otlp-http`` (also ``/health``, ``/metrics``, ``/query``) and ``otlp-grpc``
from the lease; the store is ``.legible/data/signals.duckdb`` (:func:`legible.store.store_path`), the bearer
token of its ``/query`` is ``.legible/collector.token`` (:data:`legible.store.TOKEN_FILENAME`); it tails
``.legible/logs/`` and pushes derived metrics to the stack's VictoriaMetrics; it starts beside it, not after it.
With ``[forward] otlp`` set it also queues spans and logs for a shared OTLP endpoint (``--forward-config``,
:mod:`legible.forward`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from legible.services.base import Component, Probe, ServicePlan

if TYPE_CHECKING:
    from legible.services.context import PlanContext

#: Default store size cap in MiB.
DEFAULT_MAX_DB_MB = 512
#: Seconds ``down`` waits for the collector to write its queue (at most ``MAX_PENDING`` rows, a few seconds
#: even on a busy machine) before SIGKILL.
STOP_TIMEOUT_S = 30.0


class CollectorService:
    """The ``collector`` service kind (see the module docstring)."""

    name = "collector"

    def detect(self) -> Component:
        """Report the Python that runs the collector; it needs no external binary."""
        try:
            import duckdb  # noqa: F401
            import grpc  # noqa: F401
            import pyarrow  # noqa: F401
        except ImportError as e:
            return Component(self.name, None, "", f"pip install {e.name}")
        from importlib.metadata import PackageNotFoundError, version

        try:
            ver = version("legible")
        except PackageNotFoundError:
            ver = ""
        return Component(self.name, Path(sys.executable), ver, "pip install legible")

    def plan(self, ctx: PlanContext) -> ServicePlan:
        """Plan ``python -m legible.collector`` on the ``otlp-http``/``otlp-grpc`` ports."""
        from legible.store import TOKEN_FILENAME, store_path  # here: the supervisor imports this module too

        http_port = ctx.ports["otlp-http"]
        grpc_port = ctx.ports["otlp-grpc"]
        vm_port = ctx.ports["victoria-metrics"]
        argv = [
            sys.executable,
            "-m",
            "legible.collector",
            f"--http-port={http_port}",
            f"--grpc-port={grpc_port}",
            f"--db={store_path(ctx.worktree.state_dir)}",
            f"--vm-url=http://127.0.0.1:{vm_port}",
            f"--worktree={ctx.worktree.key}",
            f"--max-db-mb={DEFAULT_MAX_DB_MB}",
            f"--token-file={ctx.worktree.state_dir / TOKEN_FILENAME}",
        ]
        from legible import forward
        from legible.services.vector import find_vector

        if (
            find_vector() is None and ctx.config.stack.backend != "docker"
        ):  # where Vector is installed it ships the log files instead (services.vector)
            argv.append(f"--logs-dir={ctx.worktree.logs_dir}")

        settings = forward.resolve(ctx.config.forward, ctx.environ)
        # the labels (two git calls and the host name) only when spans and logs are forwarded: `legible up`
        # builds the plan before the supervisor can start anything (issue 12)
        fwd = forward.collector_config(settings, ctx.worktree, forward.labels(ctx.worktree)) if settings.otlp else None
        if fwd is not None:  # spans and logs also go to a shared OTLP endpoint (headers stay in a 0600 file)
            argv.append(f"--forward-config={ctx.add_file(forward.COLLECTOR_FILE, fwd)}")
        env = ctx.env_for(self.name, http_port)
        # The collector must not export its own telemetry to itself.
        for k in [k for k in env if k.startswith("OTEL_")]:
            del env[k]
        env["OTEL_SDK_DISABLED"] = "true"
        env["MALLOC_ARENA_MAX"] = "2"  # glibc: fewer per-thread arenas, a smaller RSS for a threaded server
        return ServicePlan(
            name=self.name,
            role="collector",
            argv=argv,
            cwd=str(ctx.worktree.root),
            env=env,
            probe=Probe("http", f"http://127.0.0.1:{http_port}/health"),
            ready_timeout=15.0,
            depends_on=[],  # beside VictoriaMetrics: span and log series are cumulative, re-sent every push
            port=http_port,
            log=str(ctx.worktree.logs_dir / f"{self.name}.log"),
            stop_timeout=STOP_TIMEOUT_S,
        )
