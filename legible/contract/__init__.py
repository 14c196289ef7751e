"""The typed JSON contract: ``state.json``, ``plan.json`` and every ``--json`` document.

Agents and orchestrators read these documents more than anything else legible prints, so each has one
``TypedDict`` in :mod:`legible.contract.documents`, the functions that build it are annotated to return it
(mypy strict checks every construction site), and its JSON Schema (draft 2020-12,
https://json-schema.org/draft/2020-12) is generated from the type by ``scripts/gen_schemas.py`` into
``legible/schemas/<name>.v1.json`` (``legible.schemas.load(name)``).

Schema names follow one pattern: ``legible.<command>[-<subcommand>]/v1`` (``legible.metrics-list/v1``,
``legible.browser-record-start/v1``); ``documents.SCHEMAS`` maps every name legible emits to its type.

This module stays cheap (it imports :mod:`json` and :mod:`legible._procs` only): :func:`read_state`, the one
reader of ``state.json``, is on the path of ``legible status`` and every query. The document types are
imported from here under ``TYPE_CHECKING`` (``from legible.contract import StatusDoc``); at runtime,
``legible.contract.StatusDoc`` loads :mod:`legible.contract.documents` on first use.

Typical use::

    from legible.contract import read_state

    state = read_state(wt.state_file)  # StackState | None; ``alive`` and ``dead`` already worked out
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from legible.contract.documents import *  # noqa: F403  # every document type, for annotations
    from legible.contract.documents import StackState

__all__ = ["LIVE", "browser_schema", "read_state"]

#: Stack statuses of a stack whose supervisor still works on it.
LIVE = ("starting", "ready", "degraded")
#: What :func:`read_state` fills in for a key a ``state.json`` lacks (factories for the mutable ones).
_EMPTY: dict[str, Any] = {
    "key": "",
    "worktree": "",
    "error": "",
    "error_service": "",
    "supervisor": None,
    "started_at": 0.0,
    "ready_ms": None,
    "lease_base": 0,
    "ports": dict,
    "endpoints": dict,
    "config_hash": "",
    "services": dict,
}


def read_state(path: Path, *, stopped_is_final: bool = False) -> StackState | None:
    """Read ``state.json`` at ``path``; add ``alive``; a live status whose supervisor is gone becomes ``dead``.

    The one reader of ``state.json`` (stack, queries, checks, proof, journeys). It imports only
    :mod:`legible._procs` (psutil), never pydantic or the config loader, so query commands stay fast; and
    psutil only when there is a document to check.

    Args:
        path: the ``state.json`` file (``Worktree.state_file``).
        stopped_is_final: read a ``stopped`` document (the supervisor's last write, after it stopped every
            service) as not alive without asking the process table (no psutil import, ~10 ms): for the
            query commands, which only need to know that no collector answers any more. The lifecycle
            commands leave it false: they wait for the supervisor's exit itself.

    Returns:
        The :class:`StackState`, or ``None`` when the file is missing, unreadable or not a state document.

    """
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("status"), str):
        return None
    if not isinstance(raw.get("services", {}), dict) or not isinstance(raw.get("endpoints", {}), dict):
        return None
    if stopped_is_final and raw["status"] == "stopped":
        ref = None
    else:
        from legible._procs import ProcRef

        try:
            ref = ProcRef.from_dict(raw.get("supervisor"))
        except (KeyError, TypeError, ValueError):
            ref = None
    for key, empty in _EMPTY.items():  # a partial document (an older supervisor, a test) reads as unknowns
        raw.setdefault(key, empty() if callable(empty) else empty)
    raw["alive"] = bool(ref and ref.alive())
    if not raw["alive"] and raw.get("status") in (*LIVE, "stopping"):
        raw["status"] = "dead"
        raw["error"] = raw.get("error") or "the supervisor is gone (killed?); `legible up` starts it again"
    state: StackState = raw  # type: ignore[assignment]  # the supervisor's own document, read back
    return state


def browser_schema(op: str) -> str:
    """The schema name of browser operation ``op`` (``record.start`` -> ``legible.browser-record-start/v1``)."""
    return f"legible.browser-{op.replace('.', '-')}/v1"


def __getattr__(name: str) -> Any:
    """Load :mod:`legible.contract.documents` on first use of one of its names (``legible.contract.SCHEMAS``)."""
    import importlib

    documents = importlib.import_module("legible.contract.documents")
    try:
        return getattr(documents, name)
    except AttributeError:
        raise AttributeError(f"module 'legible.contract' has no attribute {name!r}") from None
