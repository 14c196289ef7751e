"""Machine-wide directories (XDG Base Directory spec): the lease registry and the tool cache.

``$XDG_STATE_HOME/legible`` (default ``~/.local/state/legible``) holds ``leases.json`` and its lock;
``$XDG_CACHE_HOME/legible/tools`` (default ``~/.cache/legible/tools``) holds binaries that
``legible doctor --install`` unpacked without root. Tests point both variables at temporary directories.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable set on every service process; its value is the worktree key. ``legible gc``
#: finds orphans (even grandchildren of a dead supervisor) by it. (Here rather than in :mod:`legible._procs`,
#: which imports psutil, so the supervisor can start the collector before paying for that import.)
STACK_ENV = "LEGIBLE_STACK"
#: Environment variable set on every service process: the lease registry (``leases.json``) its stack is
#: in. ``legible gc`` only touches processes of its own registry, so a registry in another
#: ``XDG_STATE_HOME`` (another user setup, a test) is never reclaimed by mistake.
REGISTRY_ENV = "LEGIBLE_REGISTRY"


def state_home(create: bool = True) -> Path:
    """Return ``$XDG_STATE_HOME/legible`` (default ``~/.local/state/legible``), creating it unless told not to."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    path = Path(base) / "legible"
    if create:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)  # worktree paths of every stack: this user's only
    return path


def tool_cache() -> Path:
    """Return ``$XDG_CACHE_HOME/legible/tools`` (not created)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "legible" / "tools"
