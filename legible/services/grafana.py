"""The ``grafana`` service kind: a Grafana per worktree where one is installed (not in Debian).

Planned when a ``grafana`` (``grafana server``) or ``grafana-server`` binary is on PATH or in legible's tool
cache (``<cache>/grafana/bin/``) and ``grafana-foundation-sdk`` imports; otherwise the stack runs without it
and ``legible doctor`` says how to get it. It listens on ``127.0.0.1:<grafana port>`` (the lease's slot),
anonymous users are read-only viewers and the login form is off. Settings are Grafana's
``GF_<SECTION>_<KEY>`` environment overrides (https://grafana.com/docs/grafana/latest/setup-grafana/
configure-grafana/#override-configuration-with-environment-variables), so no ini file is pasted together;
provisioning files (https://grafana.com/docs/grafana/latest/administration/provisioning/) are rendered into
``.legible/config/grafana/provisioning/`` as JSON (a subset of YAML, written by ``json.dumps``): the stack's
VictoriaMetrics as a Prometheus datasource (uid :data:`legible.grafana.DATASOURCE_UID`) and a file provider
for the dashboards of :func:`legible.grafana.dashboards` in ``.legible/config/grafana/dashboards/``. Data
and logs go to ``.legible/data/grafana/``. Role ``ui``: it starts after the app; nothing waits for it.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from legible._paths import tool_cache
from legible.services.base import Component, Probe, ServicePlan

if TYPE_CHECKING:
    from legible.services.context import PlanContext

INSTALL = (
    "optional: not in Debian; Grafana's apt repository (https://grafana.com/docs/grafana/latest/setup-grafana/"
    "installation/debian/) and pip install grafana-foundation-sdk"
)
HOMEPATHS = ("/usr/share/grafana", "/usr/local/share/grafana")


def find_grafana() -> Path | None:
    """Return ``grafana`` or ``grafana-server`` on PATH, else in ``<tool cache>/grafana/bin/``, else ``None``."""
    for name in ("grafana", "grafana-server"):
        found = shutil.which(name)
        if found:
            return Path(found)
    for name in ("grafana", "grafana-server"):
        cached = tool_cache() / "grafana" / "bin" / name
        if cached.is_file():
            return cached
    return None


def provisioning(vm_url: str, dashboards_dir: Path) -> dict[str, str]:
    """The provisioning files by path relative to ``provisioning/``: datasource and dashboard provider."""
    from legible.grafana import DATASOURCE_UID

    datasources = {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "VictoriaMetrics (legible)",
                "type": "prometheus",
                "uid": DATASOURCE_UID,
                "access": "proxy",
                "url": vm_url,
                "isDefault": True,
                "editable": False,
            }
        ],
    }
    providers = {
        "apiVersion": 1,
        "providers": [
            {
                "name": "legible",
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "options": {"path": str(dashboards_dir)},
            }
        ],
    }
    return {
        "datasources/legible.yaml": json.dumps(datasources, indent=1),
        "dashboards/legible.yaml": json.dumps(providers, indent=1),
    }


class GrafanaService:
    """The ``grafana`` service kind (see the module docstring)."""

    name = "grafana"

    def detect(self) -> Component:
        """Find Grafana (and the SDK that builds its dashboards); never required."""
        path = find_grafana()
        if path is not None and importlib.util.find_spec("grafana_foundation_sdk") is None:
            return Component(self.name, None, "", "pip install grafana-foundation-sdk", required=False)
        version = ""
        if path is not None:
            import subprocess

            try:
                out = subprocess.run([str(path), "-v"], capture_output=True, text=True, timeout=15, check=False)
                version = (
                    (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else ""
                )
            except (OSError, subprocess.TimeoutExpired):
                version = ""
        return Component(self.name, path, version, INSTALL, required=False)

    def plan(self, ctx: PlanContext) -> ServicePlan | None:
        """Plan Grafana when it and the SDK are installed, else ``None`` (never an error: it is optional)."""
        binary = find_grafana()
        if binary is None and ctx.config.stack.backend == "docker":
            binary = Path("grafana")  # the official image runs it
        if binary is None or importlib.util.find_spec("grafana_foundation_sdk") is None:
            return None
        from legible.grafana import dashboards

        port = ctx.ports[self.name]
        base = ctx.config_dir / "grafana"
        for name, text in dashboards(ctx.worktree.key).items():
            ctx.add_file(f"grafana/dashboards/{name}", text)
        vm_url = f"http://127.0.0.1:{ctx.ports['victoria-metrics']}"
        for rel, text in provisioning(vm_url, base / "dashboards").items():
            ctx.add_file(f"grafana/provisioning/{rel}", text)
        data = ctx.worktree.data_dir / "grafana"
        argv = [str(binary), *(["server"] if binary.name == "grafana" else [])]
        home = next((h for h in HOMEPATHS if Path(h).is_dir()), None)
        if home is not None:
            argv.append(f"--homepath={home}")
        env = ctx.env_for(self.name, port)
        env.update(
            {
                "GF_SERVER_HTTP_ADDR": "127.0.0.1",
                "GF_SERVER_HTTP_PORT": str(port),
                "GF_PATHS_DATA": str(data),
                "GF_PATHS_LOGS": str(data / "log"),
                "GF_PATHS_PLUGINS": str(data / "plugins"),
                "GF_PATHS_PROVISIONING": str(base / "provisioning"),
                "GF_AUTH_ANONYMOUS_ENABLED": "true",
                "GF_AUTH_ANONYMOUS_ORG_ROLE": "Viewer",
                "GF_AUTH_DISABLE_LOGIN_FORM": "true",
                "GF_USERS_ALLOW_SIGN_UP": "false",
                "GF_ANALYTICS_REPORTING_ENABLED": "false",
                "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
                "GF_NEWS_NEWS_FEED_ENABLED": "false",
                "GF_LOG_MODE": "console",
            }
        )
        return ServicePlan(
            name=self.name,
            role="ui",
            argv=argv,
            cwd=str(ctx.worktree.root),
            env=env,
            probe=Probe("http", f"http://127.0.0.1:{port}/api/health"),
            ready_timeout=60.0,
            depends_on=["victoria-metrics"],
            port=port,
            log=str(ctx.worktree.logs_dir / f"{self.name}.log"),
            stop_timeout=5.0,
        )
