"""The types of the JSON contract: ``state.json``, ``plan.json`` and every ``--json`` document.

One ``TypedDict`` per document (see :mod:`legible.contract`); :data:`SCHEMAS` maps every schema name legible
emits or writes to its type, which ``scripts/gen_schemas.py`` turns into ``legible/schemas/<name>.v1.json``.
Constraints a type cannot say (``minimum``, ``pattern``, ``enum``) ride along as :class:`Json` metadata
inside ``Annotated``: ignored at runtime and by mypy, copied into the generated JSON Schema.

Runtime code imports these names only under ``TYPE_CHECKING``: creating some 70 classes costs tens of ms,
which ``legible status`` must not pay.
"""

# Annotations stay strings (no runtime cost). On Python 3.11 that leaves ``__required_keys__`` blind to
# ``NotRequired``: the schema generator reads ``NotRequired`` from ``get_type_hints(include_extras=True)``.
from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired, TypedDict


class Json:
    """JSON Schema keywords for one field, for the generator only (``Annotated[int, Json(minimum=0)]``).

    Args:
        **keywords: JSON Schema keywords (``minimum``, ``pattern``, ``format``, ``maxItems`` ...) merged
            into the field's generated schema.

    """

    def __init__(self, **keywords: Any) -> None:
        self.keywords = keywords

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> Any:
        """Pydantic's hook (https://docs.pydantic.dev/latest/concepts/json_schema/): add the keywords."""
        schema = handler(core_schema)
        schema.update(self.keywords)
        return schema

    def __repr__(self) -> str:
        return f"Json({self.keywords!r})"


Ms = Annotated[float, Json(minimum=0)]
"""A duration in milliseconds."""
Count = Annotated[int, Json(minimum=0)]
"""A count."""
Iso = Annotated[str, Json(format="date-time")]
"""A time, ISO 8601 / RFC 3339 (``2026-11-29T04:23:26.417Z``)."""
Key = Annotated[str, Json(pattern="^.+-[0-9a-f]{8}$")]
"""A worktree key: ``<dirname>-<8 hex>``."""
TraceId = Annotated[str, Json(pattern="^[0-9a-f]{32}$")]
"""A W3C trace id: 32 lowercase hex."""


def Enum(*values: str) -> Json:  # noqa: N802 - reads like a type inside Annotated
    """A ``str`` field that takes one of ``values`` (a JSON Schema ``enum``; mypy sees ``str``)."""
    return Json(enum=list(values))


_STACK = ("starting", "ready", "degraded", "stopping", "stopped", "failed", "dead")
StackStatus = Annotated[str, Enum(*_STACK)]
"""A stack's status in ``state.json``."""
ServiceStatus = Annotated[
    str,
    Enum(
        "pending",
        "starting",
        "ready",
        "idle",
        "unhealthy",
        "backoff",
        "failed",
        "stopped",
        "exited",
        "orphaned",
        "gone",
    ),
]
"""A service's status in ``state.json`` (``unhealthy``: ready, then failed its liveness probe 3 times in a
row; ``idle``: in ``legible status`` only, the ``chromium`` service whose agent is ready and has not launched
Chromium yet (it does at the first browser call); ``exited``: seen dead before the supervisor's next tick; ``orphaned``
and ``gone``: a service of a dead stack that still runs, or that does not)."""


# -- state.json and plan.json ------------------------------------------------------------------------------
class ProcRefDoc(TypedDict):
    """A process identity that survives pid reuse: ``{"pid", "create_time"}`` (seconds since the epoch)."""

    pid: int
    create_time: float


class ServiceState(TypedDict):
    """One service in ``state.json`` (``services[name]``), as the supervisor last saw it."""

    status: ServiceStatus
    role: str
    pid: int | None
    create_time: float | None
    port: int
    ready_ms: Ms | None
    first_ready_ms: Ms | None
    restarts: Count
    exit_code: int | None
    error: str
    log: str
    argv: list[str]
    ready_at: NotRequired[float | None]
    killed_after_s: NotRequired[float | None]


class StateFile(TypedDict):
    """``.legible/state.json`` as the supervisor writes it (``legible.state/v1``)."""

    schema: Literal["legible.state/v1"]
    key: Key
    worktree: str
    status: StackStatus
    error: str
    error_service: str
    supervisor: ProcRefDoc | None
    started_at: float
    ready_ms: Ms | None
    lease_base: int
    ports: dict[str, int]
    endpoints: dict[str, str]
    config_hash: str
    services: dict[str, ServiceState]
    deploy: NotRequired[dict[str, Any] | None]


class StackState(StateFile):
    """``state.json`` as :func:`read_state` returns it: ``alive`` is whether its supervisor still runs."""

    alive: bool


class ProbeDoc(TypedDict):
    """A readiness probe: ``kind`` (``http``, ``tcp``, ``log``, ``postgres``, ``redis``, ``none``), ``target``."""

    kind: Annotated[str, Enum("http", "tcp", "log", "postgres", "redis", "none")]
    target: str


class ServicePlanDoc(TypedDict):
    """One service of ``plan.json`` (see :class:`legible.services.base.ServicePlan`)."""

    name: str
    role: str
    argv: list[str]
    cwd: str
    env: dict[str, str]
    probe: ProbeDoc
    ready_timeout: float
    depends_on: list[str]
    port: int
    log: str
    restart: bool
    max_restarts: int
    stop_timeout: float
    deferred: list[str]
    setup: NotRequired[list[str]]


class PlanDoc(TypedDict):
    """``.legible/plan.json`` (``legible.plan/v1``), what the supervisor runs (see :class:`legible.plan.StackPlan`)."""

    schema: Literal["legible.plan/v1"]
    key: Key
    worktree: str
    lease_base: int
    ports: dict[str, int]
    services: list[ServicePlanDoc]
    files: dict[str, str]
    endpoints: dict[str, str]
    config_hash: str


class LeaseDoc(TypedDict):
    """One lease of the machine-wide registry."""

    key: str
    worktree: str
    base: int
    owner: dict[str, float]
    granted_at: float


class LeasesDoc(TypedDict):
    """The lease registry file, ``$XDG_STATE_HOME/legible/leases.json`` (``legible.leases/v1``)."""

    schema: Literal["legible.leases/v1"]
    leases: dict[str, LeaseDoc]


# -- lifecycle: up, down, status, ps, gc, init, doctor -------------------------------------------------------
class UpDoc(TypedDict):
    """``legible up --json`` (``legible.up/v1``)."""

    schema: Literal["legible.up/v1"]
    key: Key
    worktree: str
    already_running: bool
    status: StackStatus
    ready_ms: Ms | None
    services: dict[str, ServiceState]
    endpoints: dict[str, str]
    env_file: str
    note: str
    reclaimed_pids: list[int]
    warnings: list[str]
    took_ms: NotRequired[Ms]


class SigkilledDoc(TypedDict):
    """A service that ignored SIGTERM at ``down`` and got SIGKILL after ``after_s`` seconds."""

    service: str
    after_s: Annotated[float, Json(minimum=0)]


class DownDoc(TypedDict):
    """``legible down --json`` (``legible.down/v1``)."""

    schema: Literal["legible.down/v1"]
    key: Key
    was_running: bool
    stopped: list[str]
    killed_orphans: list[int]
    sigkilled: list[SigkilledDoc]
    purged: bool
    took_ms: Ms


class StatusDoc(TypedDict):
    """``legible status --json`` (``legible.status/v1``); ``status`` is ``down`` when no stack ever ran here."""

    schema: Literal["legible.status/v1"]
    key: Key
    worktree: str
    status: Annotated[str, Enum(*_STACK, "down")]
    alive: bool
    ready_ms: Ms | None
    error: str
    services: dict[str, ServiceState]
    left_running: list[str]
    endpoints: dict[str, str]
    env_file: str
    deploy: NotRequired[dict[str, Any] | None]
    stale: NotRequired[dict[str, Any] | None]
    forward: NotRequired[list[ForwardHealth]]


class PsRow(TypedDict):
    """One stack of ``legible ps``; ``ports`` is ``"<base>-<last>"``."""

    key: str
    worktree: str
    status: Annotated[str, Enum(*_STACK, "unknown")]
    alive: bool
    ports: Annotated[str, Json(pattern="^[0-9]+-[0-9]+$")]
    app: str
    services: Count
    restarts: Count
    uptime_s: Annotated[float, Json(minimum=0)] | None


class PsDoc(TypedDict):
    """``legible ps --json`` (``legible.ps/v1``): every stack on this machine."""

    schema: Literal["legible.ps/v1"]
    stacks: list[PsRow]


class GcLease(TypedDict):
    """A lease ``legible gc`` reclaims (or would, with ``--dry-run``)."""

    key: str
    worktree: str
    why: Annotated[str, Enum("worktree removed", "supervisor gone")]


class GcOrphan(TypedDict):
    """A process carrying ``LEGIBLE_STACK=<key>`` that no live supervisor holds."""

    pid: int
    key: str
    name: str
    cmdline: Annotated[str, Json(maxLength=200)]


class GcDoc(TypedDict):
    """``legible gc --json`` (``legible.gc/v1``)."""

    schema: Literal["legible.gc/v1"]
    dry_run: bool
    leases: list[GcLease]
    orphans: list[GcOrphan]


class InitDoc(TypedDict):
    """``legible init --json`` (``legible.init/v1``); ``written`` is false when ``--keep`` left a file alone."""

    schema: Literal["legible.init/v1"]
    path: str
    written: bool
    command: str
    guessed_from: str
    instrument: NotRequired[bool]
    env: NotRequired[dict[str, str]]


class DoctorComponent(TypedDict):
    """One external component: where it is (``path`` ``None``: absent) and the command that installs it."""

    name: str
    path: str | None
    version: str
    install: str
    required: bool


class DoctorDoc(TypedDict):
    """``legible doctor --json`` (``legible.doctor/v1``); ``installed``: what ``--install`` did, one line each."""

    schema: Literal["legible.doctor/v1"]
    components: list[DoctorComponent]
    missing_required: list[str]
    installed: NotRequired[list[str]]


# -- queries: logs, traces, trace, metrics, --sql --------------------------------------------------------------
class LogFilterDoc(TypedDict):
    """The filter a logs query used (times ISO 8601)."""

    since: Iso | None
    until: Iso | None
    services: list[str]
    min_level: str | None
    grep: str | None
    regex: str | None
    attrs: dict[str, str]
    trace_id: str | None


class LevelCount(TypedDict):
    """Lines and groups of one level."""

    lines: Count
    groups: Count


class LogGroupDoc(TypedDict):
    """One group of similar lines: its template, count, first and last time, newest example and trace."""

    level: str
    service: str
    count: Count
    template: str
    first: Iso
    last: Iso
    example: str
    trace_id: str | None


class LogsGroupsDoc(TypedDict):
    """``legible logs --json`` (``legible.logs/v1``, ``view`` ``groups``).

    ``warnings``: the lines the text prints first (:func:`legible.deploys.warning_lines`: stale code, a collector
    not ready), ``[]`` when none.
    """

    schema: Literal["legible.logs/v1"]
    view: Literal["groups"]
    filter: LogFilterDoc
    total: Count
    total_groups: Count
    shown: Count
    by_level: dict[str, LevelCount]
    services: list[str]
    groups: list[LogGroupDoc]
    missing: str
    warnings: list[str]


class LogsRawDoc(TypedDict):
    """``legible logs --raw --json`` (``legible.logs/v1``, ``view`` ``raw``); ``lines``: ``{field: value}``.

    ``warnings``: the lines the text prints first (:func:`legible.deploys.warning_lines`: stale code, a collector
    not ready), ``[]`` when none.
    """

    schema: Literal["legible.logs/v1"]
    view: Literal["raw"]
    filter: LogFilterDoc
    total: Count
    shown: Count
    fields: list[str]
    lines: list[dict[str, Any]]
    warnings: list[str]


LogsDoc = LogsGroupsDoc | LogsRawDoc


class SqlDoc(TypedDict):
    """``legible logs|traces --sql Q --json`` (``legible.sql/v1``): the rows of one read-only SELECT."""

    schema: Literal["legible.sql/v1"]
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool


class TraceFilterDoc(TypedDict):
    """The filter a traces query used."""

    since: Iso | None
    until: Iso | None
    services: list[str]
    name: str | None
    min_duration_ms: float | None
    errors: bool


class TraceSummaryDoc(TypedDict):
    """One trace of ``legible traces``: its root span, service, start, duration, spans and errors."""

    trace_id: TraceId
    root: str
    service: str
    start: Iso
    duration_ms: Ms
    spans: Count
    errors: Count
    error: str | None


class TracesDoc(TypedDict):
    """``legible traces --json`` (``legible.traces/v1``).

    ``warnings``: the lines the text prints first (:func:`legible.deploys.warning_lines`: stale code, a collector
    not ready), ``[]`` when none.
    """

    schema: Literal["legible.traces/v1"]
    filter: TraceFilterDoc
    order: Annotated[str, Enum("recent", "slowest")]
    total: Count
    total_errors: Count
    shown: Count
    traces: list[TraceSummaryDoc]
    missing: str
    warnings: list[str]


class SpanLog(TypedDict):
    """A log line attached to a span (or loose in its trace); ``time_ns`` and ``time`` say the same."""

    time_ns: int
    time: Iso
    level: str
    service: str
    body: str


class SpanNode(TypedDict):
    """One span and its subtree (``offset_ms`` from the trace start)."""

    span_id: str
    parent_span_id: str | None
    service: str
    name: str
    kind: str
    start: Iso
    offset_ms: float
    duration_ms: Ms
    status_code: str
    status_message: str | None
    attributes: dict[str, Any]
    events: list[dict[str, Any]]
    orphan: bool
    logs: list[SpanLog]
    children: list[SpanNode]


class TraceDoc(TypedDict):
    """``legible trace ID --json`` (``legible.trace/v1``): the whole tree."""

    schema: Literal["legible.trace/v1"]
    trace_id: TraceId
    start: Iso
    duration_ms: Ms
    spans: Count
    errors: Count
    logs: Count
    roots: list[SpanNode]
    loose_logs: list[SpanLog]


class SeriesDoc(TypedDict):
    """One series: its labels, the instant ``value`` (``None`` for NaN) and, for a range, ``[time, value]``."""

    labels: dict[str, str]
    value: float | None
    values: NotRequired[list[tuple[Iso, float | None]]]


class MetricsDoc(TypedDict):
    """``legible metrics Q --json`` (``legible.metrics/v1``), instant or ``--range``."""

    schema: Literal["legible.metrics/v1"]
    query: str
    kind: Annotated[str, Enum("instant", "range")]
    result_type: str
    unit: str | None
    common_labels: dict[str, str]
    start: Iso | None
    end: Iso
    step_s: float | None
    series: list[SeriesDoc]


class MetricInfoDoc(TypedDict):
    """One metric name: its type (from the name's suffix and the scrape) and how many series it has."""

    name: str
    type: str
    series: Count


class MetricsListDoc(TypedDict):
    """``legible metrics list --json`` (``legible.metrics-list/v1``)."""

    schema: Literal["legible.metrics-list/v1"]
    pattern: str | None
    total_series: Count
    metrics: list[MetricInfoDoc]


# -- check, journeys, proof ----------------------------------------------------------------------------------
CheckCountsDoc = TypedDict("CheckCountsDoc", {"pass": Count, "fail": Count, "error": Count})
CheckCountsDoc.__doc__ = "How many checks passed (``pass``), failed (``fail``) and could not be evaluated (``error``)."


class CheckResultDoc(TypedDict):
    """The verdict of one check (see :class:`legible.checks.CheckResult`)."""

    name: Annotated[str, Json(minLength=1)]
    kind: Annotated[str, Enum("startup", "span", "promql", "logs", "journey", "browser", "db")]
    status: Annotated[str, Enum("pass", "fail", "error")]
    measured: float | None
    budget: float | None
    unit: Annotated[str, Enum("ms", "lines", "")]
    summary: str
    evidence: str
    took_ms: Ms
    details: dict[str, Any]


class CheckDoc(TypedDict):
    """``legible check --json`` and a proof's ``checks.json`` (``legible.check/v1``)."""

    schema: Literal["legible.check/v1"]
    key: Key
    worktree: str
    passed: bool
    counts: CheckCountsDoc
    checks: list[CheckResultDoc]
    took_ms: Ms


class JourneyStepDoc(TypedDict):
    """One step of a journey run: ``n`` from 1, its title and action, verdict, time and error."""

    n: int
    title: str
    action: str
    ok: bool
    ms: Ms
    error: str
    screenshot: NotRequired[str]
    recording_ms: NotRequired[Ms]
    """Of ``ms``, the time the recording added (cards, outlines, visible typing's key delays); recorded runs only."""


class FailedStepDoc(TypedDict):
    """The first failing step of a journey."""

    n: int
    title: str
    ok: bool
    error: str
    action: NotRequired[str]
    ms: NotRequired[Ms]
    screenshot: NotRequired[str]


class ChapterDoc(TypedDict):
    """A chapter of a recording: its title and where it starts, in seconds."""

    title: str
    start_s: Annotated[float, Json(minimum=0)]


class VideoDoc(TypedDict):
    """A recording encoded as MP4, GIF and a poster frame (or only ``error`` when encoding failed)."""

    video: NotRequired[str]
    gif: NotRequired[str]
    poster: NotRequired[str]
    duration_s: NotRequired[float]
    bytes: NotRequired[Count]
    gif_bytes: NotRequired[Count]
    frames: NotRequired[Count]
    chapters: NotRequired[list[ChapterDoc]]
    error: NotRequired[str]


class BackendSpan(TypedDict):
    """A backend span of a journey's trace."""

    service: str
    name: str
    duration_ms: Ms
    status_code: str


class BackendDoc(TypedDict):
    """The backend side of a journey's trace: how many spans arrived, the slowest, or why none could be read."""

    spans: Count
    slowest: list[BackendSpan]
    error: str
    waited_ms: Ms
    none_because: str


class JourneyDoc(TypedDict):
    """``legible journey run NAME --json`` (``legible.journey/v1``)."""

    schema: Literal["legible.journey/v1"]
    name: str
    ok: bool
    trace_id: TraceId
    duration_ms: Ms
    steps: list[JourneyStepDoc]
    failed: FailedStepDoc | None
    video: VideoDoc | None
    dir: str
    url: str
    export_error: str
    backend: NotRequired[BackendDoc]
    recording_ms: NotRequired[Ms]
    """Of ``duration_ms``, the time the recording added (the sum of the steps' ``recording_ms``, and the opening
    card); ``duration_ms - recording_ms`` is the walk as an unrecorded run times it. Recorded runs only."""


class JourneyInfo(TypedDict):
    """One journey of ``legible.toml``: ``steps`` counts its steps; ``script`` is its path, or ``""``."""

    name: str
    description: str
    steps: Count
    script: str


class JourneysDoc(TypedDict):
    """``legible journey list --json`` (``legible.journeys/v1``)."""

    schema: Literal["legible.journeys/v1"]
    journeys: list[JourneyInfo]


class ProofStep(TypedDict):
    """One step of a journey in a proof manifest."""

    title: str | None
    status: str | None
    duration_ms: Ms | None


class ProofRecording(TypedDict):
    """The outcome of a journey's recorded run as timed; the verdict takes its times less ``recording_ms``."""

    passed: bool | None
    error: str | None
    duration_ms: Ms | None
    recording_ms: NotRequired[Ms]


class ProofJourney(TypedDict):
    """A journey's outcome in a proof manifest: verdict, duration and steps, without the recording's time."""

    passed: bool
    duration_ms: Ms | None
    error: str | None
    failed_step: int | None
    trace_id: str | None
    recording: ProofRecording | None
    steps: Annotated[list[ProofStep], Json(maxItems=50)]


class FigureDoc(TypedDict):
    """One figure of the run (a number with its title and unit)."""

    title: str
    value: float | None
    unit: str


class SlowSpan(TypedDict):
    """One of the run's slowest spans."""

    trace_id: str
    service: str
    name: str
    duration_ms: Ms
    status_code: str


class ErrorGroupDoc(TypedDict):
    """One of the run's error log groups."""

    service: str
    level: str
    template: str
    count: Count
    trace_id: str | None


class FigureChange(TypedDict):
    """A figure beside the baseline's (``None`` where either side is absent)."""

    key: str
    value: float | None
    baseline: float | None
    change_pct: float | None


class VisualDiffDoc(TypedDict):
    """A journey's end-state screenshot against the baseline run's (``changed_fraction`` 0..1)."""

    journey: str
    changed_fraction: Annotated[float, Json(minimum=0, maximum=1)] | None
    diff: str | None
    note: str


class BaselineDoc(TypedDict):
    """The earlier run a proof compares with."""

    run_id: str | None
    branch: str | None
    commit: str | None
    figures: list[FigureChange]
    visual: NotRequired[list[VisualDiffDoc]]


class BundleFile(TypedDict):
    """A file of the proof bundle with its size and SHA-256."""

    path: str
    bytes: Count
    sha256: Annotated[str, Json(pattern="^[0-9a-f]{64}$")]


class PostedDoc(TypedDict):
    """The sticky PR comment ``legible proof --post`` created or updated."""

    pr: int
    repo: str
    comment_id: int | None
    action: Annotated[str, Enum("created", "updated", "replaced")]
    attached: list[str]


class ProofDoc(TypedDict):
    """``legible proof --json`` and the bundle's ``manifest.json`` (``legible.proof/v1``).

    ``dir`` (the bundle) is only in what :func:`legible.proof.run_proof` returns; ``posted`` only in what the
    CLI prints (``None`` without ``--post``).
    """

    schema: Literal["legible.proof/v1"]
    run_id: Annotated[str, Json(pattern="^[0-9]{8}T[0-9]{6}Z$")]
    key: Key
    worktree: str
    branch: str
    commit: str
    dirty: Literal["yes", "no"]
    started_at: Iso
    finished_at: Iso
    took_ms: Ms
    passed: bool
    checks: CheckDoc
    journeys: dict[str, ProofJourney]
    journeys_skipped: list[str]
    figures: dict[str, FigureDoc]
    startup_ms: Ms | None
    slowest_spans: Annotated[list[SlowSpan], Json(maxItems=5)]
    error_groups: Annotated[list[ErrorGroupDoc], Json(maxItems=5)]
    baseline: BaselineDoc | None
    signals: dict[str, Any] | None
    timings_ms: dict[str, Ms]
    files: list[BundleFile]
    dir: NotRequired[str]
    posted: NotRequired[PostedDoc | None]


# -- browser --------------------------------------------------------------------------------------------------
class PageInfo(TypedDict):
    """Where the tab is after an operation, and how many console errors it logged since the last read."""

    url: str
    title: str
    new_console_errors: Count


class BrowserOpenDoc(PageInfo):
    """``legible browser open URL --json`` (``legible.browser-open/v1``); ``status`` is the HTTP status."""

    schema: Literal["legible.browser-open/v1"]
    status: int | None
    ms: Ms


class BrowserSnapshotDoc(PageInfo):
    """``legible browser snapshot --json`` (``legible.browser-snapshot/v1``): the YAML text and its file."""

    schema: Literal["legible.browser-snapshot/v1"]
    path: str
    bytes: Count
    lines: Count
    refs: Count
    selector: str
    text: str


class BrowserClickDoc(PageInfo):
    """``legible browser click TARGET --json`` (``legible.browser-click/v1``)."""

    schema: Literal["legible.browser-click/v1"]
    target: str
    navigated: bool


class BrowserFillDoc(PageInfo):
    """``legible browser fill TARGET TEXT --json`` (``legible.browser-fill/v1``)."""

    schema: Literal["legible.browser-fill/v1"]
    target: str


class BrowserPressDoc(PageInfo):
    """``legible browser press KEY --json`` (``legible.browser-press/v1``)."""

    schema: Literal["legible.browser-press/v1"]
    navigated: bool


class BrowserWaitDoc(PageInfo):
    """``legible browser wait TEXT --json`` (``legible.browser-wait/v1``)."""

    schema: Literal["legible.browser-wait/v1"]
    ms: Ms


class BrowserScreenshotDoc(PageInfo):
    """``legible browser screenshot --json`` (``legible.browser-screenshot/v1``): the file, never the pixels."""

    schema: Literal["legible.browser-screenshot/v1"]
    path: str
    bytes: Count
    width: Count
    height: Count
    format: Annotated[str, Enum("png", "jpeg")]


class ConsoleGroup(TypedDict):
    """Console messages with the same level, text and place, counted."""

    level: str
    text: str
    where: str
    source: str
    count: Count
    page: str


class BrowserConsoleDoc(TypedDict):
    """``legible browser console --json`` (``legible.browser-console/v1``)."""

    schema: Literal["legible.browser-console/v1"]
    errors: Count
    warnings: Count
    groups: list[ConsoleGroup]


class NetworkRequest(TypedDict):
    """One request of the tab (``failure`` is Chromium's reason, or ``None``)."""

    seq: int
    time_ns: int
    method: str
    url: str
    status: int
    type: str
    ms: float | None
    failure: str | None
    static: bool


class BrowserNetworkDoc(TypedDict):
    """``legible browser network --json`` (``legible.browser-network/v1``)."""

    schema: Literal["legible.browser-network/v1"]
    requests: Count
    hidden_static: Count
    failed: list[NetworkRequest]
    slow: list[NetworkRequest]
    slow_ms: Ms
    all: list[NetworkRequest]


class BrowserVitalsDoc(TypedDict):
    """``legible browser vitals --json`` (``legible.browser-vitals/v1``); ``None`` where not measured yet."""

    schema: Literal["legible.browser-vitals/v1"]
    url: str
    lcp_ms: float | None
    lcp_element: str | None
    cls: float | None
    inp_ms: float | None
    interactions: Count
    fcp_ms: float | None
    ttfb_ms: float | None
    dom_content_loaded_ms: float | None
    load_ms: float | None
    transfer_bytes: float | None
    resources: Count
    observed: bool


class BrowserStatusDoc(PageInfo):
    """``legible browser status --json`` (``legible.browser-status/v1``); ``cdp_port`` null: CDP over a pipe."""

    schema: Literal["legible.browser-status/v1"]
    recording: bool
    cdp_port: int | None


class BrowserRecordStartDoc(TypedDict):
    """``legible browser record start --json`` (``legible.browser-record-start/v1``)."""

    schema: Literal["legible.browser-record-start/v1"]
    dir: str
    recording: Literal[True]


class BrowserRecordChapterDoc(TypedDict):
    """``legible browser record chapter TITLE --json`` (``legible.browser-record-chapter/v1``)."""

    schema: Literal["legible.browser-record-chapter/v1"]
    recording: Literal[True]


class BrowserRecordStopDoc(VideoDoc):
    """``legible browser record stop --json`` (``legible.browser-record-stop/v1``): the encoded video."""

    schema: Literal["legible.browser-record-stop/v1"]


# -- skills, errors -----------------------------------------------------------------------------------------
class SkillInfo(TypedDict):
    """A bundled Agent Skill."""

    name: str
    description: str


class SkillsListDoc(TypedDict):
    """``legible skills list --json`` (``legible.skills-list/v1``)."""

    schema: Literal["legible.skills-list/v1"]
    skills: list[SkillInfo]


class SkillsMcpDoc(TypedDict):
    """``legible skills install --mcp``: the MCP server entry written to ``.mcp.json`` and the Codex equivalent."""

    schema: Literal["legible.skills-mcp/v1"]
    path: str
    server: dict[str, Any]
    codex_command: str
    codex_toml: str


class SkillsHooksDoc(TypedDict):
    """``legible skills install --hooks``: the Stop hook merged into Claude Code's and Codex's settings."""

    schema: Literal["legible.skills-hooks/v1"]
    path: str
    paths: list[str]
    command: str
    added: bool


class SkillsInstallDoc(TypedDict):
    """``legible skills install --json`` (``legible.skills-install/v1``): the skills and files written."""

    schema: Literal["legible.skills-install/v1"]
    skills: list[str]
    written: list[str]
    agents_md: str
    mcp: NotRequired[SkillsMcpDoc]
    hooks: NotRequired[SkillsHooksDoc]


class ChangedLine(TypedDict):
    """A snapshot line before and after."""

    before: str
    after: str


class SnapshotDiffDoc(TypedDict):
    """Changed, added and removed lines of two snapshots, refs ignored."""

    changed: list[ChangedLine]
    added: list[str]
    removed: list[str]


class PixelDiffDoc(TypedDict):
    """A screenshot against a reference image (pixelmatch): the diff image and the changed fraction (0..1)."""

    reference: str
    diff_image: str
    changed_pixels: Count
    total_pixels: Count
    changed_fraction: Annotated[float, Json(minimum=0, maximum=1)]


class BrowserDiffDoc(TypedDict):
    """``legible browser diff --json`` (``legible.browser-diff/v1``); ``lines`` is ``None`` on the first snapshot."""

    schema: Literal["legible.browser-diff/v1"]
    url: str | None
    snapshot: str
    previous: str | None
    lines: SnapshotDiffDoc | None
    screenshot: PixelDiffDoc | None


class ErrorDoc(TypedDict):
    """Any command's failure under ``--json`` (``legible.error/v1``); ``error`` is the exception class name."""

    schema: Literal["legible.error/v1"]
    error: str
    message: str
    hint: str
    exit_code: Annotated[int, Json(minimum=1, maximum=5)]
    log_tail: list[str]


#: Every schema name legible emits or writes, and its type (the generator and the tests read this).
class CollectorSignals(TypedDict):
    """A count per OTLP signal: spans, log records, metric data points."""

    traces: Count
    logs: Count
    metrics: Count


class CollectorLastReceived(TypedDict):
    """Unix time in ns of the last accepted export per signal, or ``None`` before the first."""

    traces: int | None
    logs: int | None
    metrics: int | None


class CollectorStatusDoc(TypedDict):
    """The collector's ``GET /status`` (``legible.collector-status/v1``), counted since it started.

    ``refused`` counts refusals by reason (``busy``, ``unhealthy``, ``grpc_on_http_port``, ``unauthorized``,
    ``foreign_host``, ...); ``pending`` is rows queued for the store.
    """

    schema: Literal["legible.collector-status/v1"]
    healthy: bool
    error: str
    pending: Count
    received: CollectorSignals
    refused: dict[str, Count]
    last_received_ns: CollectorLastReceived
    forward: NotRequired[ForwardQueueDoc | None]


class ForkServerDoc(TypedDict):
    """``.legible/run/forkserver.json`` (``legible.forkserver/v1``): the stack's fork server while it runs.

    See :mod:`legible.forkserver`. ``ready_ms`` is the time its imports took; ``served`` counts the calls it
    forked a child for, ``refused`` those it sent back to run in-process; ``spare`` is the pid of the idle
    child forked ahead for the next call (0 while there is none).
    """

    schema: Literal["legible.forkserver/v1"]
    pid: int
    started_at: float
    ready_ms: float
    modules: int
    socket: str
    served: int
    refused: int
    spare: int


class ConfigStampDoc(TypedDict):
    """``.legible/config.validated`` (``legible.config-stamp/v2``, 0600): the last configuration that validated.

    See :mod:`legible._config_file`. ``key`` is a SHA-256 (64 hex digits) of the stamp's name, the file's kind
    and path, its bytes and the validator's sources; ``config`` the validated configuration's
    ``model_dump(mode="json")`` (defaults applied; ``$NAME`` references stay as written, nothing from the
    environment); ``forward_set`` the ``[forward]`` keys the file itself set. ``legible up`` plans from it without
    pydantic while ``key`` matches the file.
    """

    schema: Literal["legible.config-stamp/v2"]
    key: str
    config: dict[str, Any]
    forward_set: list[str]


class SharedSeries(TypedDict):
    """One series of the shared engine's answer: its labels and its value at ``time``."""

    metric: dict[str, str]
    value: float


class MetricsSharedDoc(TypedDict):
    """``legible metrics --shared PROMQL --json`` (``legible.metrics-shared/v1``).

    An instant query on the shared engine (``[forward] query_url``); ``time`` is Unix seconds.
    """

    schema: Literal["legible.metrics-shared/v1"]
    query_url: str
    query: str
    time: float
    result: list[SharedSeries]


class ForwardSignals(TypedDict):
    """A count per forwarded signal: spans, log records."""

    traces: Count
    logs: Count


class ForwardQueueDoc(TypedDict):
    """The collector's OTLP forwarding queue (``forward`` of ``GET /status``; :mod:`legible.collector._forward`).

    ``queue_*`` is what waits on disk; ``dropped`` was past the ``max_bytes`` cap; ``rejected`` was refused
    by the upstream with a non-retryable 4xx; ``last_success_ns`` is Unix ns of the last 2xx, or ``None``.
    """

    url: str
    queue_files: Count
    queue_bytes: Count
    max_bytes: Count
    sent: ForwardSignals
    sent_bytes: Count
    dropped: ForwardSignals
    rejected: ForwardSignals
    last_success_ns: int | None
    last_error: str


class ForwardHealth(TypedDict):
    """One forwarding destination in ``legible status`` (``forward`` of ``legible.status/v1``).

    ``kind`` is ``otlp`` (spans and logs, the collector's queue) or ``remote_write`` (metrics, vmagent's
    queue); ``state`` is ``ok``, ``retrying`` (the upstream fails; data waits on disk), ``dropping`` (past
    the cap) or ``unknown`` (its process does not answer). ``sent`` counts spans and log records the
    upstream acknowledged (``otlp``) or rows vmagent took to send (``remote_write``).
    """

    kind: Annotated[str, Enum("otlp", "remote_write")]
    url: str
    state: Annotated[str, Enum("ok", "retrying", "dropping", "unknown")]
    queue_bytes: Count
    sent: Count
    dropped: Count
    last_success_ns: int | None
    error: str


# -- deploys, restart, diff --------------------------------------------------------------------------------
class SetupStepDoc(TypedDict):
    """One setup step of a start (``[app] setup``): its command, duration and exit code."""

    command: str
    ms: Ms
    exit_code: int


class SetupDoc(TypedDict):
    """The setup steps of one service's start in a deploy (see :mod:`legible.setup_steps`)."""

    ok: bool
    ms: Ms
    steps: list[SetupStepDoc]
    error: str


class DeployDoc(TypedDict):
    """One deploy (``legible.deploy/v1``): a line of ``.legible/deploys.jsonl`` (see :mod:`legible.deploys`).

    ``ready_ms`` is the app's (or slowest restarted service's) spawn-to-ready time; ``changes`` and ``files``
    hash ``git diff COMMIT`` (whole and per file) for the stale-code warning.
    """

    schema: NotRequired[Literal["legible.deploy/v1"]]
    number: Annotated[int, Json(minimum=1)]
    started_at: float
    trigger: Annotated[str, Enum("up", "restart", "watch")]
    services: list[str]
    status: Annotated[str, Enum("starting", "ready", "failed")]
    ready_ms: Ms | None
    ready: dict[str, Ms | None]
    error: str
    commit: str | None
    dirty: bool
    changes: str
    files: NotRequired[dict[str, str]]
    files_changed: NotRequired[Count]
    age_s: NotRequired[float]
    took_ms: NotRequired[Ms]
    stop_ms: NotRequired[Ms]
    failed_service: NotRequired[str]
    log_offset: NotRequired[Count]
    setup: NotRequired[dict[str, SetupDoc]]


class ResetEntryDoc(TypedDict):
    """One database service emptied by ``legible reset``."""

    service: str
    kind: Annotated[str, Enum("postgres", "redis")]
    took_ms: Ms


class ResetDoc(TypedDict):
    """``legible reset --json`` (``legible.reset/v1``): the database services emptied."""

    schema: Literal["legible.reset/v1"]
    key: Key
    reset: list[ResetEntryDoc]


class DeploysDoc(TypedDict):
    """``legible deploys --json`` (``legible.deploys/v1``): the last deploys, newest first."""

    schema: Literal["legible.deploys/v1"]
    key: Key
    total: Count
    current: int | None
    deploys: list[DeployDoc]


class RestartDoc(TypedDict):
    """``legible restart --json`` (``legible.restart/v1``): the new deploy and its times."""

    schema: Literal["legible.restart/v1"]
    key: Key
    deploy: DeployDoc
    ready_ms: Ms | None
    took_ms: Ms


class DiffSummary(TypedDict):
    """The counts ``legible diff`` leads with."""

    flagged: Count
    slower: Count
    faster: Count
    new_errors: Count
    gone_errors: Count
    new_console_errors: Count
    checks_changed: Count


class DiffDoc(TypedDict):
    """``legible diff --json`` (``legible.diff/v1``): one deploy (``after``) against another (``before``).

    Sides, routes, error groups, ready times and checks are described in :func:`legible.diff.diff`.
    """

    schema: Literal["legible.diff/v1"]
    key: Key
    after: dict[str, Any]
    before: dict[str, Any]
    threshold_pct: float
    min_count: Count
    summary: DiffSummary
    errors: dict[str, list[dict[str, Any]]]
    console_errors: dict[str, list[dict[str, Any]]]
    routes: list[dict[str, Any]]
    ready: list[dict[str, Any]]
    checks: list[dict[str, Any]]
    took_ms: Ms


SCHEMAS: dict[str, Any] = {
    "legible.state/v1": StateFile,
    "legible.plan/v1": PlanDoc,
    "legible.leases/v1": LeasesDoc,
    "legible.up/v1": UpDoc,
    "legible.down/v1": DownDoc,
    "legible.status/v1": StatusDoc,
    "legible.metrics-shared/v1": MetricsSharedDoc,
    "legible.ps/v1": PsDoc,
    "legible.gc/v1": GcDoc,
    "legible.init/v1": InitDoc,
    "legible.doctor/v1": DoctorDoc,
    "legible.logs/v1": LogsDoc,
    "legible.sql/v1": SqlDoc,
    "legible.traces/v1": TracesDoc,
    "legible.trace/v1": TraceDoc,
    "legible.metrics/v1": MetricsDoc,
    "legible.metrics-list/v1": MetricsListDoc,
    "legible.check/v1": CheckDoc,
    "legible.journey/v1": JourneyDoc,
    "legible.journeys/v1": JourneysDoc,
    "legible.proof/v1": ProofDoc,
    "legible.browser-open/v1": BrowserOpenDoc,
    "legible.browser-snapshot/v1": BrowserSnapshotDoc,
    "legible.browser-click/v1": BrowserClickDoc,
    "legible.browser-fill/v1": BrowserFillDoc,
    "legible.browser-press/v1": BrowserPressDoc,
    "legible.browser-wait/v1": BrowserWaitDoc,
    "legible.browser-screenshot/v1": BrowserScreenshotDoc,
    "legible.browser-console/v1": BrowserConsoleDoc,
    "legible.browser-network/v1": BrowserNetworkDoc,
    "legible.browser-vitals/v1": BrowserVitalsDoc,
    "legible.browser-status/v1": BrowserStatusDoc,
    "legible.browser-record-start/v1": BrowserRecordStartDoc,
    "legible.browser-record-chapter/v1": BrowserRecordChapterDoc,
    "legible.browser-record-stop/v1": BrowserRecordStopDoc,
    "legible.skills-list/v1": SkillsListDoc,
    "legible.skills-install/v1": SkillsInstallDoc,
    "legible.error/v1": ErrorDoc,
    "legible.collector-status/v1": CollectorStatusDoc,
    "legible.forkserver/v1": ForkServerDoc,
    "legible.config-stamp/v2": ConfigStampDoc,
    "legible.skills-mcp/v1": SkillsMcpDoc,
    "legible.skills-hooks/v1": SkillsHooksDoc,
    "legible.browser-diff/v1": BrowserDiffDoc,
    "legible.deploy/v1": DeployDoc,
    "legible.deploys/v1": DeploysDoc,
    "legible.restart/v1": RestartDoc,
    "legible.diff/v1": DiffDoc,
    "legible.reset/v1": ResetDoc,
}
