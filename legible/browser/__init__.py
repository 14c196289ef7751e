"""The browser: a headless Chromium per stack, driven over CDP by short ``legible browser`` commands.

Pieces:

* :mod:`legible.services.chromium` plans the ``chromium`` service (role ``browser``, after the app);
* :mod:`legible.browser.agent` is that service's process: it starts Chromium (flags below), keeps one
  Playwright connection and one tab, watches console and network, and serves requests on a Unix socket;
* :mod:`legible.browser.client` sends one request per ``legible browser ...`` call;
* :mod:`legible.browser.journey` runs journeys (steps from ``legible.toml`` or a script) with W3C trace
  context, and :mod:`legible.browser._video` turns a recording into MP4, GIF and poster.

Chromium flags (``chromium --help`` and https://peter.sh/experiments/chromium-command-line-switches/):
headless (``--headless=new``), no sandbox when root (a container has no user namespaces for it), no GPU, no
background traffic (component updates, sync, first-run, default apps), CDP on ``127.0.0.1`` only
(``--remote-debugging-address``: the DevTools port runs arbitrary code, it must never leave loopback), the
profile under ``.legible/browser/profile`` and stderr quiet below fatal. Crash dumps go to
``.legible/browser/crash`` (``BREAKPAD_DUMP_LOCATION``) rather than ``~/.config``. Not
``--disable-crashpad-for-testing``: with Debian's Chromium 156 it makes the network service crash on every
navigation ("FD ownership violation"); the crashpad handlers it starts exit with Chromium.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["CHROMIUM_NAMES", "chromium_argv", "chromium_env", "find_chromium"]

#: Executable names tried on PATH, in order.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> Path | None:
    """Return the system Chromium (``$LEGIBLE_CHROMIUM``, then PATH), or ``None``."""
    env = os.environ.get("LEGIBLE_CHROMIUM")
    if env and os.access(env, os.X_OK):
        return Path(env)
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def chromium_argv(binary: str | Path, port: int, profile: Path) -> list[str]:
    """The Chromium command line for a stack (see the module docstring for why each flag).

    Args:
        binary: the Chromium executable.
        port: the CDP port, bound on 127.0.0.1.
        profile: the user data directory.

    """
    argv = [
        str(binary),
        "--headless=new",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--mute-audio",
        "--password-store=basic",
        "--log-level=3",
        f"--user-data-dir={profile}",
        "--remote-debugging-address=127.0.0.1",
        f"--remote-debugging-port={port}",
        "--window-size=1280,800",
    ]
    if os.geteuid() == 0:
        argv.insert(1, "--no-sandbox")
    argv.append("about:blank")
    return argv


def chromium_env(browser_dir: Path) -> dict[str, str]:
    """The environment of Chromium: the agent's, with crash dumps and config kept under ``browser_dir``."""
    env = dict(os.environ)
    env["BREAKPAD_DUMP_LOCATION"] = str(browser_dir / "crash")
    env["XDG_CONFIG_HOME"] = str(browser_dir / "config")
    return env
