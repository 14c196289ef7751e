"""The stack plan: every service's command, ports, environment and rendered config, as pure data.

:func:`build_plan` computes it from the worktree, its :class:`~legible.config.LegibleConfig` and its
:class:`~legible.lease.Lease` without starting anything (the honcho ``expand_processes`` idea); the
supervisor then runs exactly what the plan says. Rendered files are returned in :attr:`StackPlan.files` and
written by :meth:`StackPlan.write`, so building a plan has no side effects and is cheap to test.

Environment given to every service (on top of the caller's, which the supervisor adds at spawn time and
which never reaches ``plan.json``): ``PORT`` (the service's own port), ``HOST``, ``<NAME>_PORT`` for every
leased port, ``LEGIBLE_STACK``/``LEGIBLE_WORKTREE`` (the key), and the standard OpenTelemetry SDK variables
(https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/):
``OTEL_EXPORTER_OTLP_ENDPOINT`` and ``OTEL_EXPORTER_OTLP_PROTOCOL`` (``http/protobuf`` unless the user chose
another protocol; endpoint and protocol always agree, see :mod:`legible.services.context`),
``OTEL_SERVICE_NAME`` (the service name), ``OTEL_RESOURCE_ATTRIBUTES=legible.worktree=<key>`` (percent-encoded),
short export intervals so signals arrive within about a second, and ``PYTHONUNBUFFERED=1``. Values from
``legible.toml`` win.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any, Final

from legible._errors import ConfigError, PrerequisiteMissing
from legible._files import private_dir, write_private
from legible.lease import BLOCK_SIZE, FIRST_EXTRA_SLOT, SLOTS, Lease
from legible.services.base import Probe, ServicePlan
from legible.services.context import PlanContext, expand
from legible.worktree import Worktree

if TYPE_CHECKING:
    from legible.config import LegibleConfig, ServiceConfig
    from legible.contract import PlanDoc  # the supervisor loads plans without paying for pydantic (about 100 ms)

PLAN_SCHEMA: Final = "legible.plan/v1"

__all__ = ["PLAN_SCHEMA", "PlanContext", "StackPlan", "assign_ports", "build_plan"]
#: What ``legible up --watch`` watches for the app when ``[app] watch`` is unset (``.legible/``, ``.git/``,
#: caches and virtualenvs are always ignored).
WATCH_ALL = ("*",)


def _env_name(name: str) -> str:
    return name.upper().replace("-", "_")


@dataclass
class StackPlan:
    """The whole stack, ready to run.

    Attributes:
        key: worktree key.
        worktree: worktree root.
        lease_base: first port of the leased block.
        ports: port by name.
        services: service plans in start order (stores, collector, user services, browser).
        files: rendered files by absolute path.
        endpoints: URL by name (``app``, ``victoria-metrics``, ``otlp-http``, ``otlp-grpc``, ``supervisor``;
            the supervisor adds ``vmui`` once VictoriaMetrics is ready, only if ``/vmui/`` answers 200);
            a database service's client URL under its name (``db``: ``postgresql://postgres@127.0.0.1:P/db``).
        config_hash: sha256 of the configuration that produced this plan (to notice edits after ``up``).

    """

    key: str
    worktree: str
    lease_base: int
    ports: dict[str, int]
    services: list[ServicePlan]
    files: dict[str, str]
    endpoints: dict[str, str]
    config_hash: str

    def to_dict(self) -> PlanDoc:
        """A JSON-ready dict with ``schema``."""
        return {
            "schema": PLAN_SCHEMA,
            "key": self.key,
            "worktree": self.worktree,
            "lease_base": self.lease_base,
            "ports": self.ports,
            "services": [s.to_dict() for s in self.services],
            "files": self.files,
            "endpoints": self.endpoints,
            "config_hash": self.config_hash,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StackPlan:
        """Inverse of :meth:`to_dict`."""
        return cls(
            key=d["key"],
            worktree=d["worktree"],
            lease_base=d["lease_base"],
            ports=d["ports"],
            services=[ServicePlan.from_dict(s) for s in d["services"]],
            files=d["files"],
            endpoints=d["endpoints"],
            config_hash=d["config_hash"],
        )

    def env_file_text(self) -> str:
        """The ``.legible/env`` dotenv: endpoints an agent's shell can source (``set -a; . .legible/env``).

        Every value is quoted for POSIX shells (``shlex.quote``), so sourcing it only assigns variables,
        whatever the worktree's name holds (spaces, quotes, ``$(...)``).
        """
        pairs = [("LEGIBLE_WORKTREE", self.key)]
        pairs += [(f"LEGIBLE_{_env_name(name)}_URL", url) for name, url in self.endpoints.items()]
        pairs.append(("OTEL_EXPORTER_OTLP_ENDPOINT", self.endpoints["otlp-http"]))
        pairs.append(("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"))
        pairs += [(f"{_env_name(name)}_PORT", str(port)) for name, port in self.ports.items()]
        lines = ["# legible stack: source with `set -a; . .legible/env; set +a`"]
        lines += [f"{name}={shlex.quote(value)}" for name, value in pairs]
        return "\n".join(lines) + "\n"

    def write(self, state_dir: Path) -> Path:
        """Write rendered files, ``env`` and ``plan.json`` under ``state_dir`` (0600 files, 0700 dirs).

        Returns:
            the path of ``plan.json``.

        Raises:
            OSError: ``state_dir`` is not writable.

        """
        private_dir(state_dir)
        for path, text in self.files.items():
            p = Path(path)
            private_dir(p.parent)
            write_private(p, text)
        write_private(state_dir / "env", self.env_file_text())
        private_dir(state_dir / "logs")
        private_dir(state_dir / "data")
        out = state_dir / "plan.json"
        write_private(out, json.dumps(self.to_dict(), indent=1))
        return out


def assign_ports(config: LegibleConfig, lease: Lease) -> dict[str, int]:
    """Map names to ports: every :data:`SLOTS` name, then one slot per extra service with ``port = true`` or a ``kind``.

    Raises:
        ConfigError: more extra services want a port than the block has slots.

    """
    ports = {name: lease.port(slot) for name, slot in SLOTS.items()}
    slot = FIRST_EXTRA_SLOT
    for name, svc in sorted(config.services.items()):
        if svc.port or svc.kind is not None:
            if slot >= BLOCK_SIZE:
                raise ConfigError(
                    f"{Path(config.source).name}: at most {BLOCK_SIZE - FIRST_EXTRA_SLOT} extra services"
                    " can have a port",
                    hint="set port = false on the services that do not listen",
                )
            ports[name] = lease.port(slot)
            slot += 1
    return ports


def _user_service_plan(ctx: PlanContext, name: str, svc: ServiceConfig, infra: list[str]) -> ServicePlan:
    if svc.kind is not None:  # a built-in database kind (legible.services.databases)
        from legible.services.databases import DB_KINDS

        return DB_KINDS[svc.kind].plan_service(ctx, name, svc)
    assert svc.command is not None  # the config guarantees command or kind
    port = ctx.ports.get(name, 0)
    cwd = (ctx.worktree.root / svc.cwd).resolve()
    where = "app" if name == "app" else f"services.{name}"
    src = Path(ctx.config.source).name or "legible.toml"
    if not cwd.is_dir():
        raise ConfigError(f"{src}: {where}.cwd: {cwd} is not a directory", hint=f"fix {where}.cwd in {src}")
    own = {**ctx.env_for(name, port, svc.env), **_client_env(ctx)}
    deferred: list[str] = []
    env = dict(own)
    for k, v in svc.env.items():
        env[k], later = expand(v, own, ctx.environ)
        if later:
            deferred.append(k)
    own = {**own, **{k: v for k, v in env.items() if k not in deferred}}
    later_names = {**ctx.environ, **{k: "" for k in deferred}}  # resolved by the supervisor
    if svc.shell:
        text = svc.command if isinstance(svc.command, str) else shlex.join(svc.command)
        shell_text, later = expand(text, own, later_names)
        argv = ["/bin/sh", "-c", shell_text]
    else:
        parts = shlex.split(svc.command) if isinstance(svc.command, str) else list(svc.command)
        expanded = [expand(p, own, later_names) for p in parts]
        argv = [a for a, _ in expanded]
        later = any(d for _, d in expanded)
    if later:
        deferred.append("argv")
    if svc.instrument:
        argv = ["opentelemetry-instrument", *argv]
    # what the supervisor will run, to check the command exists (not stored: it may hold inherited values)
    finished = {k: Template(v).safe_substitute(ctx.environ) if k in deferred else v for k, v in env.items()}
    look = {**ctx.environ, **finished}
    exe = Template(argv[0]).safe_substitute(look) if "argv" in deferred else argv[0]
    if os.sep in exe:
        found = exe if os.path.isabs(exe) else str(cwd / exe)
        ok = os.access(found, os.X_OK)
    else:
        ok = shutil.which(exe, path=look.get("PATH")) is not None
    if not ok:
        hint = (
            "pip install opentelemetry-distro opentelemetry-exporter-otlp && opentelemetry-bootstrap -a install"
            if exe == "opentelemetry-instrument"
            else f"install {exe}, or fix {where}.command in {src}"
        )
        raise PrerequisiteMissing(f"{name}: command not found: {exe}", hint=hint)
    if svc.ready is not None:
        r = svc.ready
        if r.kind == "http":
            assert r.http is not None
            target = r.http if r.http.startswith("http") else f"http://127.0.0.1:{port}{r.http}"
            probe = Probe("http", Template(target).safe_substitute(own))
        elif r.kind == "log":
            probe = Probe("log", r.log or "")
        else:
            probe = Probe("tcp", str(port if r.tcp is True else r.tcp))
    elif port:
        probe = Probe("tcp", str(port))
    else:
        probe = Probe("none")
    if probe.kind == "tcp" and probe.target in ("", "0"):
        raise ConfigError(f"{src}: {where}.ready: tcp = true needs port = true", hint=f"set {where}.port = true")
    deps = list(svc.depends_on)  # no implicit order among user services: say depends_on
    return ServicePlan(
        name=name,
        role="app",
        argv=argv,
        cwd=str(cwd),
        env=env,
        probe=probe,
        ready_timeout=svc.ready_timeout,
        depends_on=[*infra, *deps],
        port=port,
        log=str(ctx.worktree.logs_dir / f"{name}.log"),
        restart=svc.restart,
        max_restarts=svc.max_restarts,
        deferred=deferred,
        watch=list(svc.watch) or (list(WATCH_ALL) if ctx.watch and name == "app" else []),
        setup=list(svc.setup),
    )


def _client_env(ctx: PlanContext) -> dict[str, str]:
    """``DATABASE_URL``, ``REDIS_URL``... for the stack's database services (none without any)."""
    if not any(s.kind for s in ctx.config.services.values()):
        return {}
    from legible.services.databases import client_env

    return client_env(ctx)


def build_plan(
    worktree: Worktree,
    config: LegibleConfig,
    lease: Lease,
    *,
    browser: bool = False,
    watch: bool = False,
    environ: Mapping[str, str] | None = None,
) -> StackPlan:
    """Compute the stack plan; no side effects.

    ``browser`` (or ``[stack] browser = true``) adds the browser service kinds, which start after the app.
    ``watch`` (``legible up --watch``) restarts the app on changes to any file when ``[app] watch`` is unset.
    ``environ`` is the environment the supervisor will inherit (default ``os.environ``): read for the OTLP
    protocol the user chose and ``$NAME`` references, never copied into the plan.

    Raises:
        ConfigError: a bad ``cwd`` or too many ported services.
        PrerequisiteMissing: a binary (VictoriaMetrics, the app's command) is not installed.

    """
    ports = assign_ports(config, lease)
    ctx = PlanContext(
        worktree=worktree,
        config=config,
        ports=ports,
        browser=browser or config.stack.browser,
        environ=dict(os.environ if environ is None else environ),
        watch=watch,
    )
    from legible.services import BUILTIN

    planned = [p for p in (kind.plan(ctx) for kind in BUILTIN) if p is not None]
    services = [p for p in planned if p.role in ("store", "collector")]
    # User services wait for neither VictoriaMetrics nor the collector, so all three start together: OTLP
    # exporters retry a refused connection (OTLP spec, "Retrying"), stdout is tailed from files, VictoriaMetrics
    # scrapes the app (the app never calls it) and keeps every sample it is pushed or scrapes once it is up.
    # Only the database services are waited for (their clients connect at start).
    infra: list[str] = []
    users = ctx.user_services()
    # database kinds first: every command service depends on them (their clients connect at start)
    dbs = [_user_service_plan(ctx, n, s, infra) for n, s in users if s.kind is not None]
    services.extend(dbs)
    infra += [d.name for d in dbs]
    services.extend(_user_service_plan(ctx, n, s, infra) for n, s in users if s.kind is None)
    services.extend(p for p in planned if p.role not in ("store", "collector"))  # the browser, after the app
    endpoints = {
        "app": f"http://127.0.0.1:{ports['app']}",
        "victoria-metrics": f"http://127.0.0.1:{ports['victoria-metrics']}",
        "otlp-http": f"http://127.0.0.1:{ports['otlp-http']}",
        "otlp-grpc": f"127.0.0.1:{ports['otlp-grpc']}",
        "supervisor": f"http://127.0.0.1:{ports['supervisor']}/metrics",
    }
    if any(p.name == "grafana" for p in planned):
        endpoints["grafana"] = f"http://127.0.0.1:{ports['grafana']}/"
    for name, svc in config.services.items():  # database services: their client URL (``.legible/env``)
        if svc.kind is not None:
            endpoints[name] = _client_env(ctx)[f"{name.upper().replace('-', '_')}_URL"]
    raw = json.dumps(config.model_dump(mode="json"), sort_keys=True)
    plan = StackPlan(
        key=worktree.key,
        worktree=str(worktree.root),
        lease_base=lease.base,
        ports=ports,
        services=services,
        files=ctx.files,
        endpoints=endpoints,
        config_hash=hashlib.sha256(raw.encode()).hexdigest()[:16],
    )
    if config.stack.backend == "docker":
        from legible.docker_backend import containerize

        images = {n: s.image for n, s in [("app", config.app), *config.services.items()] if s.image}
        plan = containerize(plan, images)
    return plan
