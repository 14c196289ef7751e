"""Grafana dashboards for a stack, built with Grafana's own ``grafana-foundation-sdk`` (PyPI).

:func:`dashboards` returns the dashboard JSON models (https://grafana.com/docs/grafana/latest/dashboards/
build-dashboards/view-dashboard-json-model/) that :mod:`legible.services.grafana` provisions from
``.legible/config/grafana/dashboards/``; :func:`panel_queries` lists every panel's PromQL, which the tests
evaluate against a real VictoriaMetrics holding real span metrics. The series are the collector's derived
metrics (:mod:`legible.collector._metrics`) and the supervisor's (:mod:`legible.supervisor`):

* **RED per route**: requests/s, errors/s and p50/p95/p99 duration by ``span_name`` of server spans
  (``legible_spans_total``, ``legible_span_duration_seconds_bucket``);
* **startup per deploy**: ``legible_service_ready_seconds`` of the app by ``deploy`` (the label forwarding
  adds; a single series locally);
* **log lines by level**: ``legible_log_lines_total`` by ``level`` and ``service``.

The SDK is imported inside :func:`dashboards`; without it (``pip install grafana-foundation-sdk``) the
Grafana service is not planned and ``legible doctor`` says so.
"""

from __future__ import annotations

import json
from typing import Final

#: The datasource uid the provisioning file gives the stack's VictoriaMetrics.
DATASOURCE_UID: Final = "legible-vm"
_SERVER = 'span_kind="server"'
_RATE = "$__rate_interval"

#: ``(dashboard uid, title, [(panel title, unit, [(PromQL, legend)])])``; ``$__rate_interval`` is Grafana's.
DASHBOARDS: Final[list[tuple[str, str, list[tuple[str, str, list[tuple[str, str]]]]]]] = [
    (
        "legible-red",
        "legible: RED per route",
        [
            (
                "requests per route",
                "reqps",
                [(f"sum by (span_name) (rate(legible_spans_total{{{_SERVER}}}[{_RATE}]))", "{{span_name}}")],
            ),
            (
                "errors per route",
                "reqps",
                [
                    (
                        f'sum by (span_name) (rate(legible_spans_total{{{_SERVER},status_code="error"}}[{_RATE}]))',
                        "{{span_name}}",
                    )
                ],
            ),
            (
                "duration per route",
                "s",
                [
                    (
                        f"histogram_quantile(0.{q}, sum by (span_name, vmrange)"
                        f" (rate(legible_span_duration_seconds_bucket{{{_SERVER}}}[{_RATE}])))",
                        f"p{q} {{{{span_name}}}}",
                    )
                    for q in (50, 95, 99)
                ],
            ),
        ],
    ),
    (
        "legible-startup",
        "legible: startup per deploy",
        [
            (
                "app time to ready",
                "s",
                [('max by (deploy) (legible_service_ready_seconds{service="app"})', "deploy {{deploy}}")],
            ),
            ("stack time to ready", "s", [("max(legible_stack_ready_seconds)", "stack")]),
        ],
    ),
    (
        "legible-logs",
        "legible: log lines by level",
        [
            (
                "log lines per second by level",
                "short",
                [(f"sum by (level, service) (rate(legible_log_lines_total[{_RATE}]))", "{{service}} {{level}}")],
            ),
        ],
    ),
]


def panel_queries() -> list[tuple[str, str, str]]:
    """``[(dashboard uid, panel title, PromQL)]`` of every panel target, ``$__rate_interval`` as written."""
    return [(uid, title, expr) for uid, _, panels in DASHBOARDS for title, _, targets in panels for expr, _ in targets]


def dashboards(key: str) -> dict[str, str]:
    """The dashboards as JSON text by file name (``<uid>.json``), titled with the worktree key.

    Raises:
        ImportError: ``grafana-foundation-sdk`` is not installed.

    """
    from grafana_foundation_sdk.builders.dashboard import Dashboard
    from grafana_foundation_sdk.builders.prometheus import Dataquery
    from grafana_foundation_sdk.builders.timeseries import Panel
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import DataSourceRef

    out: dict[str, str] = {}
    for uid, title, panels in DASHBOARDS:
        board = Dashboard(f"{title} ({key})").uid(uid).tags(["legible", key]).refresh("5s").time("now-15m", "now")
        for ptitle, unit, targets in panels:
            panel = (
                Panel().title(ptitle).unit(unit).datasource(DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID))
            )
            for i, (expr, legend) in enumerate(targets):
                panel = panel.with_target(
                    Dataquery().expr(expr).legend_format(legend).ref_id(chr(ord("A") + i)).range()
                )
            board = board.with_panel(panel)
        out[f"{uid}.json"] = json.dumps(board.build(), cls=JSONEncoder, indent=1, sort_keys=True)
    return out
