"""The browser: a headless Chromium per stack, driven over CDP (a pipe) by short ``legible browser`` commands.

Pieces:

* :mod:`legible.services.chromium` plans the ``chromium`` service (role ``browser``, after the app);
* :mod:`legible.browser.agent` is that service's process: Playwright launches Chromium (flags below) and
  talks CDP to it over a pipe; the agent keeps one tab, watches console and network
  (:mod:`legible.browser._observe`), and serves requests on a Unix socket with the operations of
  :mod:`legible.browser._ops`; :mod:`legible.browser._common` holds what they and journeys share;
* :mod:`legible.browser.client` sends one request per ``legible browser ...`` call;
* :mod:`legible.browser.journey` runs journeys (steps from ``legible.toml`` or a script) with W3C trace
  context, and :mod:`legible.browser._video` turns a recording into MP4, GIF and poster.

Chromium flags (``chromium --help`` and https://peter.sh/experiments/chromium-command-line-switches/):
headless (``--headless=new``), no sandbox when root (a container has no user namespaces for it), no GPU, no
background traffic (component updates, sync, first-run, default apps), CDP over a pipe and no DevTools
TCP port (a DevTools port runs arbitrary code for any local process; with ``[stack] cdp_port = true`` one is
opened, on ``127.0.0.1`` only), the profile and temp files under ``.legible/tmp`` and stderr quiet
below fatal. Crash dumps go to
``.legible/browser/crash`` (``BREAKPAD_DUMP_LOCATION``) rather than ``~/.config``. Not
``--disable-crashpad-for-testing``: with Debian's Chromium 156 it makes the network service crash on every
navigation ("FD ownership violation"); the crashpad handlers it starts exit with Chromium.

Frames come at Chromium's display rate (60 Hz), so a click waits for Playwright's "stable" check (the same
box in two consecutive animation frames) and a screenshot for a painted frame. Not
``--disable-frame-rate-limit`` (frames back to back) nor ``--disable-gpu-vsync`` (issue 12,
``benchmarks/bench_browser_frames.py``, 2026-11-29): the first cut a warm screenshot from 35 to 25 ms and a
click not at all (44 against 50 ms, within this shared machine's noise), but with one CSS spinner on the page
Chromium then used 17.4 CPU seconds per 10 s (1.7 cores; 0.7 s at 60 Hz; an idle page 0.1 s either way),
and twenty stacks share two cores; the second changed neither figure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["CHROMIUM_NAMES", "chromium_args", "chromium_env", "find_chromium"]

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


def chromium_args(cdp_port: int | None = None) -> list[str]:
    """Chromium flags for a stack, beyond Playwright's own (see the module docstring for why each flag).

    Playwright adds ``--remote-debugging-pipe``, ``--user-data-dir``, ``--headless`` and (as root) ``--no-sandbox``
    itself.

    Args:
        cdp_port: also listen for CDP on ``127.0.0.1:cdp_port`` (``[stack] cdp_port = true``); ``None``: the
            pipe only, no TCP listener.

    """
    args = [
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
        "--window-size=1280,800",
    ]
    if cdp_port:
        args += ["--remote-debugging-address=127.0.0.1", f"--remote-debugging-port={int(cdp_port)}"]
    return args


def chromium_env(browser_dir: Path, tmp_dir: Path) -> dict[str, str]:
    """The environment of Chromium: the agent's (``LEGIBLE_STACK`` included), with its files under ``.legible/``.

    Args:
        browser_dir: ``.legible/browser``: crash dumps (``BREAKPAD_DUMP_LOCATION``) and config
            (``XDG_CONFIG_HOME``) go under it.
        tmp_dir: ``TMPDIR``, ``.legible/tmp`` (:func:`legible.browser.client.browser_tmp_dir`): Chromium's
            ``org.chromium.Chromium.*`` scratch folders and shared-memory files (``--disable-dev-shm-usage``).

    """
    env = dict(os.environ)
    env["BREAKPAD_DUMP_LOCATION"] = str(browser_dir / "crash")
    env["XDG_CONFIG_HOME"] = str(browser_dir / "config")
    for name in ("TMPDIR", "TMP", "TEMP"):
        env[name] = str(tmp_dir)
    return env
