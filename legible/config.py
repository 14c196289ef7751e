"""``legible.toml``: what the stack runs for a worktree, validated into plain data.

The file sits at the worktree root; ``[tool.legible]`` in ``pyproject.toml`` is read when there is no
``legible.toml``. Shape (every key optional except ``app.command``)::

    [app]
    command = "python app.py --port $PORT"   # a string (split like a shell would) or a list
    cwd = "."                                 # relative to the worktree root
    env = { FEATURE_X = "1" }                 # extra environment; $VARS are substituted
    ready = { http = "/healthz" }             # or { tcp = true } (the default) or { log = "regex" }
    ready_timeout = 30                        # seconds until the app must be ready
    metrics_path = "/metrics"                 # Prometheus endpoint scraped by VictoriaMetrics
    instrument = false                        # true: run under `opentelemetry-instrument`
    setup = ["alembic upgrade head"]          # run before every start of the app (each deploy)

    [services.worker]                         # extra services, started after what they depend on
    command = "python worker.py"
    depends_on = ["app"]
    port = true                               # lease a port for it: $PORT inside, $WORKER_PORT for all

    [services.db]                             # a built-in kind instead of a command: "postgres" or "redis"
    kind = "postgres"                         # the app gets DATABASE_URL, PGHOST/PGPORT/...; REDIS_URL for redis

    [stack]
    scrape_interval = "5s"                    # how often VictoriaMetrics scrapes metrics_path
    browser = false                           # also run a headless Chromium (or `legible up --browser`)
    cdp_port = false                          # also open its CDP port on 127.0.0.1 (any local process can drive it)

    [forward]                                 # optional: send signals to shared engines (legible.forward)
    remote_write = "http://vm:8428/api/v1/write"   # metrics, through vmagent's on-disk queue
    otlp = "http://otel:4318"                 # spans and logs, through the collector's on-disk queue
    query_url = "http://vm:8428"              # `legible metrics --shared`, baselines from the shared engine

    [checks.fast-start]                       # `legible check`: one line per check, exit 1 on a failure
    startup = { max = "800ms" }
    [checks.checkout-spans]
    span = { journey = "checkout", max = "2s" }   # or { name = "GET /slow", percentile = 99, max = "2s" }
    [checks.no-errors]
    logs = { level = "error", max_count = 0, since = "15m" }
    [checks.error-rate]
    promql = { query = "sum(rate(shop_http_requests_total{status=~'5..'}[5m]))", op = "<", threshold = 0.1 }

    [journeys.checkout]                       # a named browser journey: `legible journey run checkout`
    steps = [
      { goto = "/" },
      { click = "text=Order" },
      { fill = { selector = "#name", text = "Ada" } },
      { press = "Enter" },
      { expect_text = "Thank you" },
    ]

In commands, ``$PORT``/``${PORT}`` and every variable of the stack's environment (``$VICTORIA_METRICS_PORT``,
``$OTEL_EXPORTER_OTLP_ENDPOINT``, ...) are substituted (``string.Template`` rules; unknown names stay).
Validation is pydantic with unknown keys forbidden, so a typo is an error that names the key and file.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from legible._config_file import CHECK_KINDS, CONFIG_FILENAME, LEVELS, find_config_file, order_services
from legible._config_plain import ready_kind
from legible._duration import EXAMPLES, parse_duration
from legible._errors import ConfigError, UsageError

__all__ = [
    "ACTIONS",
    "CHECK_KINDS",
    "CONFIG_FILENAME",
    "LEVELS",
    "OTLP_PROTOCOLS",
    "RESERVED_SERVICES",
    "BrowserCheck",
    "CheckConfig",
    "DbCheck",
    "Duration",
    "ForwardConfig",
    "JourneyCheck",
    "JourneyConfig",
    "JourneyStep",
    "LegibleConfig",
    "LogsCheck",
    "PromqlCheck",
    "ReadyProbe",
    "ServiceConfig",
    "SpanCheck",
    "StackConfig",
    "StartupCheck",
    "describe_validation_error",
    "config_from_bytes",
    "find_config_file",
    "load_config",
    "order_services",
    "parse_config",
]
_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
#: The OTLP exporter protocols of the specification (the same tuple as
#: ``legible.services.context.OTLP_PROTOCOLS``, which the supervisor loads without pydantic).
OTLP_PROTOCOLS = ("grpc", "http/protobuf", "http/json")
RESERVED_SERVICES = frozenset({"victoria-metrics", "collector", "chromium", "vector", "grafana", "supervisor"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ReadyProbe(_Strict):
    """How the supervisor decides a service is ready; exactly one of the three fields is set.

    Attributes:
        http: a path (``/healthz``, requested on the service's port) or a full ``http://127.0.0.1...``
            URL; ready when it answers with a status below 500.
        tcp: ``True`` for the service's own port, or a port number; ready when a connect succeeds.
        log: a regular expression; ready when a line of the service's log matches it.

    """

    http: str | None = None
    tcp: bool | int | None = None
    log: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ReadyProbe:
        chosen = [k for k in ("http", "tcp", "log") if getattr(self, k) not in (None, False)]
        if len(chosen) != 1:
            raise ValueError("set exactly one of http, tcp, log")
        if self.log is not None:
            try:
                re.compile(self.log)
            except re.error as exc:
                raise ValueError(f"log is not a valid regular expression: {exc}") from exc
        return self

    @property
    def kind(self) -> Literal["http", "tcp", "log"]:
        """Which probe this is: ``"http"``, ``"tcp"`` or ``"log"``."""
        return ready_kind(self.http, self.log)


class ServiceConfig(_Strict):
    """One process the user declares: the app, or an extra service (a worker, a database).

    Attributes:
        command: argv, or a string split with ``shlex`` (no shell runs unless ``shell = true``); not set
            for a built-in ``kind``.
        kind: a built-in service kind instead of a command: ``"postgres"`` or ``"redis"`` (extra services
            only; see :mod:`legible.services.databases`). Such a service always has a leased port, its data
            under ``.legible/data/<name>/``, and the app depends on it implicitly.
        setup: commands run (each with ``/bin/sh -c``, in ``cwd``, with the service's environment) before
            every start of the service, in order; their output goes to ``logs/<name>-setup.log`` and a
            failing one stops that start (``[app] setup = ["alembic upgrade head", "python seed.py"]``).
        cwd: working directory, relative to the worktree root.
        env: extra environment variables (values are substituted like the command); an
            ``OTEL_EXPORTER_OTLP[_<SIGNAL>]_PROTOCOL`` here must be ``grpc``, ``http/protobuf`` or ``http/json``
            and picks the collector port legible gives the service.
        ready: the readiness probe; ``None`` means ready once started (extra services without a port).
        ready_timeout: seconds the service has to become ready.
        metrics_path: a Prometheus exposition path on the service's port, scraped by VictoriaMetrics.
        depends_on: services that must be ready first (``app`` or other extra services).
        port: lease a port for this service (always true for the app).
        shell: run ``command`` with ``/bin/sh -c``.
        instrument: prefix the command with ``opentelemetry-instrument`` (zero-code instrumentation).
        image: with ``[stack] backend = "docker"``, the image the command runs in (default
            ``python:3.11-slim``), with the worktree mounted at its own path.
        restart: restart after a crash (with backoff, at most ``max_restarts`` times).
        max_restarts: the restart cap; after it the service is marked ``failed``.
        watch: gitignore-style globs relative to the worktree root (``["src/**/*.py", "templates/**"]``);
            when a matching file changes the service is restarted (debounced), and that start is a deploy.

    """

    command: str | list[str] | None = None
    kind: Literal["postgres", "redis"] | None = None
    setup: list[str] = Field(default_factory=list)
    cwd: str = "."
    env: dict[str, str] = Field(default_factory=dict)
    ready: ReadyProbe | None = None
    ready_timeout: float = Field(default=30.0, gt=0, le=3600)
    metrics_path: str | None = None
    depends_on: list[str] = Field(default_factory=list)
    port: bool = False
    shell: bool = False
    instrument: bool = False
    image: str | None = None
    restart: bool = True
    max_restarts: int = Field(default=5, ge=0, le=1000)
    watch: list[str] = Field(default_factory=list)

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @model_validator(mode="after")
    def _command_or_kind(self) -> ServiceConfig:
        if (self.command is None) == (self.kind is None):
            raise ValueError("set either command or kind (postgres, redis)")
        if self.kind is not None and self.setup:
            raise ValueError(f"setup runs before a command; a {self.kind} service has none")
        return self

    @field_validator("setup")
    @classmethod
    def _steps(cls, v: list[str]) -> list[str]:
        if any(not step.strip() for step in v):
            raise ValueError("a setup step must not be empty")
        return v

    @field_validator("command")
    @classmethod
    def _non_empty(cls, v: str | list[str] | None) -> str | list[str] | None:
        if v is None:
            return v
        if (isinstance(v, str) and not v.strip()) or (isinstance(v, list) and not v):
            raise ValueError("must not be empty")
        if isinstance(v, str):
            try:
                shlex.split(v)
            except ValueError as exc:
                raise ValueError(f"cannot be split like a shell command: {exc}") from exc
        return v

    @field_validator("env")
    @classmethod
    def _otlp_protocol(cls, v: dict[str, str]) -> dict[str, str]:
        for key, value in v.items():
            if (
                re.fullmatch(r"OTEL_EXPORTER_OTLP_(TRACES_|METRICS_|LOGS_)?PROTOCOL", key)
                and value not in OTLP_PROTOCOLS
            ):
                raise ValueError(f"{key} = {value!r} is not an OTLP protocol (use one of {', '.join(OTLP_PROTOCOLS)})")
        return v

    @field_validator("metrics_path")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("/"):
            raise ValueError("must start with / (for example /metrics)")
        return v


class StackConfig(_Strict):
    """Stack-wide settings.

    Attributes:
        scrape_interval: how often VictoriaMetrics scrapes ``metrics_path`` targets, as ``"5s"`` or ``"1m"``.
        retention: how long VictoriaMetrics keeps samples, in its ``-retentionPeriod`` syntax (``"7d"``).
        browser: also start Chromium (issue 4); ``legible up --browser`` sets it for one run.
        cdp_port: also open Chromium's DevTools (CDP) TCP port, on ``127.0.0.1`` at the ``chromium`` lease
            port, for a debugger or another CDP client. Default false: the agent talks CDP over a pipe and
            no port exists, because any local process that reaches a CDP port can drive the browser (and,
            with ``file://``, read files). ``legible up`` warns when it is on.
        backend: ``native`` (processes) or ``docker``: VictoriaMetrics, vmagent, Grafana and Vector from their
            official images and the app from ``[app] image`` (or its command in ``python:3.11-slim``), where a
            Docker engine answers (:mod:`legible.docker_backend`).

    """

    scrape_interval: str = Field(default="5s", pattern=r"^\d+(ms|s|m)$")
    retention: str = Field(default="7d", pattern=r"^\d+[hdwy]$")
    browser: bool = False
    cdp_port: bool = False
    backend: Literal["native", "docker"] = "native"


class ForwardConfig(_Strict):
    """``[forward]``: send the stack's signals to shared engines (see :mod:`legible.forward`).

    Each key, when absent, falls back to the machine-wide environment an orchestrator sets
    (``LEGIBLE_FORWARD_REMOTE_WRITE``, ``LEGIBLE_FORWARD_OTLP``, ``LEGIBLE_FORWARD_QUERY_URL``,
    ``LEGIBLE_FORWARD_HEADERS`` as ``k=v,k=v``, ``LEGIBLE_FORWARD_MAX_DISK_MB``): ``legible.toml`` wins.

    Attributes:
        remote_write: a Prometheus remote-write URL (``http://vminsert:8480/insert/0/prometheus/api/v1/write``);
            vmagent sends every series of the stack's VictoriaMetrics there.
        otlp: an OTLP/HTTP base URL (``http://otel:4318``); the collector sends spans and logs to
            ``<otlp>/v1/traces`` and ``<otlp>/v1/logs``.
        query_url: the shared engine's Prometheus query API base (``http://vmselect:8481/select/0/prometheus``)
            for ``legible metrics --shared`` and ``legible proof --baseline branch:NAME``.
        headers: HTTP headers sent with every forwarded request (for example an ``Authorization``).
        max_disk_mb: on-disk queue cap per destination, in MiB; past it new data is dropped and counted.

    """

    remote_write: str | None = Field(default=None, pattern=r"^https?://")
    otlp: str | None = Field(default=None, pattern=r"^https?://")
    query_url: str | None = Field(default=None, pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)
    max_disk_mb: int = Field(default=512, ge=1, le=1_048_576)


class JourneyStep(_Strict):
    """One step of a journey; exactly one action field is set (``title`` may accompany any of them).

    Attributes:
        goto: a path (resolved against the app's URL) or an absolute ``http://127.0.0.1...`` URL.
        click: a Playwright selector (``text=Order``, ``#submit``, ``role=button[name="Buy"]``).
        fill: ``{selector = "...", text = "..."}``.
        press: a key for the focused element (``Enter``), or ``{selector, key}``.
        wait_for: wait until this text is visible.
        expect_text: fail the step unless this text is visible (within ``timeout_ms``).
        chapter: a chapter title for the walkthrough video (no browser action).
        screenshot: save a screenshot under this name.
        title: the step's label in output and the video's chapter card (default: derived from the action).
        timeout_ms: how long the step may take, in ms.
    """

    goto: str | None = None
    click: str | None = None
    fill: dict[str, str] | None = None
    press: str | dict[str, str] | None = None
    wait_for: str | None = None
    expect_text: str | None = None
    chapter: str | None = None
    screenshot: str | None = None
    title: str | None = None
    timeout_ms: int = Field(default=5000, gt=0, le=600_000)

    @model_validator(mode="after")
    def _one_action(self) -> JourneyStep:
        actions = [k for k in ACTIONS if getattr(self, k) is not None]
        if len(actions) != 1:
            raise ValueError(f"a step needs exactly one of {', '.join(ACTIONS)} (got {actions or 'none'})")
        if self.fill is not None and set(self.fill) != {"selector", "text"}:
            raise ValueError('fill takes { selector = "...", text = "..." }')
        if isinstance(self.press, dict) and set(self.press) != {"selector", "key"}:
            raise ValueError('press takes a key, or { selector = "...", key = "..." }')
        return self

    @property
    def action(self) -> str:
        """The name of the action field that is set (``goto``, ``click``, ...)."""
        return next(k for k in ACTIONS if getattr(self, k) is not None)


#: Journey step actions, in documentation order.
ACTIONS = ("goto", "click", "fill", "press", "wait_for", "expect_text", "chapter", "screenshot")


class JourneyConfig(_Strict):
    """A named, scripted browser walk through the app (a critical user journey).

    Attributes:
        steps: the steps, in order (see :class:`JourneyStep`); or
        script: a Python file (relative to the worktree) defining ``run(page, journey)``, instead of steps.
        description: one line for listings.
    """

    steps: list[JourneyStep] = Field(default_factory=list)
    script: str | None = None
    description: str = ""

    @model_validator(mode="after")
    def _steps_or_script(self) -> JourneyConfig:
        if bool(self.steps) == bool(self.script):
            raise ValueError("set either steps or script")
        return self


def _duration(text: str) -> str:
    """Check that ``text`` is a duration :func:`legible._duration.parse_duration` reads; keep it as written."""
    try:
        parse_duration(text, what="", bare=None)
    except UsageError:
        raise ValueError(f"{text!r} is not a duration like {EXAMPLES} (a number needs its unit)") from None
    return text


#: A duration as written in legible.toml (``"800ms"``, ``"1h30m"``): the forms of the command line, no bare number.
Duration = Annotated[str, AfterValidator(_duration)]


class StartupCheck(_Strict):
    """The service's time from spawn to ready (first start) is at most ``max`` (``"800ms"``, ``"2s"``)."""

    max: Duration
    service: str = "app"


class SpanCheck(_Strict):
    """No span (or the ``percentile`` of spans) over ``max``, among the spans selected.

    Attributes:
        max: the budget (``"2s"``, ``"500ms"``).
        name: only spans with this name (``"GET /slow"``).
        service: only spans of this service.
        journey: only backend spans of the last run of this journey (its trace, without the browser's own
            spans).
        percentile: compare this percentile (0-100, e.g. ``99``) of the selected spans instead of the max.
        since: how far back to look (``"15m"``); ignored with ``journey``.
    """

    max: Duration
    name: str | None = None
    service: str | None = None
    journey: str | None = None
    percentile: float | None = Field(default=None, gt=0, lt=100)
    since: Duration = "15m"


class PromqlCheck(_Strict):
    """Every series of ``query`` (an instant PromQL query) compares true with ``threshold`` by ``op``."""

    query: str = Field(min_length=1)
    op: Literal["<", "<=", ">", ">=", "==", "!="] = "<"
    threshold: float = 0.0


class LogsCheck(_Strict):
    """At most ``max_count`` log lines at or above ``level`` (matching ``pattern``, a regex) in ``since``."""

    level: Literal["trace", "debug", "info", "warn", "error", "fatal"] = "error"
    pattern: str | None = None
    service: str | None = None
    max_count: int = Field(default=0, ge=0)
    since: Duration = "15m"


class JourneyCheck(_Strict):
    """The journey ``name`` passes (and, with ``max``, takes at most that long)."""

    name: str
    max: Duration | None = None


class BrowserCheck(_Strict):
    """Opening each of ``pages`` gives at most ``console_errors`` console errors and ``failed_requests``."""

    pages: list[str] = Field(default_factory=lambda: ["/"], min_length=1)
    console_errors: int = Field(default=0, ge=0)
    failed_requests: int = Field(default=0, ge=0)


class DbCheck(_Strict):
    """No SQL statement slower than ``max_statement`` (``"50ms"``) in ``since``.

    Statements are the app's database client spans (those with a ``db.statement`` attribute, from the
    psycopg/redis-py instrumentations under ``instrument = true``) and the slow-statement lines of the
    ``postgres`` services (``log_min_duration_statement``, 50 ms: shorter ones only show as spans).

    Attributes:
        max_statement: the budget of one statement.
        service: only spans and lines of this service.
        since: how far back to look.
    """

    max_statement: Duration
    service: str | None = None
    since: Duration = "15m"


class CheckConfig(_Strict):
    """One named check; exactly one kind is set, e.g. ``[checks.fast-start] startup = { max = "800ms" }``."""

    startup: StartupCheck | None = None
    span: SpanCheck | None = None
    promql: PromqlCheck | None = None
    logs: LogsCheck | None = None
    journey: JourneyCheck | None = None
    browser: BrowserCheck | None = None
    db: DbCheck | None = None
    description: str = ""

    @model_validator(mode="after")
    def _one_kind(self) -> CheckConfig:
        kinds = [k for k in CHECK_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a check needs exactly one of {', '.join(CHECK_KINDS)} (got {kinds or 'none'})")
        return self

    @property
    def kind(self) -> str:
        """The kind that is set (``startup``, ``span``, ...)."""
        return next(k for k in CHECK_KINDS if getattr(self, k) is not None)

    @property
    def spec(self) -> Any:
        """The settings of :attr:`kind` (a :class:`StartupCheck`, :class:`SpanCheck`, ...)."""
        return getattr(self, self.kind)


class LegibleConfig(_Strict):
    """The whole file: ``[app]``, ``[services.*]``, ``[stack]``, ``[journeys.*]``.

    Attributes:
        app: the app under development; it always gets a port (``$PORT``) and defaults to a TCP probe.
        services: extra services by name (lowercase, ``a-z0-9-``).
        stack: stack-wide settings.
        forward: forwarding to shared engines (``[forward]``, see :class:`ForwardConfig`).
        journeys: named browser journeys (see :class:`JourneyConfig`).
        checks: named checks (see :class:`CheckConfig`), evaluated by ``legible check``.
        source: the file this came from (for messages); not a TOML key.

    """

    app: ServiceConfig
    services: dict[str, ServiceConfig] = Field(default_factory=dict)
    stack: StackConfig = Field(default_factory=StackConfig)
    forward: ForwardConfig = Field(default_factory=ForwardConfig)
    journeys: dict[str, JourneyConfig] = Field(default_factory=dict)
    checks: dict[str, CheckConfig] = Field(default_factory=dict)
    source: str = ""

    @model_validator(mode="after")
    def _graph(self) -> LegibleConfig:
        names = {"app", *self.services}
        for name in self.services:
            if not _NAME_RE.match(name) or name in RESERVED_SERVICES or name == "app":
                raise ValueError(
                    f"services.{name}: a service name is lowercase a-z, 0-9 and '-', at most 31 characters,"
                    f" and not one of app, {', '.join(sorted(RESERVED_SERVICES))}"
                )
        if self.app.kind is not None:
            raise ValueError("app.kind: the app runs a command; declare a database as [services.<name>] kind")
        for name, svc in [("app", self.app), *self.services.items()]:
            for dep in svc.depends_on:
                if dep not in names:
                    where = "app" if name == "app" else f"services.{name}"
                    raise ValueError(f"{where}.depends_on: unknown service {dep!r} (known: {sorted(names)})")
        order_services(self)  # raises ValueError on a cycle
        for cname, check in self.checks.items():
            ref = getattr(check.spec, "journey", None) if check.kind == "span" else None
            ref = check.spec.name if check.kind == "journey" else ref
            if ref is not None and ref not in self.journeys:
                raise ValueError(f"checks.{cname}: unknown journey {ref!r} (known: {sorted(self.journeys)})")
        return self


def load_config(root: Path) -> LegibleConfig:
    """Read and validate the worktree's configuration.

    Raises:
        ConfigError: no configuration, a TOML syntax error (with line and column), or a key that is unknown
            or of the wrong type; the message names the file and the dotted key.

    """
    found = find_config_file(root)
    if found is None:
        raise ConfigError(
            f"no {CONFIG_FILENAME} in {root}",
            hint="run `legible init` to write one, or add [tool.legible] to pyproject.toml",
        )
    path, kind = found
    return config_from_bytes(path, kind, path.read_bytes())


def config_from_bytes(path: Path, kind: str, content: bytes) -> LegibleConfig:
    """Validate ``content``, the bytes of the configuration file ``path`` of ``kind`` (as :func:`find_config_file`).

    Args:
        path: the file (named in messages, and the ``source`` of the result).
        kind: ``"legible.toml"`` or ``"pyproject.toml"`` (then ``[tool.legible]`` is read).
        content: the file's bytes (TOML, UTF-8).

    Raises:
        ConfigError: see :func:`load_config`.

    """
    try:
        data: Any = tomllib.loads(content.decode())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path.name}: invalid TOML: {exc}", hint=f"fix the syntax in {path}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path.name}: not UTF-8 text: {exc.reason}", hint=f"save {path} as UTF-8") from None
    if kind == "pyproject.toml":
        data = data["tool"]["legible"]
        prefix = "tool.legible."
    else:
        prefix = ""
    return parse_config(data, source=str(path), prefix=prefix)


def parse_config(data: Any, *, source: str = CONFIG_FILENAME, prefix: str = "") -> LegibleConfig:
    """Validate already-parsed TOML data (a dict) into a :class:`LegibleConfig`.

    Raises:
        ConfigError: see :func:`load_config`.

    """
    name = Path(source).name
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: expected a table of settings", hint="see `legible init` for an example")
    if "source" in data:
        raise ConfigError(f"{name}: {prefix}source: unknown key", hint=f"remove it from {source}")
    try:
        return LegibleConfig.model_validate({**data, "source": source})
    except ValidationError as exc:
        key, msg, rest = describe_validation_error(exc)
        key = f"{prefix}{key}" if key else ""
        more = f" (and {rest} more problem{'s' if rest > 1 else ''})" if rest else ""
        where = f"{key}: " if key else ""
        raise ConfigError(f"{name}: {where}{msg}{more}", hint=f"edit {source}") from None


def describe_validation_error(exc: ValidationError, skip: int = 0) -> tuple[str, str, int]:
    """Turn a pydantic error into ``(dotted key, one-line message, number of other problems)``.

    Unknown keys come first (a typo such as ``comand`` also shows as a missing key, and the typo is the
    cause); union members and pattern mismatches get plain words. ``skip`` drops leading location parts.
    """
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    err = errors[0]
    base = _dotted(err["loc"][skip:])
    same = [e for e in errors if _dotted(e["loc"][skip:]) == base]
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif err["type"] == "missing":
        msg = "required key is missing"
    elif err["type"] == "string_pattern_mismatch":
        # the two keys in VictoriaMetrics' own syntax: retention and scrape_interval
        like = "12h, 7d, 4w or 1y" if "hdwy" in str(err.get("ctx", {}).get("pattern")) else "500ms, 5s or 1m"
        msg = f"{err['input']!r} is not a duration like {like}"
    elif len(same) > 1:  # a union (str | list[str], bool | int): say what was given instead
        msg = f"wrong type ({type(err['input']).__name__}): see the docs of this key"
    rest = len({_dotted(e["loc"][skip:]) for e in errors}) - 1
    return base, msg, rest


def _dotted(loc: tuple[int | str, ...]) -> str:
    """Join a pydantic error location, dropping union-member tags such as ``str`` or ``list[str]``."""
    keep = [str(p) for p in loc if not re.fullmatch(r"(str|int|bool|float|list\[.*\]|dict\[.*\])", str(p))]
    return ".".join(p for p in keep if not p.startswith("function-"))
