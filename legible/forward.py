"""Forwarding a stack's signals to shared engines, and asking them fleet questions.

Where to forward comes from ``[forward]`` in ``legible.toml`` (:class:`legible.config.ForwardConfig`) or,
key by key when the file leaves it out, from the machine-wide environment an orchestrator sets
(precedence: ``legible.toml`` > environment > off):

==============================  ======================  ===============================================
variable                        ``[forward]`` key       meaning
==============================  ======================  ===============================================
``LEGIBLE_FORWARD_REMOTE_WRITE`` ``remote_write``       Prometheus remote-write URL (metrics, vmagent)
``LEGIBLE_FORWARD_OTLP``         ``otlp``               OTLP/HTTP base URL (spans and logs, collector)
``LEGIBLE_FORWARD_QUERY_URL``    ``query_url``          the shared engine's Prometheus query API base
``LEGIBLE_FORWARD_HEADERS``      ``headers``            ``k=v,k=v`` sent with every forwarded request
``LEGIBLE_FORWARD_MAX_DISK_MB``  ``max_disk_mb``        on-disk queue cap per destination (MiB)
==============================  ======================  ===============================================

Every forwarded series and resource carries :func:`labels`: ``worktree`` (the key), ``branch``, ``commit``
(git, at ``legible up``), ``deploy`` (the stack's deploy number when it records one, else ``0``) and
``host``. Metrics go through ``vmagent`` (:mod:`legible.services.vmagent`), spans and logs through the
collector (:mod:`legible.collector._forward`); both keep a bounded queue under ``.legible/data/``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from legible._errors import ConfigError, NotReady

if TYPE_CHECKING:
    from legible.config import ForwardConfig
    from legible.contract import ForwardHealth, MetricsSharedDoc
    from legible.worktree import Worktree

ENV_PREFIX = "LEGIBLE_FORWARD_"
#: The labels every forwarded series and resource carries, in this order.
LABEL_KEYS = ("worktree", "branch", "commit", "deploy", "host")
#: File name of the collector's forwarding settings under ``.legible/config/``.
COLLECTOR_FILE = "forward-otlp.json"
SHARED_SCHEMA: Final = "legible.metrics-shared/v1"


@dataclass(frozen=True)
class ForwardSettings:
    """Where this stack forwards to, after precedence (see the module docstring).

    Attributes:
        remote_write: Prometheus remote-write URL, or ``None`` (metrics not forwarded).
        otlp: OTLP/HTTP base URL, or ``None`` (spans and logs not forwarded).
        query_url: the shared Prometheus query API base, or ``None``.
        headers: HTTP headers for every forwarded request.
        max_disk_mb: queue cap per destination, MiB.
        source: for each set key, ``"legible.toml"`` or the environment variable it came from.

    """

    remote_write: str | None = None
    otlp: str | None = None
    query_url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    max_disk_mb: int = 512
    source: dict[str, str] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        """True when anything is forwarded."""
        return bool(self.remote_write or self.otlp)


def _headers(text: str, var: str) -> dict[str, str]:
    out = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        k, sep, v = part.partition("=")
        if not sep or not k.strip():
            raise ConfigError(f"{var}: {part!r} is not k=v", hint=f"set {var}=Name=value,Other=value")
        out[k.strip()] = v.strip()
    return out


def resolve(cfg: ForwardConfig | None, environ: Mapping[str, str]) -> ForwardSettings:
    """Apply the precedence ``legible.toml`` > ``LEGIBLE_FORWARD_*`` > off.

    Raises:
        ConfigError: an environment value is not a URL (``http://`` or ``https://``), a header is not ``k=v``,
            or the disk cap is not a positive integer.

    """
    values: dict[str, Any] = {}
    source: dict[str, str] = {}
    fields_set = cfg.model_fields_set if cfg is not None else set()
    for key in ("remote_write", "otlp", "query_url", "headers", "max_disk_mb"):
        var = ENV_PREFIX + key.upper()
        if cfg is not None and key in fields_set:
            values[key], source[key] = getattr(cfg, key), "legible.toml"
            continue
        text = (environ.get(var) or "").strip()
        if not text:
            continue
        if key == "headers":
            values[key] = _headers(text, var)
        elif key == "max_disk_mb":
            if not text.isdigit() or int(text) < 1:
                raise ConfigError(f"{var}={text!r} is not a positive number of MiB", hint=f"set {var}=512")
            values[key] = int(text)
        else:
            if not text.startswith(("http://", "https://")):
                raise ConfigError(f"{var}={text!r} is not an http(s) URL", hint=f"set {var}=http://host:port/...")
            values[key] = text
        source[key] = var
    return ForwardSettings(**values, source=source)


def _git(root: Path, *args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def deploy_number(state_dir: Path) -> int:
    """The stack's current deploy number from ``state.json`` (``deploy`` or the last of ``deploys``), else 0."""
    try:
        state = json.loads((state_dir / "state.json").read_text())
    except (OSError, ValueError):
        return 0
    dep = state.get("deploy")
    if isinstance(dep, dict):
        dep = dep.get("number")
    if dep is None and isinstance(state.get("deploys"), list) and state["deploys"]:
        last = state["deploys"][-1]
        dep = last.get("number") if isinstance(last, dict) else last
    return dep if isinstance(dep, int) and dep >= 0 else 0


def labels(worktree: Worktree, deploy: int | None = None, host: str | None = None) -> dict[str, str]:
    """The forwarding labels of a worktree: ``{"worktree", "branch", "commit", "deploy", "host"}``.

    ``branch`` is ``HEAD`` when detached and ``""`` outside git; ``commit`` is the full hex of ``HEAD``.
    """
    return {
        "worktree": worktree.key,
        "branch": _git(worktree.root, "rev-parse", "--abbrev-ref", "HEAD"),
        "commit": _git(worktree.root, "rev-parse", "HEAD"),
        "deploy": str(deploy_number(worktree.state_dir) if deploy is None else deploy),
        "host": host or socket.gethostname(),
    }


def relabel_config(lbls: Mapping[str, str]) -> str:
    """The text of vmagent's ``-remoteWrite.relabelConfig`` file setting every label of ``lbls`` on every series.

    Format: a list of Prometheus ``relabel_config`` entries
    (https://docs.victoriametrics.com/vmagent.html#relabeling), one ``{"target_label", "replacement"}`` each
    (action ``replace``, whose default regex matches the empty source); written by :func:`json.dumps` (JSON is
    YAML), so values are quoted by the serializer. vmagent re-reads the file on SIGHUP, which is how the
    ``deploy`` and ``commit`` labels follow a ``legible restart`` (:func:`follow_deploy`).
    """
    entries = [{"target_label": k, "replacement": v} for k, v in lbls.items()]
    return json.dumps(entries, indent=1) + "\n"


#: The vmagent flag naming its relabel file (:func:`relabel_config`).
RELABEL_FLAG = "-remoteWrite.relabelConfig="


def follow_deploy(argv: Sequence[str], deploy: int, commit: str | None) -> bool:
    """Set ``deploy`` (and ``commit`` when known) in the relabel file of a vmagent run by ``argv``.

    Returns whether the file changed (then the caller sends vmagent SIGHUP to re-read it). Labels the file
    does not hold, or a file that cannot be read, leave it as it is.
    """
    path = next((Path(a[len(RELABEL_FLAG) :]) for a in argv if a.startswith(RELABEL_FLAG)), None)
    if path is None:
        return False
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    lbls = {e["target_label"]: e["replacement"] for e in entries}
    new = {**lbls, "deploy": str(deploy), **({"commit": commit} if commit else {})}
    if new == lbls:
        return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(relabel_config(new))
    os.replace(tmp, path)
    return True


def collector_config(settings: ForwardSettings, worktree: Worktree, lbls: Mapping[str, str]) -> str | None:
    """The JSON the collector reads with ``--forward-config`` (:func:`legible.collector._server.load_forwarder`).

    Returns ``None`` when spans and logs are not forwarded. The queue is ``.legible/data/forward/``.
    """
    if not settings.otlp:
        return None
    doc = {
        "url": settings.otlp,
        "queue_dir": str(worktree.data_dir / "forward"),
        "labels": dict(lbls),
        "headers": settings.headers,
        "max_bytes": settings.max_disk_mb * 1024 * 1024,
    }
    return json.dumps(doc, indent=1)


# ---- health ------------------------------------------------------------------------------------------


def _get(url: str, token: str = "", timeout: float = 2.0) -> bytes:
    import requests

    with requests.Session() as session:
        session.trust_env = False  # loopback: never through a proxy
        resp = session.get(url, headers={"Authorization": f"Bearer {token}"} if token else {}, timeout=timeout)
        resp.raise_for_status()
        return resp.content


def _otlp_health(state_dir: Path, port: int) -> ForwardHealth | None:
    from legible.store import TOKEN_FILENAME

    try:
        token = (state_dir / TOKEN_FILENAME).read_text().strip()
        doc = json.loads(_get(f"http://127.0.0.1:{port}/status", token))
    except (OSError, ValueError):
        return None
    fwd = doc.get("forward")
    if not fwd:
        return None
    dropped = sum(fwd["dropped"].values()) + sum(fwd["rejected"].values())
    state = "ok"
    if fwd["last_error"]:
        state = "retrying"
    if sum(fwd["dropped"].values()):
        state = "dropping"
    return {
        "kind": "otlp",
        "url": fwd["url"],
        "state": state,
        "queue_bytes": fwd["queue_bytes"],
        "sent": sum(fwd["sent"].values()),
        "dropped": dropped,
        "last_success_ns": fwd["last_success_ns"],
        "error": fwd["last_error"],
    }


def vmagent_health(port: int, url: str) -> ForwardHealth:
    """Read vmagent's ``/metrics`` on ``127.0.0.1:port`` into one :class:`ForwardHealth`.

    Metric names are vmagent 1.79's (read from its ``/metrics``): ``vmagent_remotewrite_pending_data_bytes``
    (the queue, memory and disk), ``vm_persistentqueue_bytes_dropped_total`` (past
    ``-remoteWrite.maxDiskUsagePerURL``), ``vmagent_remotewrite_rows_pushed_after_relabel_total`` (``sent``:
    rows vmagent took to send), ``vmagent_remotewrite_errors_total``, ``..._dial_errors_total`` and
    ``..._retries_count_total`` (failures), and the last success from
    ``vmagent_remotewrite_last_successful_request_timestamp_seconds`` when a version exports it (1.79 does
    not). ``retrying``: more than 1 MiB waits, or data waits and sends have failed. A vmagent that does not
    answer gives ``state = "unknown"``.
    """
    from prometheus_client.parser import text_string_to_metric_families

    health: ForwardHealth = {
        "kind": "remote_write",
        "url": url,
        "state": "unknown",
        "queue_bytes": 0,
        "sent": 0,
        "dropped": 0,
        "last_success_ns": None,
        "error": "",
    }
    try:
        text = _get(f"http://127.0.0.1:{port}/metrics").decode()
    except (OSError, ValueError) as e:
        health["error"] = f"vmagent does not answer: {e}"
        return health
    failures = 0.0
    last = 0.0
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "vmagent_remotewrite_pending_data_bytes":
                health["queue_bytes"] += int(s.value)
            elif s.name == "vm_persistentqueue_bytes_dropped_total":
                health["dropped"] += int(s.value)
            elif s.name == "vmagent_remotewrite_rows_pushed_after_relabel_total":
                health["sent"] += int(s.value)
            elif s.name in (
                "vmagent_remotewrite_errors_total",
                "vmagent_remotewrite_dial_errors_total",
                "vmagent_remotewrite_retries_count_total",
            ):
                failures += s.value
            elif s.name == "vmagent_remotewrite_last_successful_request_timestamp_seconds":  # not in every version
                last = max(last, s.value)
    health["last_success_ns"] = int(last * 1e9) if last else None
    health["state"] = "dropping" if health["dropped"] else "ok"
    backlog = health["queue_bytes"] > 1024 * 1024 or (health["queue_bytes"] > 0 and failures > 0)
    if health["state"] == "ok" and backlog:
        health["state"] = "retrying"
        health["error"] = f"{int(failures)} failed sends or retries so far"
    return health


def health(state_dir: Path, ports: Mapping[str, int], plan_services: Mapping[str, Any]) -> list[ForwardHealth]:
    """Forwarding health of a running stack: one entry per destination it forwards to.

    Args:
        state_dir: ``.legible/``.
        ports: the stack's ports (``otlp-http``, ``vmagent``).
        plan_services: the services of ``plan.json`` by name (their ``argv`` tell what is forwarded).

    """
    out: list[ForwardHealth] = []
    coll = plan_services.get("collector") or {}
    if any(str(a).startswith("--forward-config=") for a in coll.get("argv", [])):
        h = _otlp_health(state_dir, ports["otlp-http"])
        if h is None:
            h = {
                "kind": "otlp",
                "url": "",
                "state": "unknown",
                "queue_bytes": 0,
                "sent": 0,
                "dropped": 0,
                "last_success_ns": None,
                "error": "the collector does not answer /status",
            }
        out.append(h)
    vma = plan_services.get("vmagent")
    if vma:
        url = next((a.split("=", 1)[1] for a in vma.get("argv", []) if a.startswith("-remoteWrite.url=")), "")
        out.append(vmagent_health(ports["vmagent"], url))
    return out


# ---- fleet questions ---------------------------------------------------------------------------------


def shared_query(settings: ForwardSettings, promql: str, at: float | None = None) -> MetricsSharedDoc:
    """Evaluate ``promql`` on the shared engine (``query_url``); instant query.

    Returns:
        ``{"schema": "legible.metrics-shared/v1", "query_url", "query", "time", "result": [{"metric",
        "value"}]}``, the Prometheus HTTP API's vector (https://prometheus.io/docs/prometheus/latest/querying/api/).

    Raises:
        ConfigError: no ``query_url`` is configured.
        NotReady: the shared engine does not answer.
        UsageError: the engine refuses the query.

    """
    if not settings.query_url:
        raise ConfigError(
            "no shared engine to ask: [forward] query_url is not set",
            hint="set query_url in legible.toml's [forward] or LEGIBLE_FORWARD_QUERY_URL",
        )
    from prometheus_api_client import PrometheusConnect
    from prometheus_api_client.exceptions import PrometheusApiClientException

    from legible._errors import UsageError

    prom = PrometheusConnect(url=settings.query_url, headers=settings.headers or None, disable_ssl=False)
    when = time.time() if at is None else at
    try:
        result = prom.custom_query(promql, params={"time": when})
    except PrometheusApiClientException as e:
        raise UsageError(f"the shared engine refused the query: {e}", hint="check the PromQL") from e
    except OSError as e:
        raise NotReady(
            f"the shared engine at {settings.query_url} does not answer: {e}",
            hint="check [forward] query_url",
        ) from e
    return {
        "schema": SHARED_SCHEMA,
        "query_url": settings.query_url,
        "query": promql,
        "time": when,
        "result": [{"metric": r.get("metric", {}), "value": float(r["value"][1])} for r in result],
    }


def worktree_settings(start: Path | None = None) -> ForwardSettings:
    """The forwarding settings of the worktree around ``start`` (its ``legible.toml`` if any, then the environment).

    Raises:
        ConfigError: ``legible.toml`` or a ``LEGIBLE_FORWARD_*`` variable is malformed.
        UsageError: not inside a git worktree.

    """
    import os

    from legible.config import find_config_file, load_config
    from legible.worktree import find_worktree

    wt = find_worktree(start)
    cfg = load_config(wt.root).forward if find_config_file(wt.root) else None
    return resolve(cfg, os.environ)


def render_shared(doc: Mapping[str, Any], limit: int = 20) -> list[str]:
    """Lines for a ``legible.metrics-shared/v1`` document: a summary, then one series per line, largest first."""
    rows = sorted(doc["result"], key=lambda r: -r["value"])
    lines = [f"{len(rows)} series from the shared engine {doc['query_url']}"]
    for r in rows[:limit]:
        labels = ",".join(f"{k}={v!r}" for k, v in sorted(r["metric"].items()))
        lines.append(f"{r['value']:.6g}  {{{labels}}}")
    if len(rows) > limit:
        lines.append(f"... {len(rows) - limit} more series; aggregate with sum by (...) or use --json")
    return lines


def _with_label(promql: str, name: str, value: str) -> str:
    """Add ``name="value"`` to every ``{...}`` selector of ``promql`` (the figures of :mod:`legible.proof`)."""
    matcher = f"{name}={json.dumps(value)}"  # a JSON string is a valid PromQL string literal
    return promql.replace("{", "{" + matcher + ",").replace(",}", "}")


def shared_baseline(settings: ForwardSettings, branch: str, window_s: int = 86_400) -> dict[str, Any]:
    """A baseline manifest for ``legible proof --baseline branch:NAME`` from the shared engine.

    The proof's figures (:data:`legible.proof.FIGURES`) over the last ``window_s`` seconds of every series
    labelled ``branch=NAME``, whichever worktree or machine sent them.

    Returns:
        ``{"run_id": "shared:<branch>", "branch", "commit": the newest commit label seen or "", "figures":
        {key: {"value": float | None}}}``; the shape :func:`legible.proof.comparable` reads.

    Raises:
        ConfigError: no ``query_url``.
        NotReady: the shared engine does not answer.

    """
    from legible.proof import FIGURES

    figures: dict[str, dict[str, float | None]] = {}
    for fig in FIGURES:
        doc = shared_query(settings, _with_label(fig.promql.replace("{W}", str(window_s)), "branch", branch))
        vals = [r["value"] for r in doc["result"] if r["value"] == r["value"]]
        figures[fig.key] = {"value": vals[0] if vals else None}
    commits = shared_query(settings, f"max by (commit) (timestamp(legible_spans_total{{branch={json.dumps(branch)}}}))")
    newest = max(commits["result"], key=lambda r: r["value"], default=None)
    return {
        "run_id": f"shared:{branch}",
        "branch": branch,
        "commit": newest["metric"].get("commit", "") if newest else "",
        "figures": figures,
    }
