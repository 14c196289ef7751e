"""Deploy windows and first-line warnings for the query commands.

Deploy windows serve ``logs``, ``traces``, ``check`` and ``metrics``; the warnings (stale code, a collector not
ready) are the first lines of ``logs``, ``traces`` and ``check``.
"""

from __future__ import annotations

from typing import Any


def deploy_window(since: str | None, until: str | None) -> tuple[str | None, str | None, str | None, str | None]:
    """``--since deploy|deploy~N|deploy:N`` -> ISO bounds and labels (see legible.deploys.window_args).

    Raises:
        UsageError: an unknown deploy, or not in a git worktree.

    """
    from legible.deploys import is_ref, window_args

    if not is_ref(since):
        return since, until, None, None
    from legible.worktree import find_worktree

    return window_args(since, until, find_worktree().state_dir)


def label(flt: Any, since_label: str | None, until_label: str | None) -> None:
    """Show the deploy labels instead of ISO times in ``flt``'s summary line."""
    if not since_label:
        return
    if hasattr(flt, "until_text"):
        flt.since_text, flt.until_text = since_label, until_label
    else:  # the filter's summary has no "until": say it in the start's words
        flt.since_text = f"{since_label} (until {until_label})" if until_label else since_label


def warnings(doc: dict[str, Any] | None, as_json: bool) -> None:
    """Say the query's warnings (:func:`legible.deploys.warning_lines`).

    As the first lines of the text, or with ``--json`` as ``doc``'s ``warnings`` (``doc`` ``None``: a document
    without that field; nothing is said in JSON).
    """
    from legible.deploys import warning_lines

    lines = warning_lines()
    if as_json:
        if doc is not None:
            doc["warnings"] = lines
    elif lines:
        print("\n".join(lines))
