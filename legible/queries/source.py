"""Where the signals of the current worktree are: its store (logs, spans) and its VictoriaMetrics URL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from legible._errors import NotRunning

if TYPE_CHECKING:
    from legible.store import Store
    from legible.worktree import Worktree

__all__ = [
    "STATUS_SCHEMA",
    "bundle_or_worktree",
    "collector_status",
    "explain_missing",
    "flush_collector",
    "metrics_url",
    "missing_telemetry",
    "read_endpoints",
    "store_opener",
    "worktree_store",
]

#: The schema of the collector's ``GET /status`` document.
STATUS_SCHEMA = "legible.collector-status/v1"
_NOUN = {"traces": "spans", "logs": "OTLP log records", "metrics": "OTLP metrics"}


def read_endpoints(wt: Worktree) -> dict[str, str] | None:
    """Return the ``endpoints`` of ``wt``'s ``state.json`` if its supervisor is alive, else ``None``.

    Reads through :func:`legible.contract.read_state` (cheap: no config loader, no pydantic, which would cost
    about 80 ms of the 300 ms budget of a query command).
    """
    from legible.contract import read_state

    if not wt.state_file.exists():  # never started here: skip the reader's psutil import (a kept store alone)
        return None
    state = read_state(wt.state_file, stopped_is_final=True)  # after `down`: no psutil either
    if state is None or not state["alive"]:
        return None
    return dict(state["endpoints"])


def store_opener(cwd: Path | None = None) -> Callable[[], Store]:
    """Find the worktree containing ``cwd`` (default: current dir) once; return a function opening its store.

    Each call re-reads ``state.json``: while the stack runs, queries go to its collector
    (``endpoints["otlp-http"]``), otherwise the kept DuckDB file is read. ``--follow`` calls it on every
    poll so it switches between the two as the stack comes and goes.

    Raises:
        UsageError: ``cwd`` is not inside a git worktree.

    """
    from legible.store import open_store
    from legible.worktree import find_worktree

    wt = find_worktree(cwd)

    def opener() -> Store:
        url = (read_endpoints(wt) or {}).get("otlp-http")
        return open_store(wt.state_dir, collector_url=url, worktree=wt.key)

    return opener


def bundle_or_worktree(bundle: Path | None, cwd: Path | None = None) -> Callable[[], Store]:
    """Return a store opener: a proof bundle's Parquet files when ``bundle`` is given, else the worktree's.

    With ``bundle`` no worktree is needed (:func:`legible.bundle.bundle_store`); without it this is
    :func:`store_opener` for the worktree containing ``cwd``.

    Raises:
        UsageError: ``bundle`` is not a queryable bundle, or (without it) ``cwd`` is not in a git worktree.

    """
    if bundle is None:
        return store_opener(cwd)
    from legible.bundle import bundle_store

    store = bundle_store(bundle)
    return lambda: store


def worktree_store(cwd: Path | None = None) -> Store:
    """Return the :class:`legible.store.Store` of the worktree containing ``cwd`` (see :func:`store_opener`).

    Raises:
        UsageError: ``cwd`` is not inside a git worktree.

    """
    return store_opener(cwd)()


def metrics_url(cwd: Path | None = None) -> str:
    """Return the base URL of the running stack's VictoriaMetrics (``http://127.0.0.1:PORT``).

    Raises:
        UsageError: ``cwd`` is not inside a git worktree.
        NotRunning: no stack runs for this worktree, or it has no ``victoria-metrics`` endpoint.

    """
    from legible.store import read_token
    from legible.worktree import find_worktree

    wt = find_worktree(cwd)
    endpoints = read_endpoints(wt) or {}
    url = endpoints.get("victoria-metrics")
    if not url:
        raise NotRunning(
            f"no stack is running for {wt.key}: metrics live in its VictoriaMetrics",
            hint="run `legible up --wait`; logs and traces stay queryable from the kept store",
        )
    if endpoints.get("otlp-http"):
        flush_collector(endpoints["otlp-http"], read_token(wt.state_dir))
    return str(url)


def flush_collector(collector_url: str, token: str | None, timeout: float = 2.0) -> bool:
    """Ask the collector to push its derived metrics and flush VictoriaMetrics now (``POST /flush``).

    Called before every PromQL query so what the agent just did is visible (read-your-writes). A
    collector that does not answer is not an error: the query then sees data up to about 2 s old.

    Args:
        collector_url: the collector's HTTP base URL.
        token: its bearer token (:func:`legible.store.read_token` of the state directory).
        timeout: seconds.

    """
    from legible import _loopback

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        status, _ = _loopback.request(
            "POST", f"{collector_url.rstrip('/')}/flush", body=b"", headers=headers, timeout=timeout
        )
    except (OSError, ValueError):
        return False
    return status == 200


def collector_status(state_dir: Path, collector_url: str, timeout: float = 1.0) -> dict[str, Any] | None:
    """GET the collector's ``/status`` (``legible.collector-status/v1``) with its bearer token.

    The token is the content of ``<state_dir>/collector.token``. Returns ``None`` when the status is
    unknown: no token file, no answer, 401/404 (a collector without the endpoint), or another schema.
    """
    import json

    from legible import _loopback

    try:
        token = (state_dir / "collector.token").read_text().strip()
    except OSError:
        token = ""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        status, body = _loopback.request("GET", f"{collector_url.rstrip('/')}/status", headers=headers, timeout=timeout)
        doc = json.loads(body) if status == 200 else None
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("schema") == STATUS_SCHEMA else None


def explain_missing(signal: str, service: str, age_s: float, status: dict[str, Any] | None) -> str:
    """One line saying that no ``signal`` came from ``service`` since it became ready ``age_s`` ago, and why.

    Args:
        signal: ``traces`` or ``logs``.
        service: the service name (``app``).
        age_s: seconds since it became ready.
        status: the collector's ``/status`` document, or ``None`` when unknown.

    Returns:
        At most about 300 characters, no newline.

    """
    head = f"no {_NOUN.get(signal, signal)} from {service} since it became ready {age_s:.0f} s ago"
    if status is None:
        return f"{head}; the collector's status is unknown (is the app instrumented with OpenTelemetry?)"
    refused = {k: int(v) for k, v in (status.get("refused") or {}).items() if int(v or 0) > 0}
    grpc = refused.pop("grpc_on_http_port", 0)
    if grpc:
        return (
            f"{head}; the collector refused {grpc} gRPC connections on its HTTP port: the app exports gRPC "
            "to the OTLP/HTTP endpoint; set OTEL_EXPORTER_OTLP_PROTOCOL and OTEL_EXPORTER_OTLP_ENDPOINT "
            "consistently (legible sets both; check legible.toml env)"
        )
    if refused:
        what = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(refused.items())[:3])
        return f"{head}; the collector refused requests: {what}"
    if status.get("healthy") is False:
        return f"{head}; the collector is unhealthy: {str(status.get('error') or 'no reason given')[:150]}"
    got = int((status.get("received") or {}).get(signal) or 0)
    if got:
        pending = int(status.get("pending") or 0)
        return f"{head}; the collector received {got} {signal} requests ({pending} pending): none from {service}"
    return (
        f"{head}; the collector received no OTLP {signal} at all: is the app instrumented? "
        "(`instrument = true` in legible.toml runs it under opentelemetry-instrument)"
    )


def missing_telemetry(store: Store, signal: str, service: str = "app") -> str:
    """The :func:`explain_missing` line when the running stack got no ``signal`` from ``service``, else ``""``.

    Reads ``state.json`` beside the store for when ``service`` became ready; counts spans (``traces``) or
    OTLP log records (``logs``) of any service but the browser since then. ``""`` when the stack is not
    running, the service is not ready, or something arrived. Never raises.
    """
    import json
    import time

    from legible._procs import ProcRef

    state_dir = Path(store.path).parent.parent
    try:
        state = json.loads((state_dir / "state.json").read_text())
        ref = ProcRef.from_dict(state.get("supervisor"))
        svc = state["services"][service]
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    ready_at = svc.get("ready_at")
    if not (ref and ref.alive()) or svc.get("status") != "ready" or not ready_at:
        return ""
    since_ns = int(float(ready_at) * 1e9)
    if signal == "traces":
        sql = "SELECT count(*) FROM spans WHERE start_ns >= ? AND service <> 'browser'"
    else:
        sql = "SELECT count(*) FROM logs WHERE time_ns >= ? AND source = 'otlp' AND service <> 'browser'"
    try:
        if int(store.query(sql, [since_ns]).rows[0][0]):
            return ""
    except Exception:  # noqa: BLE001 - an explanation must never break the query it explains
        return ""
    url = (state.get("endpoints") or {}).get("otlp-http")
    status = collector_status(state_dir, url) if url else None
    return explain_missing(signal, service, time.time() - float(ready_at), status)
