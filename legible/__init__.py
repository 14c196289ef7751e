"""legible: make a running app legible to the coding agent that changes it.

The public API is what this module exports (``__all__``); ``_``-prefixed modules are internal. Heavy
libraries (DuckDB, Playwright, prometheus-api-client) are imported by the functions that need them, so
importing :mod:`legible` stays cheap. Errors and their exit codes: :mod:`legible._errors`.
"""

from __future__ import annotations

from legible._errors import (
    CheckFailed,
    ConfigError,
    LeaseConflict,
    LegibleError,
    NotReady,
    NotRunning,
    PrerequisiteMissing,
    UsageError,
)

#: Names loaded on first use (PEP 562), so ``import legible`` does not pay for pydantic and psutil.
_LAZY = {
    "LegibleConfig": "legible.config",
    "load_config": "legible.config",
    "down": "legible.stack",
    "gc": "legible.stack",
    "ps": "legible.stack",
    "read_state": "legible.stack",
    "status": "legible.stack",
    "up": "legible.stack",
    "Worktree": "legible.worktree",
    "find_worktree": "legible.worktree",
}


#: ``typing`` is imported for the type checker only (it costs every command ~3 ms of start, issue 12); mypy
#: treats a name ``TYPE_CHECKING`` as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'legible' has no attribute {name!r}")


__all__ = [
    "CheckFailed",
    "ConfigError",
    "LeaseConflict",
    "LegibleConfig",
    "LegibleError",
    "NotReady",
    "NotRunning",
    "PrerequisiteMissing",
    "UsageError",
    "Worktree",
    "down",
    "find_worktree",
    "gc",
    "load_config",
    "ps",
    "read_state",
    "status",
    "up",
]
