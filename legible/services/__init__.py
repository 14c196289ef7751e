"""Service kinds: the one place where built-in services are registered.

:data:`BUILTIN` lists the infrastructure kinds in start order; user services (the app and extras from
``legible.toml``) are planned by :mod:`legible.plan` from the config. See :mod:`legible.services.base`
for the interface.
"""

from __future__ import annotations

from legible.services.base import Component, Probe, ServiceKind, ServicePlan
from legible.services.chromium import ChromiumService
from legible.services.collector import CollectorService
from legible.services.context import PlanContext
from legible.services.grafana import GrafanaService
from legible.services.vector import VectorService
from legible.services.victoria_metrics import VictoriaMetrics
from legible.services.vmagent import VmAgent

#: Built-in service kinds, in start order. User services depend on all of them (stores and collector first).
BUILTIN: list[ServiceKind] = [
    VictoriaMetrics(),
    CollectorService(),
    VectorService(),
    ChromiumService(),
    VmAgent(),
    GrafanaService(),
]

__all__ = ["BUILTIN", "Component", "PlanContext", "Probe", "ServiceKind", "ServicePlan"]
