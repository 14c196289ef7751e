"""The ``chromium`` service kind: a headless Chromium per stack behind the browser agent (role ``browser``).

Planned only when the stack runs the browser (``[stack] browser = true`` or ``legible up --browser``). The
process is ``python -m legible.browser.agent``, which launches the system Chromium through Playwright with
CDP over a pipe (no TCP port; ``[stack] cdp_port = true`` also opens ``127.0.0.1:<chromium port>``) and
serves ``legible browser`` requests on a Unix socket. Its ``TMPDIR`` is ``.legible/tmp``
(:func:`legible.browser.client.browser_tmp_dir`; Chromium's and Playwright's temp files), removed with the
profile when the agent stops and by ``legible down``. It is ready
when it prints ``legible-browser ready``, at once: the agent launches Chromium at the first browser call
(``legible status`` shows the service ``idle`` until then; with ``cdp_port`` it launches at start).
It depends on the app, so it starts once the app is ready.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from legible._errors import PrerequisiteMissing
from legible.browser import find_chromium
from legible.browser.client import browser_tmp_dir
from legible.services.base import Component, Probe, ServicePlan

if TYPE_CHECKING:
    from legible.services.context import PlanContext

INSTALL = "sudo apt-get install chromium  (Debian/Ubuntu; or set $LEGIBLE_CHROMIUM to a Chrome/Chromium binary)"
PLAYWRIGHT_INSTALL = "pip install 'legible[browser]'  (Playwright for Python; its browsers are not needed)"


class ChromiumService:
    """The ``chromium`` service kind (see the module docstring)."""

    name = "chromium"

    def detect(self) -> Component:
        """Find the system Chromium and ask it for ``--version``; not required by the default stack."""
        import subprocess

        path = find_chromium()
        version = ""
        if path is not None:
            try:
                out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=10, check=False)
                version = next((ln for ln in out.stdout.splitlines() if "hrom" in ln), "").strip()
            except (OSError, subprocess.TimeoutExpired):
                version = ""
        return Component(self.name, path, version, INSTALL, required=False)

    def plan(self, ctx: PlanContext) -> ServicePlan | None:
        """Plan the browser agent (CDP over a pipe; a loopback CDP port with ``cdp_port``), or ``None``.

        Raises:
            PrerequisiteMissing: no Chromium, or Playwright for Python is not installed.

        """
        if not ctx.browser:
            return None
        binary = find_chromium()
        if binary is None:
            raise PrerequisiteMissing("chromium is not installed (the stack's browser)", hint=f"run: {INSTALL}")
        import importlib.util

        if importlib.util.find_spec("playwright") is None:
            raise PrerequisiteMissing("playwright is not installed (it drives the browser)", hint=PLAYWRIGHT_INSTALL)
        cdp = bool(ctx.config.stack.cdp_port)
        port = ctx.ports[self.name] if cdp else 0
        argv = [
            sys.executable,
            "-m",
            "legible.browser.agent",
            f"--state-dir={ctx.worktree.state_dir}",
            f"--app-url=http://127.0.0.1:{ctx.ports['app']}",
            f"--otlp-url=http://127.0.0.1:{ctx.ports['otlp-http']}",
            f"--worktree={ctx.worktree.key}",
            f"--chromium={binary}",
            *([f"--cdp-port={port}"] if cdp else []),
        ]
        tmp = browser_tmp_dir(ctx.worktree.state_dir)
        env = ctx.env_for(self.name, port)
        for k in [k for k in env if k.startswith("OTEL_")]:
            del env[k]  # the agent exports its own signals (service "browser"); no SDK auto-configuration
        env.update({"TMPDIR": str(tmp), "TMP": str(tmp), "TEMP": str(tmp)})
        return ServicePlan(
            name=self.name,
            role="browser",
            argv=argv,
            cwd=str(ctx.worktree.root),
            env=env,
            probe=Probe("log", r"^legible-browser ready"),
            ready_timeout=30.0,
            depends_on=["app"],
            port=port,
            log=str(ctx.worktree.logs_dir / f"{self.name}.log"),
            stop_timeout=3.0,  # the agent flushes its logs, kills Chromium and removes its profile (~1 s)
        )
