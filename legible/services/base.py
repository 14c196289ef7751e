"""The seam every service kind implements, and the plain-data plan of one service.

A built-in service kind (victoria-metrics, collector, chromium; later vector, grafana) is one class with
two duties: :meth:`ServiceKind.detect` tells ``legible doctor`` whether its binary is here, and
:meth:`ServiceKind.plan` returns the :class:`ServicePlan` to run (or ``None`` when the stack does not use
it). Kinds are registered in one place, :data:`legible.services.BUILTIN`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

if TYPE_CHECKING:
    from legible.contract import ServicePlanDoc
    from legible.services.context import PlanContext

ProbeKind = Literal["http", "tcp", "log", "postgres", "redis", "none"]


@dataclass(frozen=True)
class Probe:
    """A resolved readiness probe.

    Attributes:
        kind: ``http`` (GET ``target``, ready below status 500), ``tcp`` (connect to ``127.0.0.1:target``),
            ``log`` (``target`` is a regex matched against new lines of the service log), ``postgres``
            (``ready`` in ``<target>/postmaster.pid``, then ``pg_isready`` on the plan's ``port``), ``redis``
            (``PING`` on ``127.0.0.1:target``), ``none``.
        target: URL, port number as a string, regex, or (``postgres``) the data directory.

    """

    kind: ProbeKind
    target: str = ""


@dataclass(frozen=True)
class ServicePlan:
    """Everything needed to start and supervise one process; JSON-serialisable.

    Attributes:
        name: service name (``app``, ``victoria-metrics``, ...).
        role: ``store`` | ``collector`` | ``app`` | ``browser`` | ``forward``; stores start first, then the
            app, then browser and forward (nothing waits for those).
        argv: the command, already substituted.
        cwd: working directory.
        env: what legible and ``legible.toml`` add to the inherited environment (never inherited values:
            the supervisor rebuilds the full environment at spawn time, see
            :func:`legible.services.context.service_environ`).
        probe: the readiness probe.
        ready_timeout: seconds to become ready.
        depends_on: services that must be ready before this one starts.
        port: the service's own leased port, or 0.
        log: path of ``logs/<name>.log``.
        restart: restart after a crash (with backoff).
        max_restarts: restart cap before the service is marked failed.
        stop_timeout: seconds between SIGTERM and SIGKILL.
        deferred: ``env`` keys (and ``"argv"``) that still name inherited variables (``$HOME``); the
            supervisor substitutes them at spawn time, so their values are never written to the plan.
        watch: gitignore-style globs relative to the worktree root; a change to a matching file restarts
            the service (``[app] watch``, ``legible up --watch``).
        setup: shell commands the supervisor runs before each start of the service (``[app] setup``,
            :mod:`legible.setup_steps`); a failing one fails that start.

    """

    name: str
    role: str
    argv: list[str]
    cwd: str
    env: dict[str, str]
    probe: Probe
    ready_timeout: float
    depends_on: list[str] = field(default_factory=list)
    port: int = 0
    log: str = ""
    restart: bool = True
    max_restarts: int = 5
    stop_timeout: float = 3.0
    deferred: list[str] = field(default_factory=list)
    watch: list[str] = field(default_factory=list)
    setup: list[str] = field(default_factory=list)

    def to_dict(self) -> ServicePlanDoc:
        """A JSON-ready dict (see :meth:`from_dict`)."""
        return cast("ServicePlanDoc", asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ServicePlan:
        """Inverse of :meth:`to_dict`."""
        return cls(**{**d, "probe": Probe(**d["probe"])})


@dataclass(frozen=True)
class Component:
    """What ``legible doctor`` reports for one external binary.

    Attributes:
        name: component name (``victoria-metrics``).
        path: the binary found, or ``None``.
        version: its version string, or ``""``.
        install: the exact command that installs it when missing.
        required: the default stack cannot run without it.

    """

    name: str
    path: Path | None
    version: str
    install: str
    required: bool = True


class ServiceKind(Protocol):
    """One built-in service kind. See the module docstring."""

    name: str

    def detect(self) -> Component:
        """Find the binary (PATH, then legible's tool cache) and its version."""
        ...

    def plan(self, ctx: PlanContext) -> ServicePlan | None:
        """Return this service's plan for the stack in ``ctx``, or ``None`` if the stack does not run it.

        Raises:
            PrerequisiteMissing: the stack needs this service and its binary is missing.

        """
        ...
