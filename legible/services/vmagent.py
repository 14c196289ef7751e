"""The ``vmagent`` service kind: forwards every series of the stack's VictoriaMetrics to a shared engine.

Planned only when ``[forward] remote_write`` (or ``LEGIBLE_FORWARD_REMOTE_WRITE``) is set, see
:mod:`legible.forward`. vmagent (Debian's ``victoria-metrics`` package ships ``/usr/bin/vmagent``) reads the local
VictoriaMetrics through ``/federate`` (``stacks/vmagent/federate.yml.j2``) and remote-writes
(https://prometheus.io/docs/specs/remote_write_spec/) with its own on-disk queue. Flags from ``vmagent -help``
(1.79): ``-remoteWrite.url``, ``-remoteWrite.relabelConfig`` (``worktree``, ``branch``, ``commit``, ``deploy``,
``host`` on every series; re-read on SIGHUP, which the supervisor sends at every deploy),
``-remoteWrite.tmpDataPath`` (``.legible/data/vmagent/``), ``-remoteWrite.maxDiskUsagePerURL`` (the cap; past it the
oldest data is dropped and counted in ``vm_persistentqueue_bytes_dropped_total``), ``-httpListenAddr`` on the leased
``vmagent`` port (its ``/metrics`` feed ``legible status``). Headers go through ``-envflag.enable`` and the
``remoteWrite_headers`` variable (``^^``-separated), so a token never shows in ``ps``. Role ``forward``: it starts
after the app and nothing waits for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from legible._errors import PrerequisiteMissing
from legible.services.base import Component, Probe, ServicePlan
from legible.services.victoria_metrics import find_tool, tool_version

if TYPE_CHECKING:
    from legible.services.context import PlanContext

INSTALL = "sudo apt-get install victoria-metrics  (ships /usr/bin/vmagent)"


def find_vmagent() -> Path | None:
    """Return ``vmagent`` on PATH, else in legible's tool cache, else ``None``."""
    return find_tool(("vmagent", "vmagent-prod"))


class VmAgent:
    """The ``vmagent`` service kind (see the module docstring)."""

    name = "vmagent"

    def detect(self) -> Component:
        """Find ``vmagent``; only needed when metrics are forwarded."""
        path = find_vmagent()
        version = tool_version(path) if path is not None else ""
        return Component(self.name, path, version, INSTALL, required=False)

    def plan(self, ctx: PlanContext) -> ServicePlan | None:
        """Plan vmagent when metrics are forwarded, else ``None``.

        Raises:
            PrerequisiteMissing: metrics are forwarded and no ``vmagent`` is installed.
            ConfigError: a ``LEGIBLE_FORWARD_*`` variable is malformed.

        """
        from legible import forward

        settings = forward.resolve(ctx.config.forward, ctx.environ)
        if not settings.remote_write:
            return None
        binary = find_vmagent()
        if binary is None and ctx.config.stack.backend == "docker":
            binary = Path("/vmagent-prod")  # the image's entrypoint runs it; only the flags are used
        if binary is None:
            raise PrerequisiteMissing("vmagent is not installed (metrics forwarding)", hint=f"run: {INSTALL}")
        port = ctx.ports[self.name]
        scrape = ctx.render(
            "vmagent/federate.yml.j2",
            "vmagent.yml",
            scrape_interval=ctx.config.stack.scrape_interval,
            vm_port=ctx.ports["victoria-metrics"],
        )
        # the labels go in a relabel file, not -remoteWrite.label flags: vmagent re-reads it on SIGHUP, so the
        # supervisor moves ``deploy`` and ``commit`` along with each restart (forward.follow_deploy)
        relabel = ctx.add_file("vmagent-labels.yml", forward.relabel_config(forward.labels(ctx.worktree)))
        argv = [
            str(binary),
            f"-httpListenAddr=127.0.0.1:{port}",
            f"-promscrape.config={scrape}",
            f"-remoteWrite.url={settings.remote_write}",
            f"{forward.RELABEL_FLAG}{relabel}",
            f"-remoteWrite.tmpDataPath={ctx.worktree.data_dir / 'vmagent'}",
            f"-remoteWrite.maxDiskUsagePerURL={settings.max_disk_mb}MiB",
            "-remoteWrite.flushInterval=1s",
            "-memory.allowedBytes=64MiB",
            "-loggerLevel=WARN",
            "-envflag.enable",
        ]
        env = ctx.env_for(self.name, port)
        if settings.headers:
            env["remoteWrite_headers"] = "^^".join(f"{k}:{v}" for k, v in settings.headers.items())
        return ServicePlan(
            name=self.name,
            role="forward",
            argv=argv,
            cwd=str(ctx.worktree.root),
            env=env,
            probe=Probe("http", f"http://127.0.0.1:{port}/health"),
            ready_timeout=15.0,
            depends_on=["victoria-metrics"],
            port=port,
            log=str(ctx.worktree.logs_dir / f"{self.name}.log"),
            stop_timeout=5.0,  # vmagent writes its in-memory buffers to the on-disk queue at SIGTERM
        )
