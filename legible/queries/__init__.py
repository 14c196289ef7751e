r"""Queries over a worktree's signals: the core of ``legible logs``, ``legible traces``, ``legible metrics``.

Usable without the CLI; every function takes a :class:`legible.store.Store` (logs, spans) or a
VictoriaMetrics URL (metrics), returns plain dataclasses with a ``to_json()`` (the ``--json`` documents),
and has a ``render_*`` companion producing the bounded text lines the CLI prints. Each command is one call
that checks its option values and returns a ``View(doc, lines)``: ``logs.logs_view``, ``logs.follow_lines``,
``traces.traces_view``, ``traces.trace_view``, ``metrics.metrics_view``. Errors are the
:mod:`legible._errors` classes (bad input is :class:`~legible._errors.UsageError`, exit 2).

Modules (heavy libraries, DuckDB and prometheus-api-client, are imported inside the functions):

* :mod:`legible.queries.logs`: groups of similar lines, raw lines, follow.
* :mod:`legible.queries.traces`: recent or slowest traces, one trace as a folded tree with its logs.
* :mod:`legible.queries.metrics`: PromQL instant and range queries, metric listing, compact rendering.
* :mod:`legible.queries.sql`: the read-only ``--sql`` escape hatch.

Example::

    from legible.queries import logs, worktree_store
    res = logs.log_groups(worktree_store(), logs.make_filter(since="15m", level="error"))
    print("\n".join(logs.render_groups(res)))
"""

from legible.queries._fmt import fmt_ms, parse_duration, parse_time
from legible.queries.source import metrics_url, store_opener, worktree_store

__all__ = ["fmt_ms", "metrics_url", "parse_duration", "parse_time", "store_opener", "worktree_store"]
