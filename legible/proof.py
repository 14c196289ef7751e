"""Proof of work: run the journeys (recorded once, judged without the recording's time) and the checks; pack it.

``legible proof`` writes ``.legible/proof/<run-id>/``:

* ``manifest.json`` (schema ``legible.proof/v1``, JSON Schema ``legible/schemas/proof.v1.json``): worktree
  key, branch, commit, start and end times, the verdict, each check's result, each journey's result, the
  key figures (and the baseline's, when asked), and every file with its sha256 and size in bytes;
* ``summary.md``: a pull-request comment under 60 KB: the verdict first, a table of checks, key figures
  with sparklines, the slowest spans, error log groups, links to the charts, screenshots and video;
* ``checks.json`` (``legible.check/v1``), ``charts/*.png`` (request rate, latency percentiles, errors over the
  run, drawn with matplotlib), and each journey's screenshots, video (MP4), poster and GIF.

Redaction (:mod:`legible.redact`): the journeys' results, the checks, the store's evidence and the manifest
are redacted as data (each string value, before anything is rendered or serialized), the summary's text
once more, and media file names too. Secrets are the values of the stack's (and this process's)
environment variables with secret NAMES, ``Authorization``/``Bearer`` credentials, ``key=value`` and JSON
``"key": "value"`` pairs with secret-looking keys, credentials and secret query parameters in URLs, and
well-known token shapes; each becomes ``[REDACTED]``. The worktree path is not a secret.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

from legible._duration import format_ms
from legible._errors import UsageError
from legible.redact import Redactor, secret_values

if TYPE_CHECKING:
    from legible.contract import (
        BaselineDoc,
        CheckDoc,
        ErrorGroupDoc,
        FigureChange,
        ProofDoc,
        SlowSpan,
    )

PROOF_SCHEMA: Final = "legible.proof/v1"
#: GitHub's comment limit is 65,536 characters; stay under it with room for the marker.
SUMMARY_MAX_BYTES = 60_000
#: The hidden marker that identifies legible's sticky PR comment.
MARKER = "<!-- legible-proof -->"


# -- figures ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Figure:
    """A key figure of a run: one PromQL instant value over the run window (``{W}`` = window, seconds).

    Attributes:
        key: stable id (``p99_ms``) used for baselines.
        title: what it is, for people.
        promql: the instant query; ``{W}`` is replaced by the window in seconds.
        unit: ``ms``, ``req`` or ``""``.
        chart: the chart it belongs to (``requests``, ``latency``, ``errors``).
        series: the range query drawn on the chart; ``{S}`` is replaced by the step in seconds.
    """

    key: str
    title: str
    promql: str
    unit: str
    chart: str
    series: str


_SERVER = 'span_kind="server"'


def _quantile(q: int, window: str) -> str:
    bucket = f"legible_span_duration_seconds_bucket{{{_SERVER}}}"
    return f"histogram_quantile(0.{q}, sum by (vmrange) (increase({bucket}[{window}s]))) * 1000"


FIGURES = [
    Figure(
        "requests",
        "requests served",
        f"sum(increase(legible_spans_total{{{_SERVER}}}[{{W}}s]))",
        "req",
        "requests",
        f"sum(increase(legible_spans_total{{{_SERVER}}}[{{S}}s]))",
    ),
    *(
        Figure(
            f"p{q}_ms",
            f"p{q} server latency",
            _quantile(q, "{W}"),
            "ms",
            "latency",
            _quantile(q, "{S}"),
        )
        for q in (50, 95, 99)
    ),
    Figure(
        "errors",
        "spans with status error",
        'sum(increase(legible_spans_total{status_code="error"}[{W}s]))',
        "",
        "errors",
        'sum(increase(legible_spans_total{status_code="error"}[{S}s]))',
    ),
]


def _instant(vm: str, promql: str, empty: float | None) -> float | None:
    from legible.queries.metrics import query

    try:
        res = query(vm, promql)
    except Exception:  # noqa: BLE001 - a figure that cannot be read is shown as "-", never fatal
        return None
    vals = [s.value for s in res.series if s.value is not None and s.value == s.value]
    return float(vals[0]) if vals else empty


def _range(vm: str, promql: str, start: float, end: float, step: float) -> list[tuple[float, float]]:
    from legible.queries.metrics import query

    try:
        res = query(vm, promql, range_s=end - start, step_s=step, now=end)
    except Exception:  # noqa: BLE001
        return []
    return res.series[0].values if res.series else []


def collect_figures(vm: str, start: float, end: float) -> tuple[dict[str, Any], dict[str, list[tuple[float, float]]]]:
    """Read :data:`FIGURES` for the window ``[start, end]`` (unix seconds).

    Returns:
        ``({key: {"title", "value", "unit"}}, {key: [(t, v)...]})``: the instant figures and their series.
    """
    window = max(1, int(end - start))
    step = max(1, window // 60)
    figures, series = {}, {}
    with concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="legible-figures") as pool:  # 10 HTTP queries
        values, ranges = {}, {}
        for f in FIGURES:
            empty = 0.0 if f.chart in ("requests", "errors") else None  # no counter series means none happened
            values[f.key] = pool.submit(_instant, vm, f.promql.replace("{W}", str(window)), empty)
            ranges[f.key] = pool.submit(_range, vm, f.series.replace("{S}", str(max(step, 5))), start, end, step)
        for f in FIGURES:
            figures[f.key] = {"title": f.title, "value": values[f.key].result(), "unit": f.unit}
            series[f.key] = ranges[f.key].result()
    return figures, series


def _chart_modules() -> tuple[Any, Any]:
    """Import matplotlib's ``Figure`` and Agg canvas (about 1-2 s on a busy machine; a proof warms it early).

    Only the object-oriented API: no ``pyplot`` (its global figure registry and backend switching), so figures
    can be drawn off the main thread.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    return MplFigure, FigureCanvasAgg


def draw_charts(series: dict[str, list[tuple[float, float]]], out: Path) -> list[Path]:
    """Draw one PNG per chart (requests, latency percentiles, errors) under ``out``; return their paths.

    Args:
        series: ``{figure key: [(unix s, value)...]}`` as :func:`collect_figures` returns them.
        out: the directory (created).

    Returns:
        ``[out/requests.png, out/latency.png, out/errors.png]`` (600x240 px PNGs, matplotlib's Agg renderer).

    """
    mpl_figure, canvas = _chart_modules()
    charts: dict[str, list[Figure]] = {}
    for f in FIGURES:
        charts.setdefault(f.chart, []).append(f)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    titles = {"requests": "Requests per step", "latency": "Server latency (ms)", "errors": "Error spans per step"}
    for chart, figs in charts.items():
        fig = mpl_figure(figsize=(6, 2.4), dpi=100, layout="tight")
        canvas(fig)
        ax = fig.add_subplot()
        drawn = 0
        for f in figs:
            pts = [(t, v) for t, v in series.get(f.key, []) if v == v]
            if pts:
                t0 = pts[0][0]
                ax.plot([t - t0 for t, _ in pts], [v for _, v in pts], label=f.title, linewidth=1.5)
                drawn += 1
        if not drawn:
            ax.text(0.5, 0.5, "no data in this run", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(titles[chart], fontsize=10)
        ax.set_xlabel("seconds into the run", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if drawn > 1:
            ax.legend(fontsize=7)
        path = out / f"{chart}.png"
        fig.savefig(path)
        paths.append(path)
    return paths


# -- git ----------------------------------------------------------------------------------------------
def _git(root: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    return out.stdout.strip() if out.returncode == 0 else ""


def git_info(root: Path) -> dict[str, str]:
    """``{"branch", "commit", "dirty"}`` of the worktree (``""`` where git cannot say)."""
    return {
        "branch": _git(root, "rev-parse", "--abbrev-ref", "HEAD"),
        "commit": _git(root, "rev-parse", "HEAD"),
        "dirty": "yes" if _git(root, "status", "--porcelain", "--untracked-files=no") else "no",
    }


# -- baseline -----------------------------------------------------------------------------------------
def find_baseline(root: Path, ref_or_run: str) -> Path:
    """Find the ``manifest.json`` of a baseline: a run id of this worktree, a path, or a git ref.

    For a ref (``main``), the worktree that has it checked out is found with ``git worktree list`` and its
    newest proof run is used.

    Raises:
        UsageError: nothing matches; the message says what was tried.
    """
    direct = Path(ref_or_run)
    for cand in (direct / "manifest.json", direct, root / ".legible" / "proof" / ref_or_run / "manifest.json"):
        if cand.is_file() and cand.name == "manifest.json":
            return cand
    porcelain = _git(root, "worktree", "list", "--porcelain")
    path = None
    for block in porcelain.split("\n\n"):
        fields = dict(line.split(" ", 1) for line in block.splitlines() if " " in line)
        branch = fields.get("branch", "").removeprefix("refs/heads/")
        if branch == ref_or_run or fields.get("HEAD", "").startswith(ref_or_run):
            path = Path(fields["worktree"])
            break
    if path is not None:
        runs = sorted((path / ".legible" / "proof").glob("*/manifest.json"))
        if runs:
            return runs[-1]
        raise UsageError(
            f"baseline {ref_or_run!r}: the worktree {path} has no proof run yet",
            hint=f"run `legible proof` in {path} first",
        )
    raise UsageError(
        f"baseline {ref_or_run!r} is not a run id, a manifest path, or a checked-out branch",
        hint="list runs with `ls .legible/proof/`, or check out the base branch in a worktree",
    )


def baseline_manifest(root: Path, baseline: str) -> Mapping[str, Any]:
    """The baseline's manifest; ``branch:NAME`` is the branch's worktree, else the shared engine's figures.

    ``branch:NAME`` first looks for a worktree of this repository with NAME checked out (like ``NAME``);
    when there is none (it ran on another machine, or was removed) and forwarding has a ``query_url``, the
    figures come from the shared engine (:func:`legible.forward.shared_baseline`).

    Raises:
        UsageError: nothing matches.
        NotReady: the shared engine does not answer.

    """
    if baseline.startswith("branch:"):
        name = baseline.removeprefix("branch:")
        try:
            return cast("Mapping[str, Any]", json.loads(find_baseline(root, name).read_text()))
        except UsageError:
            from legible import forward

            settings = forward.worktree_settings(root)
            if not settings.query_url:
                raise
            return forward.shared_baseline(settings, name)
    return cast("Mapping[str, Any]", json.loads(find_baseline(root, baseline).read_text()))


def comparable(manifest: Mapping[str, Any]) -> dict[str, float]:
    """The figures of a manifest that a baseline compares: key figures, check values, journey durations."""
    out: dict[str, float] = {}
    for key, fig in manifest.get("figures", {}).items():
        if fig.get("value") is not None:
            out[key] = float(fig["value"])
    for c in manifest.get("checks", {}).get("checks", []):
        if c.get("measured") is not None:
            out[f"check.{c['name']}"] = float(c["measured"])
    for name, j in manifest.get("journeys", {}).items():
        if j.get("duration_ms") is not None:
            out[f"journey.{name}.duration_ms"] = float(j["duration_ms"])
    return out


def compare(current: Mapping[str, Any], baseline: Mapping[str, Any]) -> list[FigureChange]:
    """Pair each figure with the baseline's: ``[{"key", "value", "baseline", "change_pct"}]`` (None where absent)."""
    cur, base = comparable(current), comparable(baseline)
    rows: list[FigureChange] = []
    for key in sorted(set(cur) | set(base)):
        v, b = cur.get(key), base.get(key)
        pct = round((v - b) / b * 100, 1) if v is not None and b not in (None, 0) else None
        rows.append({"key": key, "value": v, "baseline": b, "change_pct": pct})
    return rows


# -- the run ------------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "ms":
        return format_ms(v)
    if unit == "lines":
        return f"{v:.0f} lines"
    return f"{v:.4g}{' ' + unit if unit else ''}"


def run_proof(
    start: Path | None = None,
    *,
    record: bool = True,
    baseline: str | None = None,
    run_journey: Callable[..., Mapping[str, Any]] | None = None,
    now: Callable[[], float] = time.time,
) -> ProofDoc:
    """Run journeys and checks and write the bundle; return the manifest (``legible.proof/v1``).

    Args:
        start: a directory inside the worktree (default: the current one).
        record: record each journey's walkthrough video.
        baseline: a run id, manifest path or git ref to compare figures with (see :func:`find_baseline`).
        run_journey: runs one journey (default :func:`legible.browser.journey.run_journey`, when the stack
            has a browser); ``(name, record=..., start=...) -> legible.journey/v1``.
        now: the clock (unix seconds).

    Raises:
        NotRunning: no stack is running here.
        UsageError: a bad baseline.
    """
    from legible.config import load_config
    from legible.stack import require_running
    from legible.worktree import find_worktree

    wt = find_worktree(start)
    state = require_running(start)
    cfg = load_config(wt.root)
    base_manifest = baseline_manifest(wt.root, baseline) if baseline else None
    t_start = now()
    run_id = dt.datetime.fromtimestamp(t_start, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = wt.state_dir / "proof" / run_id
    out.mkdir(parents=True, exist_ok=False)
    plan = json.loads((wt.state_dir / "plan.json").read_text())
    env = {**os.environ, **{k: v for s in plan["services"] for k, v in s["env"].items()}}
    red = Redactor(secret_values(env))

    # Work that waits for nothing the main thread does runs beside it: matplotlib's import while the journeys
    # walk (the main thread then waits on the browser agent), each journey's video encoding (ffmpeg) while
    # the next one walks and the checks run, its backend-spans wait while the next one walks, and the charts
    # while the store's evidence is read.
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="legible-proof")
    try:
        return _run_proof(
            wt, state, cfg, out, run_id, red, record, base_manifest, baseline, run_journey, now, t_start, pool
        )
    finally:
        pool.shutdown(wait=True, cancel_futures=False)


def _run_proof(
    wt: Any,
    state: Any,
    cfg: Any,
    out: Path,
    run_id: str,
    red: Redactor,
    record: bool,
    base_manifest: Mapping[str, Any] | None,
    baseline: str | None,
    run_journey: Callable[..., Mapping[str, Any]] | None,
    now: Callable[[], float],
    t_start: float,
    pool: concurrent.futures.ThreadPoolExecutor,
) -> ProofDoc:
    from legible.checks import CheckContext, run_checks

    timings: dict[str, float] = {}
    mark = time.monotonic()

    def lap(name: str) -> None:
        nonlocal mark
        timings[name] = round((time.monotonic() - mark) * 1000, 1)
        mark = time.monotonic()

    warm = pool.submit(_chart_modules)
    journeys: dict[str, dict[str, Any]] = {}
    pending: list[tuple[Callable[[], None], Callable[[], None]]] = []
    has_browser = "chromium" in state["services"]
    if cfg.journeys and has_browser:
        defer = None
        if run_journey is None:
            from legible.browser.journey import run_journey as _run

            run_journey, defer = _run, pool
        from legible.browser.checks import journey_outcome

        for name in cfg.journeys:
            journeys[name] = _run_for_proof(run_journey, journey_outcome, name, record, wt.root, defer, pending)
            from legible.browser.diff import capture_end_state  # the end state, for a later run's --baseline

            capture_end_state(wt.state_dir, out, name)
    skipped = [] if has_browser or not cfg.journeys else sorted(cfg.journeys)
    for spans_in, _ in pending:
        spans_in()
    lap("journeys")

    def journey_result(name: str) -> dict[str, Any]:
        if name in journeys:
            return journeys[name]
        return {"passed": False, "error": "the stack has no browser: `legible up --browser`"}

    ctx = CheckContext(worktree=wt, config=cfg, state=state, run_journey=journey_result)
    checks: CheckDoc = (
        run_checks(ctx)
        if cfg.checks
        else {
            "schema": "legible.check/v1",
            "key": wt.key,
            "worktree": str(wt.root),
            "passed": True,
            "counts": {"pass": 0, "fail": 0, "error": 0},
            "checks": [],
            "took_ms": 0.0,
        }
    )
    from legible.queries.source import flush_collector
    from legible.store import read_token

    lap("checks")
    # the run's last spans, as metrics, searchable now
    flush_collector(state["endpoints"]["otlp-http"], read_token(wt.state_dir))
    t_end = now()
    window_start = min(t_start, float(state["started_at"] or t_start))
    # the Parquet export reads the store on a store object of its own (a direct DuckDB connection, when the
    # collector does not answer, is not shared between threads) while the figures and evidence are read
    from legible.store import open_store

    collector = state["endpoints"].get("otlp-http")
    signals_store = open_store(wt.state_dir, collector_url=collector if ctx.alive else None)
    exporting = pool.submit(_write_signals, signals_store, out, window_start, red.text)
    vm = state["endpoints"]["victoria-metrics"]
    figures, series = collect_figures(vm, window_start, t_end)
    lap("figures")
    warm.result()
    drawing = pool.submit(draw_charts, series, out / "charts")
    slowest, error_groups = red.doc(_store_evidence(ctx, window_start))
    checks = red.doc(checks)
    signals = exporting.result()
    lap("evidence")
    charts = drawing.result()
    lap("charts")
    for _, video_in in pending:
        video_in()
    lap("videos")

    media = _collect_media(journeys, out, red)
    passed = checks["passed"] and all(j.get("passed") for j in journeys.values())
    info = git_info(wt.root)
    app = state["services"].get("app")
    manifest: ProofDoc = {
        "schema": PROOF_SCHEMA,
        "run_id": run_id,
        "key": wt.key,
        "worktree": str(wt.root),
        "branch": info["branch"],
        "commit": info["commit"],
        "dirty": "yes" if info["dirty"] == "yes" else "no",
        "started_at": dt.datetime.fromtimestamp(t_start, dt.UTC).isoformat(),
        "finished_at": dt.datetime.fromtimestamp(t_end, dt.UTC).isoformat(),
        "took_ms": round((t_end - t_start) * 1000, 1),
        "passed": passed,
        "checks": checks,
        "journeys": {red.text(n): red.doc(_journey_summary(j)) for n, j in journeys.items()},
        "journeys_skipped": skipped,
        "figures": figures,
        "startup_ms": app["first_ready_ms"] if app else None,
        "slowest_spans": slowest,
        "error_groups": error_groups,
        "baseline": None,
        "signals": signals,
        "timings_ms": timings,
        "files": [],
    }
    if base_manifest is not None:
        base_doc: BaselineDoc = {
            "run_id": base_manifest.get("run_id"),
            "branch": base_manifest.get("branch"),
            "commit": base_manifest.get("commit"),
            "figures": compare(manifest, base_manifest),
        }
        if journeys:
            from legible.browser.diff import visual_diffs

            assert baseline is not None
            base_dir = find_baseline(wt.root, baseline).parent
            base_doc["visual"] = visual_diffs(out, base_dir, list(journeys))
        manifest["baseline"] = base_doc
    manifest = red.doc(manifest)  # every string of it, before anything is rendered from it
    spark = {k: _spark([v for _, v in pts]) for k, pts in series.items()}
    (out / "checks.json").write_text(json.dumps(checks, indent=1))
    summary = render_summary(
        manifest, spark, charts=[p.relative_to(out) for p in charts], media=[p.relative_to(out) for p in media]
    )
    (out / "summary.md").write_text(red.text(summary))
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")
    manifest["files"] = [
        {"path": str(p.relative_to(out)), "bytes": p.stat().st_size, "sha256": _sha256(p)} for p in files
    ]
    lap("bundle")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    manifest["dir"] = str(out)
    return manifest


def _run_for_proof(
    run_journey: Callable[..., Any],
    outcome: Callable[[Any], dict[str, Any]],
    name: str,
    record: bool,
    root: Path,
    defer: concurrent.futures.Executor | None = None,
    pending: list[tuple[Callable[[], None], Callable[[], None]]] | None = None,
) -> dict[str, Any]:
    """Run journey ``name`` once for a proof: recorded when ``record``, judged without the recording's time.

    A recording adds time to the walk (chapter cards and outlines each get a captured frame; visible typing
    goes key by key); the agent counts it (``recording_ms``, per step and for the run; the cards' and
    outlines' reading time is added to the video at encoding, not to the walk). The verdict's duration and
    step times are the recorded run's minus that, which is what an unrecorded run (``legible check``)
    measures; span checks read this run's trace, whose backend spans the recording does not slow. One run
    instead of a recorded plus an unrecorded one halves the journeys' share of a proof.

    Args:
        run_journey: runs one journey (see :func:`run_proof`).
        outcome: :func:`legible.browser.checks.journey_outcome`.
        name: the journey.
        record: record it.
        root: the worktree.
        defer: when given, the recorded run is walked with :func:`legible.browser.journey.walk_journey` and
            its video encoding and backend-spans wait run on this executor while the next journey walks.
        pending: gets ``(spans_in, video_in)``: each waits for its job and puts the result into the outcome
            (``backend``, ``video``, and the same in ``recorded``); the caller calls ``spans_in`` before the
            checks (span checks read the store) and ``video_in`` before packing media.

    Returns:
        :func:`legible.browser.checks.journey_outcome` of the run (times without the recording's), plus
        ``"recording"``: ``{"passed", "error", "duration_ms", "recording_ms"}`` of the recorded run as
        timed (or ``None``) and, when recorded, ``"recorded"``: its whole outcome (media paths).

    """
    late: list[tuple[Any, Any, Any]] = []  # (document, video future, backend future) of the recorded run

    def one(rec: bool) -> dict[str, Any]:
        try:
            if rec and defer is not None:
                from legible.browser.journey import walk_journey

                late.append(walk_journey(name, record=True, start=root, pool=defer))
                return outcome(late[0][0])
            return outcome(run_journey(name, record=rec, start=root))
        except Exception as exc:  # noqa: BLE001 - one journey's crash is that journey's failure
            return {"passed": False, "error": (str(exc).splitlines() or [""])[0][:300], "steps": []}

    if not record:
        result = one(False)
        result["recording"] = None
        return result
    recorded = one(True)
    result = {**recorded, "steps": [dict(s) for s in recorded.get("steps", [])]}
    added = float(recorded.get("recording_ms") or 0.0)
    if recorded.get("duration_ms") is not None:
        result["duration_ms"] = round(max(float(recorded["duration_ms"]) - added, 0.0), 1)
    for s in result["steps"]:
        if s.get("duration_ms") is not None:
            s["duration_ms"] = round(max(float(s["duration_ms"]) - float(s.pop("recording_ms", 0.0) or 0.0), 0.0), 1)
    result.pop("recording_ms", None)
    result["recording"] = {
        "passed": recorded.get("passed"),
        "error": recorded.get("error"),
        "duration_ms": recorded.get("duration_ms"),
        "recording_ms": added,
    }
    result["recorded"] = recorded
    if late and pending is not None:
        _doc, video, backend = late[0]

        def spans_in() -> None:  # the outcome's backend document, once the trace's spans are in the store
            try:
                found = dict(backend.result())
            except Exception as exc:  # noqa: BLE001 - shown as the journey's backend error, never dropped
                error = " ".join(str(exc).split())[:300] or type(exc).__name__
                found = {"spans": 0, "slowest": [], "error": error, "waited_ms": 0.0, "none_because": ""}
            result["backend"] = recorded["backend"] = found

        def video_in() -> None:  # the outcome's video document, once encoded
            if video is not None:
                result["video"] = recorded["video"] = dict(video.result() or {})

        pending.append((spans_in, video_in))
    return result


def _journey_summary(j: dict[str, Any]) -> dict[str, Any]:
    keep = ("passed", "duration_ms", "error", "failed_step", "trace_id", "recording")
    out = {k: j.get(k) for k in keep}
    out["steps"] = [{k: s.get(k) for k in ("title", "status", "duration_ms")} for s in j.get("steps", [])][:50]
    return out


def _files_in(doc: Any) -> list[Path]:
    found: list[Path] = []
    if isinstance(doc, dict):
        for v in doc.values():
            found += _files_in(v)
    elif isinstance(doc, list):
        for v in doc:
            found += _files_in(v)
    elif isinstance(doc, str) and doc.startswith("/") and re.search(r"\.(mp4|gif|png|jpe?g|webm)$", doc):
        p = Path(doc)
        if p.is_file():
            found.append(p)
    return found


def _collect_media(journeys: dict[str, dict[str, Any]], out: Path, red: Redactor) -> list[Path]:
    copied: list[Path] = []
    for name, j in journeys.items():
        dest = out / "journeys" / red.text(name).replace("/", "_")
        for src in dict.fromkeys(_files_in(j)):
            dest.mkdir(parents=True, exist_ok=True)
            target = dest / red.text(src.name).replace("/", "_")
            shutil.copy2(src, target)
            copied.append(target)
    return copied


def _write_signals(store: Any, out: Path, since_s: float, redact: Callable[[str], str]) -> dict[str, Any] | None:
    """The run window's logs and spans as Parquet in ``out/signals`` (:mod:`legible.bundle`), redacted.

    Args:
        store: the worktree's :class:`legible.store.Store`.
        out: the proof's directory.
        since_s: the window's start, unix seconds.
        redact: redacts each string value.

    Returns what :func:`legible.bundle.write_signals` returns, or ``{"error": message}`` when the store
    could not be read (the bundle then says so instead of silently lacking the files).
    """
    from legible.bundle import SIGNALS_DIR, write_signals

    try:
        return write_signals(store, out / SIGNALS_DIR, int(since_s * 1e9), redact)
    except Exception as exc:  # noqa: BLE001 - the bundle records the failure; checks carry the verdict
        return {"error": " ".join(str(exc).split())[:300]}


def _store_evidence(ctx: Any, since_s: float) -> tuple[list[SlowSpan], list[ErrorGroupDoc]]:
    store = ctx.store()
    since_ns = int(since_s * 1e9)
    try:
        spans = store.query(  # backend spans only: the browser's journey and step spans span the whole walk
            "SELECT trace_id, service, name, duration_ms, status_code FROM spans "
            "WHERE start_ns >= ? AND service != 'browser' ORDER BY duration_ms DESC LIMIT 5",
            [since_ns],
        ).dicts()
        groups = store.query(
            "SELECT service, level, template, count(*) AS count, arg_max(trace_id, time_ns) AS trace_id FROM logs "
            "WHERE time_ns >= ? AND level IN ('error', 'fatal') GROUP BY ALL ORDER BY count DESC LIMIT 5",
            [since_ns],
        ).dicts()
    except Exception:  # noqa: BLE001 - evidence is best effort; the checks carry the verdict
        return [], []
    return cast("list[SlowSpan]", spans), cast("list[ErrorGroupDoc]", groups)  # the SELECTs' columns


def _spark(values: list[float]) -> str:
    from legible.queries.metrics import sparkline

    return sparkline([v if v == v else None for v in values], width=20) if values else ""


def render_summary(manifest: Mapping[str, Any], spark: dict[str, str], *, charts: list[Path], media: list[Path]) -> str:
    """The PR comment: verdict line, checks table, figures with sparklines, slowest spans, errors, media.

    The text is cut to :data:`SUMMARY_MAX_BYTES` with an explicit line saying so.
    """
    checks = manifest["checks"]
    c = checks["counts"]
    total = c["pass"] + c["fail"] + c["error"]
    icon = "✅" if manifest["passed"] else "❌"
    jn = manifest["journeys"]
    jpass = sum(1 for j in jn.values() if j.get("passed"))
    lines = [
        MARKER,
        f"## {icon} legible proof: {'PASS' if manifest['passed'] else 'FAIL'}: {c['pass']}/{total} checks passed"
        + (f", {jpass}/{len(jn)} journeys passed" if jn else ""),
        "",
        f"`{manifest['branch']}` @ `{manifest['commit'][:10]}` · worktree `{manifest['key']}` "
        f"· run `{manifest['run_id']}` · {format_ms(manifest['took_ms'])}",
        "",
    ]
    if checks["checks"]:
        lines += ["### Checks", "", "| | check | measured | budget | detail |", "|---|---|---|---|---|"]
        for r in sorted(checks["checks"], key=lambda r: {"fail": 0, "error": 1, "pass": 2}[r["status"]]):
            mark = {"pass": "✅", "fail": "❌", "error": "⚠️"}[r["status"]]
            detail = r["summary"].replace("|", "\\|")
            if r["status"] != "pass" and r["evidence"]:
                detail += f" · `{r['evidence']}`"
            measured, budget = _fmt(r["measured"], r["unit"]), _fmt(r["budget"], r["unit"])
            lines.append(f"| {mark} | {r['name']} | {measured} | {budget} | {detail} |")
        lines.append("")
    if jn:
        lines += ["### Journeys", "", "| | journey | duration | steps | detail |", "|---|---|---|---|---|"]
        for name, j in jn.items():
            steps = j.get("steps") or []
            ok = sum(1 for s in steps if s.get("status") == "pass")
            detail = j.get("error") or ""
            rec = j.get("recording") or {}
            if rec and not rec.get("passed"):
                detail = (detail + " · " if detail else "") + f"the recorded run failed: {rec.get('error') or '?'}"
            detail = detail.replace("|", "\\|")[:300]
            lines.append(
                f"| {'✅' if j.get('passed') else '❌'} | {name} | {_fmt(j.get('duration_ms'), 'ms')} | "
                f"{ok}/{len(steps)} | {detail} |"
            )
        lines.append("")
    if manifest.get("journeys_skipped"):
        lines += [f"Journeys not run (no browser in this stack): {', '.join(manifest['journeys_skipped'])}.", ""]
    base = manifest.get("baseline")
    base_by_key = {r["key"]: r for r in base["figures"]} if base else {}
    lines += ["### Key figures", ""]
    head = "| figure | this run | trend |" + (" baseline | change |" if base else "")
    lines += [head, "|---|---|---|" + ("---|---|" if base else "")]
    startup = manifest.get("startup_ms")
    rows = [("app startup", startup, "ms", "", "check.startup")]
    rows += [(f["title"], f["value"], f["unit"], spark.get(k, ""), k) for k, f in manifest["figures"].items()]
    for title, value, unit, sp, key in rows:
        row = f"| {title} | {_fmt(value, unit)} | {sp or ''} |"
        if base:
            b = base_by_key.get(key)
            pct = b and b["change_pct"]
            row += f" {_fmt(b['baseline'] if b else None, unit)} | {f'{pct:+.0f}%' if pct is not None else '-'} |"
        lines.append(row)
    if base:
        others = [r for r in base["figures"] if r["key"].startswith(("check.", "journey."))]
        for r in others[:20]:
            pct = r["change_pct"]
            lines.append(
                f"| {r['key']} | {_fmt(r['value'], 'ms')} | | {_fmt(r['baseline'], 'ms')} | "
                f"{f'{pct:+.0f}%' if pct is not None else '-'} |"
            )
        lines.append(f"\nBaseline: run `{base['run_id']}` of `{base['branch']}` @ `{(base['commit'] or '')[:10]}`.")
    lines.append("")
    if base and base.get("visual"):
        from legible.browser.diff import render_visual

        lines += render_visual(base["visual"])
    if manifest["slowest_spans"]:
        lines += ["### Slowest spans", "", "| duration | service | span | status | trace |", "|---|---|---|---|---|"]
        for s in manifest["slowest_spans"]:
            lines.append(
                f"| {_fmt(s['duration_ms'], 'ms')} | {s['service']} | {s['name']} | {s['status_code']} | "
                f"`{s['trace_id'][:16]}` |"
            )
        lines.append("")
    if manifest["error_groups"]:
        lines += ["### Error log groups", "", "| lines | service | message | trace |", "|---|---|---|---|"]
        for g in manifest["error_groups"]:
            msg = str(g["template"] or "")[:160].replace("|", "\\|")
            lines.append(f"| {g['count']} | {g['service']} | {msg} | `{(g['trace_id'] or '-')[:16]}` |")
        lines.append("")
    if charts:
        lines += ["### Charts", ""] + [f"![{p.stem}]({p})" for p in charts] + [""]
    if media:
        lines += ["### Walkthrough", ""]
        for p in media:
            if p.suffix in (".gif", ".png", ".jpg", ".jpeg"):
                lines.append(f"![{p.parent.name}: {p.name}]({p})")
            else:
                lines.append(f"- [{p.parent.name}: {p.name}]({p})")
        lines.append("")
    lines.append(f"<sub>Full evidence: `{manifest['run_id']}/manifest.json`; reproduce with `legible check`.</sub>")
    text = "\n".join(lines) + "\n"
    if len(text.encode()) > SUMMARY_MAX_BYTES:
        cut = text.encode()[: SUMMARY_MAX_BYTES - 200].decode("utf-8", "ignore")
        text = cut.rsplit("\n", 1)[0] + "\n\n… summary cut at 60 KB; the full evidence is in manifest.json\n"
    return text
