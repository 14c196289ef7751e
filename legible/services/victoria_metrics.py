"""VictoriaMetrics single-node: the stack's metrics store, scraping ``/metrics`` targets.

Flags are from ``victoria-metrics -help`` (1.79, Debian's package): the HTTP API and vmui on one loopback
port, ``-search.latencyOffset=0s`` so samples are queryable as soon as they arrive (the default,
30 s, hides fresh data from an agent that just acted), and ``-memory.allowedBytes`` so dozens of stacks fit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from legible._errors import PrerequisiteMissing
from legible._paths import tool_cache
from legible.services.base import Component, Probe, ServicePlan

if TYPE_CHECKING:
    from legible.services.context import PlanContext

BINARY_NAMES = ("victoria-metrics", "victoria-metrics-prod")
INSTALL = "legible doctor --install  (or: sudo apt-get install victoria-metrics)"


def scrape_target_files(config_dir: Path, service: str) -> tuple[Path, Path]:
    """``(read, pending)``: the discovery file VictoriaMetrics reads for ``service``'s job, and its target's.

    ``config/scrape-<service>.json`` (``file_sd_configs``, ``[]`` until published) and
    ``config/scrape-<service>.pending.json`` (the target, until the service is ready). The target is
    published once its service answers its readiness probe (:func:`publish_scrape_target`): scraped
    earlier, a service still starting made VictoriaMetrics log a ``cannot scrape ... connection refused``
    warning at nearly every ``legible up``, the first warning an agent saw in ``legible logs``, and one
    that pointed at nothing wrong.
    """
    return config_dir / f"scrape-{service}.json", config_dir / f"scrape-{service}.pending.json"


def scrape_target_group(key: str, service: str, port: int) -> str:
    """The ``file_sd_configs`` file of ``service``'s job: one target group, as JSON (quoted by the serializer).

    Format: https://prometheus.io/docs/prometheus/latest/configuration/configuration/#file_sd_config
    (a list of ``{"targets": [...], "labels": {...}}``).
    """
    group = {"targets": [f"127.0.0.1:{port}"], "labels": {"service": service, "worktree": key}}
    return json.dumps([group], ensure_ascii=False) + "\n"


def publish_scrape_target(config_dir: Path, service: str) -> bool:
    """Give VictoriaMetrics ``service``'s scrape target: its pending file replaces the empty one.

    VictoriaMetrics reads the file within :data:`FILE_SD_CHECK_S` seconds. Returns ``False`` when none was
    pending (no ``metrics_path``, or published already: a restart keeps its target).

    Raises:
        OSError: the file could not be replaced (other than it being absent).
    """
    read, pending = scrape_target_files(config_dir, service)
    try:
        os.replace(pending, read)
    except FileNotFoundError:
        return False
    return True


#: How often VictoriaMetrics re-reads the ``file_sd_configs`` files (``-promscrape.fileSDCheckInterval``), seconds.
FILE_SD_CHECK_S = 1
#: Scrape interval of legible's own jobs (``legible-supervisor``, ``legible-collector``).
OWN_SCRAPE = "15s"
#: ``GOMAXPROCS`` of VictoriaMetrics: one thread runs Go code at a time. An idle instance then spends about a
#: quarter less CPU on its timers (Go's scheduler wakes a second P to spin for each one; measured 4.5 -> 3.5
#: ms/s), and a stack's metrics fit one core; dozens of stacks share the machine's few (issue 12).
GOMAXPROCS = "1"


def scrape_config(
    key: str, interval: str, supervisor_port: int, collector_port: int, targets: list[dict[str, Any]]
) -> str:
    """The Prometheus scrape configuration VictoriaMetrics reads (``-promscrape.config``), as text.

    Format: https://prometheus.io/docs/prometheus/latest/configuration/configuration/ (``global`` and
    ``scrape_configs`` with ``static_configs``). It is written by :func:`json.dumps`: JSON is a subset of
    YAML, so every value is quoted by the serializer and a worktree named with quotes, colons or unicode
    cannot break the file (no template engine is imported on ``legible up``'s path).

    Args:
        key: the worktree key, the ``worktree`` label of every target.
        interval: the scrape interval and timeout of the user's targets, e.g. ``"5s"``.
        supervisor_port: the supervisor's metrics port (job ``legible-supervisor``).
        collector_port: the collector's ``otlp-http`` port, which serves ``/metrics`` (job ``legible-collector``).
        targets: ``[{"service", "port", "path", "file"}]`` (:meth:`PlanContext.scrape_targets` and the service's
            :func:`scrape_target_files` ``read`` file), one job each, its target read from ``file``
            (``file_sd_configs``) so that it is scraped only once published.

    Returns:
        The file's text: a header comment, then the configuration as indented JSON.

    """

    def job(name: str, port: int, labels: dict[str, str], **extra: str) -> dict[str, Any]:
        target = {"targets": [f"127.0.0.1:{port}"], "labels": {**labels, "worktree": key}}
        return {"job_name": name, **extra, "static_configs": [target]}

    doc = {
        "global": {"scrape_interval": interval, "scrape_timeout": interval},
        "scrape_configs": [
            # legible's own counters: every 15 s (issue 12: 5 s before; a scrape costs both sides CPU on every
            # idle stack); the supervisor also pushes its figures the moment a service is ready
            job("legible-supervisor", supervisor_port, {}, scrape_interval=OWN_SCRAPE, scrape_timeout="5s"),
            job("legible-collector", collector_port, {}, scrape_interval=OWN_SCRAPE, scrape_timeout="5s"),
            *(
                {"job_name": t["service"], "metrics_path": t["path"], "file_sd_configs": [{"files": [t["file"]]}]}
                for t in targets
            ),
        ],
    }
    header = (
        f"# Written by legible for worktree {json.dumps(key)}; regenerated on every `legible up`. Do not edit.\n"
        "# Format: Prometheus scrape configuration, read by VictoriaMetrics' -promscrape.config; JSON is YAML.\n"
    )
    return header + json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def find_tool(names: tuple[str, ...]) -> Path | None:
    """Return the first of ``names`` on PATH, else in legible's tool cache, else ``None``.

    ``names`` are binaries of Debian's ``victoria-metrics`` package; the cache holds it unpacked under
    ``<cache>/victoria-metrics/usr/bin/``.
    """
    for name in names:
        found = shutil.which(name)
        if found:
            return Path(found)
    for name in names:
        cached = tool_cache() / "victoria-metrics" / "usr" / "bin" / name
        if cached.is_file():
            return cached
    return None


def find_binary() -> Path | None:
    """Return the VictoriaMetrics binary on PATH, else in legible's tool cache, else ``None``."""
    return find_tool(BINARY_NAMES)


def tool_version(path: Path) -> str:
    """The first line ``path -version`` prints, else the ``victoria-metrics`` package's version, else ``""``.

    Debian's build prints an empty ``-version``, so its package version (``dpkg-query``) stands in.
    """
    try:
        out = subprocess.run([str(path), "-version"], capture_output=True, text=True, timeout=10, check=False)
        version = (out.stdout or out.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        version = ""
    if not version and shutil.which("dpkg-query"):
        deb = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "victoria-metrics"], capture_output=True, text=True, check=False
        )
        version = deb.stdout.strip() if deb.returncode == 0 else ""
    return version.splitlines()[0] if version else ""


class VictoriaMetrics:
    """The ``victoria-metrics`` service kind (role ``store``)."""

    name = "victoria-metrics"

    def detect(self) -> Component:
        """Find the binary and ask it for ``-version``."""
        path = find_binary()
        return Component(self.name, path, tool_version(path) if path is not None else "", INSTALL)

    def plan(self, ctx: PlanContext) -> ServicePlan:
        """Plan VictoriaMetrics on the ``victoria-metrics`` port with data under ``.legible/data/``.

        Raises:
            PrerequisiteMissing: no VictoriaMetrics binary.

        """
        binary = find_binary()
        if binary is None and ctx.config.stack.backend == "docker":
            binary = Path("/victoria-metrics-prod")  # the image's entrypoint runs it; only the flags are used
        if binary is None:
            raise PrerequisiteMissing("victoria-metrics is not installed", hint=f"run: {INSTALL}")
        port = ctx.ports[self.name]
        targets = ctx.scrape_targets()
        for t in targets:  # empty until the supervisor publishes the target, once the service is ready
            read, pending = scrape_target_files(ctx.config_dir, t["service"])
            t["file"] = str(ctx.add_file(read.name, "[]\n"))
            ctx.add_file(pending.name, scrape_target_group(ctx.worktree.key, t["service"], t["port"]))
        scrape = ctx.add_file(
            "prometheus.yml",
            scrape_config(
                ctx.worktree.key,
                ctx.config.stack.scrape_interval,
                ctx.ports["supervisor"],
                ctx.ports["otlp-http"],
                targets,
            ),
        )
        argv = [
            str(binary),
            f"-httpListenAddr=127.0.0.1:{port}",
            f"-storageDataPath={ctx.worktree.data_dir / 'victoria-metrics'}",
            f"-retentionPeriod={ctx.config.stack.retention}",
            f"-promscrape.config={scrape}",
            f"-promscrape.fileSDCheckInterval={FILE_SD_CHECK_S}s",  # a published target is scraped within a second
            "-search.latencyOffset=0s",  # the collector pushes whole samples; agents read right after acting
            "-memory.allowedBytes=256MiB",
            "-loggerLevel=WARN",
        ]
        return ServicePlan(
            name=self.name,
            role="store",
            argv=argv,
            cwd=str(ctx.worktree.root),
            env={**ctx.env_for(self.name, port), "GOMAXPROCS": GOMAXPROCS},
            probe=Probe("http", f"http://127.0.0.1:{port}/health"),
            ready_timeout=15.0,
            port=port,
            log=str(ctx.worktree.logs_dir / f"{self.name}.log"),
            stop_timeout=5.0,
        )
