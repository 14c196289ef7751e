"""Post a proof summary as one sticky pull-request comment with the ``gh`` CLI.

The comment is found by the hidden marker :data:`legible.proof.MARKER` and updated in place, so a PR has
one legible comment however many runs there were. GitHub REST endpoints used (through ``gh api``): list
issue comments, create an issue comment, update an issue comment
(https://docs.github.com/en/rest/issues/comments).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from legible._errors import PrerequisiteMissing, UsageError


def _gh(*args: str, cwd: Path) -> str:
    out = subprocess.run(["gh", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        msg = (out.stderr or out.stdout).strip().splitlines()
        raise UsageError(
            f"gh {args[0]} failed: {msg[-1] if msg else 'exit ' + str(out.returncode)}",
            hint="run the same gh command by hand to see why",
        )
    return out.stdout.strip()


def with_media_base(text: str, base: str) -> str:
    """Point the summary's relative links (``](charts/latency.png)``) at ``base`` (where the bundle is hosted).

    ``gh`` cannot upload images to a comment, so an orchestrator that hosts the bundle (an artifact store,
    a static site) passes its URL; absolute links are left alone.
    """
    base = base.rstrip("/") + "/"
    return re.sub(r"\]\((?![a-z][a-z0-9+.-]*:|/|#)([^)\s]+)\)", lambda m: f"]({base}{m.group(1)})", text)


def post_summary(
    summary: Path, *, cwd: Path, pr: int | None = None, marker: str, media_base: str | None = None
) -> dict[str, Any]:
    """Create or update the PR comment holding ``marker`` with the text of ``summary``.

    With ``media_base``, relative links to the bundle's charts, GIFs and videos point there
    (:func:`with_media_base`); the posted text is written beside the summary as ``summary.posted.md``.

    Returns:
        ``{"pr": int, "repo": "owner/name", "comment_id": int, "action": "created" | "updated"}``.

    Raises:
        PrerequisiteMissing: ``gh`` is not installed or not authenticated (the hint says what to run).
        UsageError: no pull request for the current branch (and no ``pr``), or a ``gh`` call failed.
    """
    if shutil.which("gh") is None:
        raise PrerequisiteMissing(
            "gh (the GitHub CLI) is not installed",
            hint="install it (apt-get install gh), run `gh auth login`, then retry --post",
        )
    auth = subprocess.run(["gh", "auth", "status"], cwd=cwd, capture_output=True, text=True, check=False)
    if auth.returncode != 0:
        raise PrerequisiteMissing(
            "gh is not authenticated", hint="run `gh auth login` (or set GH_TOKEN), then retry --post"
        )
    repo = _gh("repo", "view", "--json", "nameWithOwner", "-q", ".nameWithOwner", cwd=cwd)
    if pr is None:
        found = subprocess.run(
            ["gh", "pr", "view", "--json", "number", "-q", ".number"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
        )
        if found.returncode != 0 or not found.stdout.strip().isdigit():
            raise UsageError("no pull request for this branch", hint="open one, or pass --pr N")
        pr = int(found.stdout.strip())
    raw = _gh("api", "--paginate", f"repos/{repo}/issues/{pr}/comments", cwd=cwd)
    comments: list[dict[str, Any]] = []
    for chunk in raw.replace("][", "]\n[").splitlines():
        if chunk.strip():
            comments += json.loads(chunk)
    if media_base:
        posted = summary.with_name("summary.posted.md")
        posted.write_text(with_media_base(summary.read_text(), media_base))
        summary = posted
    mine = [c for c in comments if marker in str(c.get("body", ""))]
    if mine:
        cid = int(mine[0]["id"])
        _gh("api", "-X", "PATCH", f"repos/{repo}/issues/comments/{cid}", "-F", f"body=@{summary}", cwd=cwd)
        return {"pr": pr, "repo": repo, "comment_id": cid, "action": "updated"}
    made = json.loads(_gh("api", f"repos/{repo}/issues/{pr}/comments", "-F", f"body=@{summary}", cwd=cwd))
    return {"pr": pr, "repo": repo, "comment_id": int(made["id"]), "action": "created"}
