"""Deploy windows and the stale-code warning for the query commands (``logs``, ``traces``, ``check``, ``metrics``)."""

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
    if since_label:
        flt.since_text = since_label
        if hasattr(flt, "until_text"):
            flt.until_text = until_label


def stale_warning(as_json: bool) -> None:
    """Print the stale-code warning as the first line of text output (nothing with ``--json`` or when current)."""
    if as_json:
        return
    from legible.deploys import stale_line

    line = stale_line()
    if line:
        print(line)
