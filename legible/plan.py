"""The stack plan: every service's command, ports, environment and rendered config, as pure data.

:func:`build_plan` computes it from the worktree, its :class:`~legible.config.LegibleConfig` and its
:class:`~legible.lease.Lease` without starting anything (the honcho ``expand_processes`` idea); the
supervisor then runs exactly what the plan says. Rendered files are returned in :attr:`StackPlan.files` and
written by :meth:`StackPlan.write`, so building a plan has no side effects and is cheap to test.

Environment given to every service (on top of the caller's): ``PORT`` (the service's own port), ``HOST``,
``<NAME>_PORT`` for every leased port, ``LEGIBLE_STACK``/``LEGIBLE_WORKTREE`` (the key), and the standard
OpenTelemetry SDK variables (https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/):
``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf``, ``OTEL_SERVICE_NAME`` (the
service name), ``OTEL_RESOURCE_ATTRIBUTES=legible.worktree=<key>``, short export intervals so signals arrive
within about a second, and ``PYTHONUNBUFFERED=1``. Values from ``legible.toml`` win.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any

from legible._errors import ConfigError, PrerequisiteMissing
from legible._paths import state_home
from legible._procs import REGISTRY_ENV, STACK_ENV
from legible.lease import BLOCK_SIZE, FIRST_EXTRA_SLOT, SLOTS, Lease
from legible.services.base import Probe, ServicePlan
from legible.worktree import Worktree

if TYPE_CHECKING:  # the supervisor loads plans without paying for pydantic (about 100 ms)
    from legible.config import LegibleConfig, ServiceConfig

PLAN_SCHEMA = "legible.plan/v1"
#: What ``legible up --watch`` watches for the app when ``[app] watch`` is unset (``.legible/``, ``.git/``,
#: caches and virtualenvs are always ignored).
WATCH_ALL = ("*",)


def _env_name(name: str) -> str:
    return name.upper().replace("-", "_")


@dataclass
class PlanContext:
    """What a service kind needs to plan itself.

    Attributes:
        worktree: the worktree.
        config: the validated configuration.
        ports: port by name: the slots of :data:`legible.lease.SLOTS` plus one per extra service.
        files: rendered files so far, by absolute path (filled by :meth:`render`).
        browser: run Chromium (``[stack] browser = true`` or ``legible up --browser``).
        watch: ``legible up --watch``: the app restarts on changes to any file (when ``[app] watch`` is unset).

    """

    worktree: Worktree
    config: LegibleConfig
    ports: dict[str, int]
    files: dict[str, str] = field(default_factory=dict)
    browser: bool = False
    watch: bool = False

    @property
    def config_dir(self) -> Path:
        """``.legible/config``: where rendered configuration files go."""
        return self.worktree.state_dir / "config"

    def render(self, template: str, out_name: str, **values: Any) -> Path:
        """Render ``stacks/<template>`` with ``values`` (plus ``key``) into ``files``; return the output path.

        Raises:
            jinja2.UndefinedError: the template uses a variable that was not given.

        """
        import jinja2

        from legible.stacks import TEMPLATES

        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(TEMPLATES)),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,  # noqa: S701 - YAML/TOML configs, not HTML
        )
        text = env.get_template(template).render(key=self.worktree.key, **values)
        path = self.config_dir / out_name
        self.files[str(path)] = text
        return path

    def shared_env(self) -> dict[str, str]:
        """The variables every service gets (see the module docstring), without ``PORT``."""
        env = {
            STACK_ENV: self.worktree.key,
            REGISTRY_ENV: str(state_home(create=False) / "leases.json"),
            "LEGIBLE_WORKTREE": self.worktree.key,
            "LEGIBLE_STATE_DIR": str(self.worktree.state_dir),
            "HOST": "127.0.0.1",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{self.ports['otlp-http']}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_RESOURCE_ATTRIBUTES": f"legible.worktree={self.worktree.key}",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_LOGS_EXPORTER": "otlp",
            "OTEL_METRIC_EXPORT_INTERVAL": "5000",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_BLRP_SCHEDULE_DELAY": "100",
            "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true",
            "PYTHONUNBUFFERED": "1",
        }
        for name, port in self.ports.items():
            env[f"{_env_name(name)}_PORT"] = str(port)
        return env

    def env_for(self, service: str, port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The full environment of ``service``: the caller's, :meth:`shared_env`, ``PORT``, then ``extra``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != "PORT"}
        env.update(self.shared_env())
        env["OTEL_SERVICE_NAME"] = service
        if port:
            env["PORT"] = str(port)
        env.update(extra or {})
        return env

    def scrape_targets(self) -> list[dict[str, Any]]:
        """``[{"service", "port", "path"}]`` for every user service with a ``metrics_path``."""
        out = []
        for name, svc in self.user_services():
            if svc.metrics_path and name in self.ports:
                out.append({"service": name, "port": self.ports[name], "path": svc.metrics_path})
        return out

    def user_services(self) -> list[tuple[str, ServiceConfig]]:
        """``[(name, config)]`` for the app and extra services, in start order."""
        cfg = self.config
        by_name = {"app": cfg.app, **cfg.services}
        from legible.config import order_services

        return [(n, by_name[n]) for n in order_services(cfg)]


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
        endpoints: URL by name (``app``, ``vmui``, ``victoria-metrics``, ``otlp-http``, ``otlp-grpc``).
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

    def to_dict(self) -> dict[str, Any]:
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
        """The ``.legible/env`` dotenv: endpoints an agent's shell can source (``set -a; . .legible/env``)."""
        lines = [f"# legible stack {self.key}: source with `set -a; . .legible/env; set +a`"]
        lines.append(f"LEGIBLE_WORKTREE={self.key}")
        for name, url in self.endpoints.items():
            lines.append(f"LEGIBLE_{_env_name(name)}_URL={url}")
        lines.append(f"OTEL_EXPORTER_OTLP_ENDPOINT={self.endpoints['otlp-http']}")
        for name, port in self.ports.items():
            lines.append(f"{_env_name(name)}_PORT={port}")
        return "\n".join(lines) + "\n"

    def write(self, state_dir: Path) -> Path:
        """Write rendered files, ``env`` and ``plan.json`` under ``state_dir``; return the plan.json path."""
        for path, text in self.files.items():
            p = Path(path)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        (state_dir / "env").write_text(self.env_file_text())
        (state_dir / "logs").mkdir(exist_ok=True)
        (state_dir / "data").mkdir(exist_ok=True)
        out = state_dir / "plan.json"
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        os.replace(tmp, out)
        return out


def assign_ports(config: LegibleConfig, lease: Lease) -> dict[str, int]:
    """Map names to ports: every :data:`SLOTS` name, then one slot per extra service with ``port = true``.

    Raises:
        ConfigError: more extra services want a port than the block has slots.

    """
    ports = {name: lease.port(slot) for name, slot in SLOTS.items()}
    slot = FIRST_EXTRA_SLOT
    for name, svc in sorted(config.services.items()):
        if svc.port:
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
    port = ctx.ports.get(name, 0)
    cwd = (ctx.worktree.root / svc.cwd).resolve()
    where = "app" if name == "app" else f"services.{name}"
    src = Path(ctx.config.source).name or "legible.toml"
    if not cwd.is_dir():
        raise ConfigError(f"{src}: {where}.cwd: {cwd} is not a directory", hint=f"fix {where}.cwd in {src}")
    env = ctx.env_for(name, port)
    subst = {k: Template(v).safe_substitute(env) for k, v in svc.env.items()}
    env.update(subst)
    if svc.shell:
        text = svc.command if isinstance(svc.command, str) else shlex.join(svc.command)
        argv = ["/bin/sh", "-c", Template(text).safe_substitute(env)]
    else:
        parts = shlex.split(svc.command) if isinstance(svc.command, str) else list(svc.command)
        argv = [Template(p).safe_substitute(env) for p in parts]
    if svc.instrument:
        argv = ["opentelemetry-instrument", *argv]
    exe = argv[0]
    if os.sep in exe:
        found = exe if os.path.isabs(exe) else str(cwd / exe)
        ok = os.access(found, os.X_OK)
    else:
        ok = shutil.which(exe, path=env.get("PATH")) is not None
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
            probe = Probe("http", Template(target).safe_substitute(env))
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
        watch=list(svc.watch) or (list(WATCH_ALL) if ctx.watch and name == "app" else []),
    )


def build_plan(
    worktree: Worktree, config: LegibleConfig, lease: Lease, *, browser: bool = False, watch: bool = False
) -> StackPlan:
    """Compute the stack plan; no side effects.

    ``browser`` (or ``[stack] browser = true``) adds the browser service kinds, which start after the app.
    ``watch`` makes the app restart on changes to any file when ``[app] watch`` is unset.

    Raises:
        ConfigError: a bad ``cwd`` or too many ported services.
        PrerequisiteMissing: a binary (VictoriaMetrics, the app's command) is not installed.

    """
    ports = assign_ports(config, lease)
    ctx = PlanContext(
        worktree=worktree, config=config, ports=ports, browser=browser or config.stack.browser, watch=watch
    )
    from legible.services import BUILTIN

    planned = [p for p in (kind.plan(ctx) for kind in BUILTIN) if p is not None]
    services = [p for p in planned if p.role in ("store", "collector")]
    # User services wait for the stores, not for the collector: OTLP exporters retry a refused connection
    # (OTLP spec, "Retrying"), stdout is tailed from files, and the collector's ~0.3 s start overlaps the app's.
    infra = [s.name for s in services if s.role == "store"]
    services.extend(_user_service_plan(ctx, n, s, infra) for n, s in ctx.user_services())
    services.extend(p for p in planned if p.role not in ("store", "collector"))  # the browser, after the app
    endpoints = {
        "app": f"http://127.0.0.1:{ports['app']}",
        "victoria-metrics": f"http://127.0.0.1:{ports['victoria-metrics']}",
        "vmui": f"http://127.0.0.1:{ports['victoria-metrics']}/vmui/",
        "otlp-http": f"http://127.0.0.1:{ports['otlp-http']}",
        "otlp-grpc": f"127.0.0.1:{ports['otlp-grpc']}",
        "supervisor": f"http://127.0.0.1:{ports['supervisor']}/metrics",
    }
    raw = json.dumps(config.model_dump(mode="json"), sort_keys=True)
    return StackPlan(
        key=worktree.key,
        worktree=str(worktree.root),
        lease_base=lease.base,
        ports=ports,
        services=services,
        files=ctx.files,
        endpoints=endpoints,
        config_hash=hashlib.sha256(raw.encode()).hexdigest()[:16],
    )
