"""Where the signals of the current worktree are: its store (logs, spans) and its VictoriaMetrics URL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from legible._errors import NotRunning

if TYPE_CHECKING:
    from legible.store import Store
    from legible.worktree import Worktree

__all__ = ["bundle_or_worktree", "flush_collector", "metrics_url", "read_endpoints", "store_opener", "worktree_store"]


def read_endpoints(wt: Worktree) -> dict[str, str] | None:
    """Return the ``endpoints`` of ``wt``'s ``state.json`` if its supervisor is alive, else ``None``.

    The same test as :func:`legible.stack.read_state` (the supervisor's pid and start time still match),
    without importing :mod:`legible.stack`, which pulls in the config loader and pydantic (about 80 ms of
    the 300 ms budget of a query command).
    """
    import json

    from legible._procs import ProcRef

    try:
        state = json.loads(wt.state_file.read_text())
    except (OSError, ValueError):
        return None
    try:
        ref = ProcRef.from_dict(state.get("supervisor"))
    except (KeyError, TypeError, ValueError):
        return None
    if not (ref and ref.alive()):
        return None
    return dict(state.get("endpoints") or {})


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
        flush_collector(endpoints["otlp-http"])
    return str(url)


def flush_collector(collector_url: str, timeout: float = 2.0) -> bool:
    """Ask the collector to push its derived metrics and flush VictoriaMetrics now (``POST /flush``).

    Called before every PromQL query so what the agent just did is visible (read-your-writes). A
    collector that does not answer is not an error: the query then sees data up to about 2 s old.
    """
    import urllib.request

    req = urllib.request.Request(f"{collector_url.rstrip('/')}/flush", data=b"", method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback collector
            return bool(resp.status == 200)
    except OSError:
        return False
