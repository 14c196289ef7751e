"""Worktree identity: the git worktree root, its key, and its ``.legible/`` state directory.

The key is ``<basename>-<first 8 hex of sha256(realpath)>`` (ARCHITECTURE.md, "Words"): stable for a path,
different for two worktrees of one repository, readable in ``legible ps``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from legible._errors import UsageError

STATE_DIRNAME = ".legible"


def worktree_key(root: Path) -> str:
    """Return the key of the worktree at ``root``: ``<basename>-<8 hex of sha256(realpath)>``."""
    real = os.path.realpath(root)
    digest = hashlib.sha256(real.encode()).hexdigest()[:8]
    return f"{os.path.basename(real)}-{digest}"


@dataclass(frozen=True)
class Worktree:
    """One git worktree and the paths legible keeps inside it.

    Attributes:
        root: the worktree root (``git rev-parse --show-toplevel``), resolved.
        key: see :func:`worktree_key`.

    """

    root: Path
    key: str

    @property
    def state_dir(self) -> Path:
        """``<root>/.legible``: state.json, env, logs/, data/, browser/, proof/."""
        return self.root / STATE_DIRNAME

    @property
    def logs_dir(self) -> Path:
        """``<root>/.legible/logs``: one ``<service>.log`` per service."""
        return self.state_dir / "logs"

    @property
    def data_dir(self) -> Path:
        """``<root>/.legible/data``: the stores (VictoriaMetrics data, the DuckDB file)."""
        return self.state_dir / "data"

    @property
    def state_file(self) -> Path:
        """``<root>/.legible/state.json``, written by the supervisor."""
        return self.state_dir / "state.json"

    @property
    def env_file(self) -> Path:
        """``<root>/.legible/env``: a dotenv of the stack's endpoints for the agent's shell."""
        return self.state_dir / "env"

    def ensure_state_dir(self) -> Path:
        """Create ``.legible/`` (mode 0700) and list it in the repository's ``info/exclude``.

        Raises:
            OSError: it cannot be created or made private (read-only, not a directory, not ours).

        """
        from legible._files import private_dir

        private_dir(self.state_dir)
        _exclude_from_git(self.root)
        return self.state_dir


def find_worktree(start: Path | None = None) -> Worktree:
    """Return the git worktree that contains ``start`` (default: the current directory).

    The common case is answered without running git (a git process costs 5-10 ms, a fair part of a warm
    ``legible browser`` call): :func:`_walk_to_git`. Whatever that walk cannot answer as git would (git's
    environment variables, a ``.git`` that is not ours or not a repository, a file-system boundary) goes to
    ``git rev-parse --show-toplevel``.

    Raises:
        UsageError: ``start`` is not inside a git worktree (or git is missing).

    """
    start = Path(start or Path.cwd())
    root = _walk_to_git(start)
    if root is not None:
        return Worktree(root=root, key=worktree_key(root))
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=start,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError as exc:
        raise UsageError("git is not installed", hint="install git (apt-get install git)") from exc
    if out.returncode != 0 or not out.stdout.strip():
        raise UsageError(
            f"{start} is not inside a git worktree",
            hint="cd into your repository, or run `git init` first",
        )
    root = Path(os.path.realpath(out.stdout.strip()))
    return Worktree(root=root, key=worktree_key(root))


#: Git's variables that change where it finds the repository or the worktree (git(1), "Environment variables").
_GIT_LOCATION_ENV = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
    "GIT_COMMON_DIR",
)


def _walk_to_git(start: Path) -> Path | None:
    """The worktree root git would find from ``start`` by its discovery rules, or ``None`` to ask git itself.

    Git's discovery (git(1), ``GIT_CEILING_DIRECTORIES``; ``setup.c``): from the directory up, the first one
    holding ``.git``, a repository directory or a ``gitdir:`` file (linked worktrees, submodules), is the
    worktree root. Answered here only when nothing could make git answer otherwise: none of
    :data:`_GIT_LOCATION_ENV` is set, ``start`` is not inside a ``.git`` directory, the walk stays on one file
    system, and the ``.git`` found is owned by this user (git's ``safe.directory`` check) and looks like a
    repository (a ``HEAD`` file, or a file starting ``gitdir:``). A ``core.worktree`` setting is not read:
    such a repository's ``.git`` holds a ``config`` naming it, and that case goes to git too.
    """
    if any(os.environ.get(name) for name in _GIT_LOCATION_ENV):
        return None
    try:
        here = Path(os.path.realpath(start))
        if ".git" in here.parts:
            return None
        dev = here.stat().st_dev
        for d in (here, *here.parents):
            st = d.stat()
            if st.st_dev != dev:
                return None
            dot = d / ".git"
            try:
                info = dot.lstat()
            except FileNotFoundError:
                continue
            if info.st_uid != os.getuid():
                return None
            if dot.is_dir():
                if not (dot / "HEAD").is_file() or "worktree" in _read_small(dot / "config"):
                    return None
            elif not _read_small(dot).startswith("gitdir:"):
                return None
            return d
    except OSError:
        return None
    return None


def _read_small(path: Path) -> str:
    """The first 4 KiB of ``path`` as text, or ``""`` when it cannot be read."""
    try:
        with path.open("rb") as fh:
            return fh.read(4096).decode("utf-8", "replace")
    except OSError:
        return ""


def _exclude_from_git(root: Path) -> None:
    out = subprocess.run(
        ["git", "rev-parse", "--git-path", "info/exclude"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        return
    exclude = Path(out.stdout.strip())
    if not exclude.is_absolute():
        exclude = root / exclude
    line = f"/{STATE_DIRNAME}/"
    existing = exclude.read_text().splitlines() if exclude.exists() else []
    if line in existing:
        return
    exclude.parent.mkdir(parents=True, exist_ok=True)
    with exclude.open("a") as fh:
        if existing and existing[-1] != "":
            fh.write("\n")
        fh.write(f"{line}\n")
