"""What a service kind plans from (:class:`PlanContext`) and the environment rules every service follows.

This module sits beside the service interface (:mod:`legible.services.base`) so that service kinds never
import :mod:`legible.plan`, which imports them (issue 9).

Environment of a service = the supervisor's own environment (which it inherited from ``legible up``)
minus :data:`INHERIT_DROP`, plus what legible sets (:meth:`PlanContext.env_for`), plus ``legible.toml``'s
``env``; then ``NO_PROXY``/``no_proxy`` get :data:`LOOPBACK_HOSTS` appended. The plan on disk holds only
legible's additions and ``legible.toml``'s values: the supervisor rebuilds the rest at spawn time
(:func:`service_environ`, :func:`service_argv`), so inherited values (API keys, passwords) never reach a file.

OpenTelemetry variables follow the SDK environment specification
(https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/) and the OTLP exporter
specification (https://opentelemetry.io/docs/specs/otel/protocol/exporter/): the protocol the user chose
(``OTEL_EXPORTER_OTLP_PROTOCOL`` and ``OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_PROTOCOL``, from the
caller's environment or ``legible.toml``) picks the port: ``grpc`` the collector's gRPC port,
``http/protobuf`` and ``http/json`` its HTTP port; a signal whose protocol differs from the general one gets
its own ``OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`` (with the ``/v1/<signal>`` path for HTTP, since per-signal
URLs are used as-is). ``OTEL_RESOURCE_ATTRIBUTES`` values are percent-encoded as that specification says.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from legible._errors import ConfigError
from legible._paths import state_home
from legible._procs import REGISTRY_ENV, STACK_ENV

if TYPE_CHECKING:  # the supervisor loads plans without paying for pydantic (about 100 ms)
    from legible.config import LegibleConfig, ServiceConfig
    from legible.services.base import ServicePlan
    from legible.worktree import Worktree

__all__ = [
    "INHERIT_DROP",
    "LOOPBACK_HOSTS",
    "OTLP_PROTOCOLS",
    "PlanContext",
    "expand",
    "otlp_env",
    "resource_attributes",
    "service_argv",
    "service_environ",
]

#: Inherited variables no service receives (``fnmatch`` patterns): legible owns the OpenTelemetry SDK
#: settings (the protocol is read from the caller and re-set, see :func:`otlp_env`) and ``PORT``.
INHERIT_DROP = ("OTEL_*", "PORT")
#: Hosts appended to ``NO_PROXY`` and ``no_proxy`` of every service, so a proxy set for the outside world
#: never carries loopback traffic (the app's OTLP exporter, scrapes, probes).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
#: ``OTEL_EXPORTER_OTLP_PROTOCOL`` values of the specification.
OTLP_PROTOCOLS = ("grpc", "http/protobuf", "http/json")
_SIGNALS = ("traces", "metrics", "logs")
_PATTERN: re.Pattern[str] = Template.pattern


def _env_name(name: str) -> str:
    return name.upper().replace("-", "_")


def resource_attributes(attrs: Mapping[str, str]) -> str:
    """Return ``OTEL_RESOURCE_ATTRIBUTES`` text: ``k=v`` pairs joined by ``,``, keys and values percent-encoded.

    The OTel SDK specification says values are W3C-Baggage-like and characters outside ``baggage-octet``
    MUST be percent-encoded; encoding everything but RFC 3986 unreserved characters satisfies that, and the
    SDKs decode it (Python: ``urllib.parse.unquote``). ``{"legible.worktree": "a,b"}`` -> ``legible.worktree=a%2Cb``.
    """
    return ",".join(f"{quote(k, safe='.')}={quote(v, safe='')}" for k, v in attrs.items())


def otlp_env(chosen: Mapping[str, str], http_port: int, grpc_port: int) -> dict[str, str]:
    """The OTLP exporter variables for a service, agreeing with the protocol the user chose.

    Args:
        chosen: the variables that may name a protocol (the caller's environment overlaid with
            ``legible.toml``'s ``env``); only ``OTEL_EXPORTER_OTLP[_<SIGNAL>]_PROTOCOL`` are read.
        http_port: the collector's OTLP/HTTP port.
        grpc_port: the collector's OTLP/gRPC port.

    Returns:
        ``OTEL_EXPORTER_OTLP_PROTOCOL`` and ``OTEL_EXPORTER_OTLP_ENDPOINT``, plus, per signal whose protocol
        differs from the general one, ``OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL`` and ``..._ENDPOINT``.

    Raises:
        ConfigError: a protocol variable holds a value that is not one of :data:`OTLP_PROTOCOLS`.

    """

    def protocol(var: str, default: str) -> str:
        value = (chosen.get(var) or "").strip() or default
        if value not in OTLP_PROTOCOLS:
            raise ConfigError(
                f"{var}={value!r} is not an OTLP protocol",
                hint=f"use one of {', '.join(OTLP_PROTOCOLS)} (OTLP exporter specification)",
            )
        return value

    def base(proto: str) -> str:
        return f"http://127.0.0.1:{grpc_port if proto == 'grpc' else http_port}"

    general = protocol("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": general, "OTEL_EXPORTER_OTLP_ENDPOINT": base(general)}
    for signal in _SIGNALS:
        var = f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL"
        proto = protocol(var, general)
        if proto == general and not chosen.get(var):
            continue
        env[var] = proto
        # per-signal endpoints are used as-is: OTLP/HTTP needs the full path, gRPC only the authority
        env[f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"] = (
            base(proto) if proto == "grpc" else f"{base(proto)}/v1/{signal}"
        )
    return env


def expand(text: str, own: Mapping[str, str], inherited: Mapping[str, str]) -> tuple[str, bool]:
    """Substitute ``$NAME``/``${NAME}`` in ``text`` with legible's values; defer inherited names to spawn time.

    ``string.Template`` rules. When ``text`` names a variable of ``inherited`` (the caller's environment)
    that legible does not set, its value must not be written to the plan: such a text keeps those names,
    legible's own values are escaped (``$`` -> ``$$``), and the supervisor finishes it with
    :func:`service_argv`/:func:`service_environ`. Unknown names stay as they are.

    Returns:
        ``(text, deferred)``: ``deferred`` is True when the supervisor must substitute the rest.

    """
    deferred = False
    for m in _PATTERN.finditer(text):
        name = m.group("named") or m.group("braced")
        if name and name not in own and name in inherited:
            deferred = True
            break
    if not deferred:
        return Template(text).safe_substitute(own), False

    def repl(m: re.Match[str]) -> str:
        name = m.group("named") or m.group("braced")
        if name and name in own:
            return own[name].replace("$", "$$")
        return m.group(0)

    return _PATTERN.sub(repl, text), True


def _inherited(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if not any(fnmatch.fnmatchcase(k, p) for p in INHERIT_DROP)}


def service_environ(sp: ServicePlan, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a service is spawned with, rebuilt from ``environ`` and the plan's additions.

    Args:
        sp: the service plan (``env`` holds only what legible and ``legible.toml`` set).
        environ: the supervisor's environment (default ``os.environ``).

    Returns:
        ``environ`` minus :data:`INHERIT_DROP`, updated with ``sp.env`` (entries named in ``sp.deferred``
        substituted from the inherited part), with :data:`LOOPBACK_HOSTS` appended to ``NO_PROXY`` and
        ``no_proxy``.

    """
    base = _inherited(os.environ if environ is None else environ)
    env = dict(base)
    for k, v in sp.env.items():
        env[k] = Template(v).safe_substitute(base) if k in sp.deferred else v
    for var in ("NO_PROXY", "no_proxy"):
        have = [h.strip() for h in env.get(var, "").split(",") if h.strip()]
        env[var] = ",".join([*have, *(h for h in LOOPBACK_HOSTS if h not in have)])
    return env


def service_argv(sp: ServicePlan, env: Mapping[str, str]) -> list[str]:
    """The argv a service is spawned with: ``sp.argv``, finished from ``env`` when ``"argv"`` is deferred.

    Args:
        sp: the service plan.
        env: the service's full environment (:func:`service_environ`).

    """
    if "argv" not in sp.deferred:
        return list(sp.argv)
    return [Template(a).safe_substitute(env) for a in sp.argv]


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
        environ: the caller's environment (``legible up``'s; the supervisor inherits it). Only read, for
            the OTLP protocol the user chose and for ``$NAME`` references; never copied into the plan.

    """

    worktree: Worktree
    config: LegibleConfig
    ports: dict[str, int]
    files: dict[str, str] = field(default_factory=dict)
    browser: bool = False
    watch: bool = False
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    @property
    def config_dir(self) -> Path:
        """``.legible/config``: where rendered configuration files go."""
        return self.worktree.state_dir / "config"

    def add_file(self, out_name: str, text: str) -> Path:
        """Record ``text`` as ``.legible/config/<out_name>`` in ``files``; return that path."""
        path = self.config_dir / out_name
        self.files[str(path)] = text
        return path

    def render(self, template: str, out_name: str, **values: Any) -> Path:
        """Render ``stacks/<template>`` with ``values`` (plus ``key``) into ``files``; return the output path.

        Values are pasted as the template says: templates must pass them through a quoting filter
        (``tojson``) where they land in a structured format.

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
        return self.add_file(out_name, text)

    def shared_env(self, chosen: Mapping[str, str] | None = None) -> dict[str, str]:
        """The variables legible sets on every service (see the module docstring), without ``PORT``.

        Args:
            chosen: ``legible.toml``'s ``env`` of the service, read for the OTLP protocol on top of
                :attr:`environ`.

        Raises:
            ConfigError: an OTLP protocol variable has a value the specification does not define.

        """
        env = {
            STACK_ENV: self.worktree.key,
            REGISTRY_ENV: str(state_home(create=False) / "leases.json"),
            "LEGIBLE_WORKTREE": self.worktree.key,
            "LEGIBLE_STATE_DIR": str(self.worktree.state_dir),
            "HOST": "127.0.0.1",
            **otlp_env({**self.environ, **(chosen or {})}, self.ports["otlp-http"], self.ports["otlp-grpc"]),
            "OTEL_RESOURCE_ATTRIBUTES": resource_attributes({"legible.worktree": self.worktree.key}),
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

    def env_for(self, service: str, port: int, chosen: Mapping[str, str] | None = None) -> dict[str, str]:
        """What legible adds to ``service``'s environment: :meth:`shared_env`, ``OTEL_SERVICE_NAME``, ``PORT``.

        The inherited environment is not included: the supervisor adds it at spawn time
        (:func:`service_environ`).
        """
        env = self.shared_env(chosen)
        env["OTEL_SERVICE_NAME"] = service
        if port:
            env["PORT"] = str(port)
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
        from legible._config_file import order_services

        return [(n, by_name[n]) for n in order_services(cfg)]
