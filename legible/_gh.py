"""Post a proof summary as one sticky pull-request comment with the ``gh`` CLI.

The comment is found by the hidden marker :data:`legible.proof.MARKER` (``gh api --paginate --jq`` selects
the ids of the comments whose body contains it; gh applies the filter to every page, so no page boundary
or body text can confuse the lookup), so a PR has one legible comment however many runs there were.

Two ways, chosen by ``gh --version``:

* gh 2.99 or newer uploads files itself: ``gh pr comment PR --body-file F --attach PATH`` (once per file)
  rewrites each ``](PATH)`` reference of the body to the uploaded asset. The summary's poster, GIFs and
  charts are attached and show inline; an earlier legible comment is deleted once the new one exists.
* Older gh cannot upload: the comment is updated in place (``PATCH``), and ``--media-base URL`` (where
  the orchestrator hosts the bundle) makes its relative links absolute.

GitHub REST endpoints used through ``gh api``: list, create, update and delete issue comments
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


#: A relative Markdown link target: ``](charts/latency.png)`` (not ``https:``, ``/abs`` or ``#anchor``).
_RELATIVE_LINK = re.compile(r"\]\((?![a-z][a-z0-9+.-]*:|/|#)([^)\s]+)\)")
#: gh's first version with ``--attach`` on ``gh pr comment``.
ATTACH_SINCE = (2, 99)
#: What is attached (GitHub renders these inline) and the size GitHub accepts for an image, in bytes.
ATTACH_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")
ATTACH_MAX_BYTES = 10 * 1024 * 1024


def with_media_base(text: str, base: str, keep: frozenset[str] = frozenset()) -> str:
    """Point the summary's relative links (``](charts/latency.png)``) at ``base`` (where the bundle is hosted).

    An orchestrator that hosts the bundle (an artifact store, a static site) passes its URL; absolute
    links, and the relative ones in ``keep`` (uploaded as attachments instead), are left alone.
    """
    base = base.rstrip("/") + "/"
    return _RELATIVE_LINK.sub(lambda m: m.group(0) if m.group(1) in keep else f"]({base}{m.group(1)})", text)


def gh_version(cwd: Path) -> tuple[int, int]:
    """``(major, minor)`` of the installed gh (``gh version 2.99.0 (2026-10-01)``); ``(0, 0)`` if unknown."""
    out = subprocess.run(["gh", "--version"], cwd=cwd, capture_output=True, text=True, check=False)
    m = re.search(r"gh version (\d+)\.(\d+)", out.stdout)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def attachable(summary: Path) -> list[str]:
    """The relative links of ``summary`` to images of its bundle that gh can attach, in order, once each."""
    found: list[str] = []
    for target in _RELATIVE_LINK.findall(summary.read_text()):
        path = summary.parent / target
        if (
            target not in found
            and path.suffix.lower() in ATTACH_SUFFIXES
            and path.is_file()
            and path.stat().st_size <= ATTACH_MAX_BYTES
        ):
            found.append(target)
    return found


def find_comments(repo: str, pr: int, marker: str, cwd: Path) -> list[int]:
    """Ids of the PR's comments whose body contains ``marker``, oldest first (``gh api --paginate --jq``)."""
    jq = f'.[] | select((.body // "") | contains({json.dumps(marker)})) | .id'
    out = _gh("api", "--paginate", "--jq", jq, f"repos/{repo}/issues/{pr}/comments", cwd=cwd)
    return [int(line) for line in out.split() if line.strip().isdigit()]


def post_summary(
    summary: Path, *, cwd: Path, pr: int | None = None, marker: str, media_base: str | None = None
) -> dict[str, Any]:
    """Create or update the PR comment holding ``marker`` with the text of ``summary``.

    With gh 2.99 or newer the bundle's images are attached (see the module docstring); otherwise, and for
    what is not attached, ``media_base`` makes relative links point there (:func:`with_media_base`). The
    posted text is written beside the summary as ``summary.posted.md``.

    Returns:
        ``{"pr": int, "repo": "owner/name", "comment_id": int | None, "action": "created" | "updated" |
        "replaced", "attached": [relative path...]}``.

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
    mine = find_comments(repo, pr, marker, cwd)
    if gh_version(cwd) >= ATTACH_SINCE:
        files = attachable(summary)
        posted = summary.with_name("summary.posted.md")
        text = summary.read_text()
        posted.write_text(with_media_base(text, media_base, frozenset(files)) if media_base else text)
        attach = [a for f in files for a in ("--attach", f)]
        url = _gh("pr", "comment", str(pr), "--body-file", posted.name, *attach, cwd=summary.parent)
        m = re.search(r"issuecomment-(\d+)", url)
        for old in mine:  # the new comment exists: drop the earlier ones so the PR keeps one
            _gh("api", "-X", "DELETE", f"repos/{repo}/issues/comments/{old}", cwd=cwd)
        return {
            "pr": pr,
            "repo": repo,
            "comment_id": int(m.group(1)) if m else None,
            "action": "replaced" if mine else "created",
            "attached": files,
        }
    if media_base:
        posted = summary.with_name("summary.posted.md")
        posted.write_text(with_media_base(summary.read_text(), media_base))
        summary = posted
    if mine:
        cid = mine[0]
        _gh("api", "-X", "PATCH", f"repos/{repo}/issues/comments/{cid}", "-F", f"body=@{summary}", cwd=cwd)
        return {"pr": pr, "repo": repo, "comment_id": cid, "action": "updated", "attached": []}
    made = json.loads(_gh("api", f"repos/{repo}/issues/{pr}/comments", "-F", f"body=@{summary}", cwd=cwd))
    return {"pr": pr, "repo": repo, "comment_id": int(made["id"]), "action": "created", "attached": []}
