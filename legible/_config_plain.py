"""A validated configuration as plain data: what ``legible up`` plans from when its stamp matches (issue 12).

:mod:`legible.config` validates ``legible.toml`` with pydantic; importing pydantic and building the models
costs ``legible up`` about 120 ms before it can hand the plan to the supervisor, on the path every service
waits for. Once a file validated, :func:`legible._config_file.load_config_cached` keeps the validated,
normalised configuration (``LegibleConfig.model_dump(mode="json")``: every default applied, durations as
written) in the worktree's stamp, ``.legible/config.validated``, and later runs whose stamp still matches
rebuild it here, with no pydantic, as :class:`PlainConfig`.

:class:`PlainConfig` answers every read :func:`legible.plan.build_plan` (and the service kinds it calls)
makes of a :class:`~legible.config.LegibleConfig`: ``app``, ``services``, ``stack``, ``forward`` (with
``model_fields_set``, which :func:`legible.forward.resolve` reads for its precedence), ``source`` and
``model_dump(mode="json")`` (the plan's ``config_hash``). ``journeys`` and ``checks`` are kept only inside
the dump: a command that reads them validates with pydantic. ``tests/test_config_plain.py`` checks that the
plan built from a :class:`PlainConfig` equals the plan built from the models, and that each plain class has
the fields of its model.

The stamp holds only what ``legible.toml`` says (defaults added): ``$NAME`` references in ``env`` stay
references, substituted at plan time from the caller's environment, which never reaches the stamp.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

__all__ = ["PlainConfig", "PlainForward", "PlainReady", "PlainService", "PlainStack", "plain_config", "ready_kind"]


def ready_kind(http: str | None, log: str | None) -> Literal["http", "tcp", "log"]:
    """The kind of a readiness probe with exactly one of ``http``, ``tcp``, ``log`` set (``tcp`` when neither other)."""
    if http is not None:
        return "http"
    if log is not None:
        return "log"
    return "tcp"


@dataclass(frozen=True)
class PlainReady:
    """:class:`legible.config.ReadyProbe` as plain data (exactly one field set, as validated)."""

    http: str | None = None
    tcp: bool | int | None = None
    log: str | None = None

    @property
    def kind(self) -> Literal["http", "tcp", "log"]:
        """Which probe this is: ``"http"``, ``"tcp"`` or ``"log"`` (:func:`ready_kind`, as ``ReadyProbe.kind``)."""
        return ready_kind(self.http, self.log)


@dataclass(frozen=True)
class PlainService:
    """:class:`legible.config.ServiceConfig` as plain data; see it for each field's meaning and unit."""

    command: str | list[str] | None
    kind: Literal["postgres", "redis"] | None
    setup: list[str]
    cwd: str
    env: dict[str, str]
    ready: PlainReady | None
    ready_timeout: float
    metrics_path: str | None
    depends_on: list[str]
    port: bool
    shell: bool
    instrument: bool
    image: str | None
    restart: bool
    max_restarts: int
    watch: list[str]


@dataclass(frozen=True)
class PlainStack:
    """:class:`legible.config.StackConfig` as plain data."""

    scrape_interval: str
    retention: str
    browser: bool
    cdp_port: bool
    backend: Literal["native", "docker"]


@dataclass(frozen=True)
class PlainForward:
    """:class:`legible.config.ForwardConfig` as plain data, with the keys ``legible.toml`` set.

    Attributes:
        model_fields_set: the keys written in ``[forward]`` (pydantic's ``model_fields_set``): only those
            win over the ``LEGIBLE_FORWARD_*`` environment (:func:`legible.forward.resolve`).

    """

    remote_write: str | None
    otlp: str | None
    query_url: str | None
    headers: dict[str, str]
    max_disk_mb: int
    model_fields_set: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class PlainConfig:
    """:class:`legible.config.LegibleConfig` for planning, rebuilt from its JSON dump without pydantic.

    Attributes:
        app: the app (``[app]``).
        services: extra services by name (``[services.*]``).
        stack: ``[stack]``.
        forward: ``[forward]``.
        source: the file the configuration came from.
        dump: ``LegibleConfig.model_dump(mode="json")`` of the validated configuration.

    """

    app: PlainService
    services: dict[str, PlainService]
    stack: PlainStack
    forward: PlainForward
    source: str
    dump: dict[str, Any]

    def model_dump(self, *, mode: Literal["json"] = "json") -> dict[str, Any]:
        """The validated configuration's ``model_dump(mode="json")``, as pydantic gave it (a copy)."""
        import copy

        return copy.deepcopy(self.dump)


#: The keys of ``LegibleConfig.model_dump()``.
_TOP = frozenset({"app", "services", "stack", "forward", "journeys", "checks", "source"})


def _exact(cls: type[Any], data: Any, **given: Any) -> dict[str, Any]:
    """The keyword arguments of dataclass ``cls`` from ``data``, which must have exactly its fields.

    Raises:
        ValueError: ``data`` is not a dict with exactly the fields of ``cls``; ``given`` then replaces values.

    """
    names = {f.name for f in fields(cls)} - {"model_fields_set"}
    if not isinstance(data, dict) or set(data) != names:
        raise ValueError(f"{cls.__name__}: fields {sorted(data) if isinstance(data, dict) else data!r}")
    return {**data, **given}


def _service(data: Any) -> PlainService:
    ready = data.get("ready") if isinstance(data, dict) else None
    return PlainService(
        **_exact(PlainService, data, ready=None if ready is None else PlainReady(**_exact(PlainReady, ready)))
    )


def plain_config(dump: Any, forward_set: Any) -> PlainConfig:
    """Rebuild a :class:`PlainConfig` from a validated configuration's dump and its ``[forward]`` keys set.

    Args:
        dump: ``LegibleConfig.model_dump(mode="json")`` (a dict, as read back from JSON).
        forward_set: the names in ``LegibleConfig.forward.model_fields_set`` (a list).

    Raises:
        ValueError: the dump does not have the shape of today's models (an older or foreign stamp), or
            ``forward_set`` is not a list of field names; the caller then validates the file again.
        TypeError: a value of the dump has the wrong shape.

    """
    if not isinstance(dump, dict) or set(dump) != _TOP or not isinstance(dump["services"], dict):
        raise ValueError("not a configuration dump")
    forward_keys = {f.name for f in fields(PlainForward)} - {"model_fields_set"}
    if not isinstance(forward_set, list) or not set(forward_set) <= forward_keys:
        raise ValueError("not a list of [forward] keys")
    return PlainConfig(
        app=_service(dump["app"]),
        services={str(name): _service(svc) for name, svc in dump["services"].items()},
        stack=PlainStack(**_exact(PlainStack, dump["stack"])),
        forward=PlainForward(**_exact(PlainForward, dump["forward"], model_fields_set=frozenset(forward_set))),
        source=str(dump["source"]),
        dump=dump,
    )
