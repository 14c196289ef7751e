"""Worktree identity: the git worktree root, its key, and its ``.legible/`` state directory.

The key is ``<basename>-<first 8 hex of sha256(realpath)>`` (ARCHITECTURE.md, "Words"): stable for a path,
different for two worktrees of one repository, readable in ``legible ps``.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
from dataclasses import dataclass, field
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
        exclude: the repository's ``info/exclude`` file, absolute, when :func:`find_worktree` asked git for it
            in the same call (``None``: :meth:`ensure_state_dir` asks git). Not part of the identity.

    """

    root: Path
    key: str
    exclude: Path | None = field(default=None, compare=False, repr=False)

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
        _exclude_from_git(self.root, self.exclude)
        return self.state_dir


#: Environment variables that change how git finds the repository; with any set, git itself is asked.
_GIT_DISCOVERY_ENV = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_COMMON_DIR",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
)


def _is_git_dir(path: str) -> bool:
    """``path`` looks like a repository directory to git (``HEAD``, ``objects/``, ``refs/``)."""
    return (
        os.path.isfile(os.path.join(path, "HEAD"))
        and os.path.isdir(os.path.join(path, "objects"))
        and os.path.isdir(os.path.join(path, "refs"))
    )


def _plain_config(git_dir: str) -> bool:
    """The repository config at ``git_dir`` sets neither ``core.worktree`` nor ``core.bare = true``."""
    for name in ("config", "config.worktree"):
        try:
            with open(os.path.join(git_dir, name), encoding="utf-8", errors="replace") as fh:
                text = fh.read().lower()
        except FileNotFoundError:
            continue
        if "worktree" in text or re.search(r"^\s*bare\s*=\s*true\s*$", text, re.M):
            return False
    return True


def _toplevel_fast(start: Path) -> Path | None:
    """The worktree root containing ``start`` as git finds it, or ``None`` to ask git (see :func:`_discover`)."""
    found = _discover(start)
    return found[0] if found else None


def _discover(start: Path) -> tuple[Path, Path] | None:
    """``(worktree root, common git directory)`` for ``start`` as git's discovery finds them, or ``None`` to ask git.

    The common directory holds ``info/exclude``: ``.git`` itself, or for a linked worktree the directory its
    ``gitdir``'s ``commondir`` names (gitrepository-layout(5)).

    Reads the file system only (git's "discovery" of ``setup.c``, https://git-scm.com/docs/git#_git_discovery):
    walking up from ``start``, the first directory holding a ``.git`` directory (a repository) or a ``.git``
    file (``gitdir: ...``, a linked worktree) is the root. Every case where git could answer otherwise
    returns ``None``: a ``GIT_*`` discovery variable is set, a directory or ``.git`` is not owned by this user
    (git's ``safe.directory`` check), ``core.worktree``/``core.bare`` is configured, ``.git`` is a symbolic
    link, ``start`` is inside a repository directory or a bare repository, a file-system boundary is
    crossed, or nothing is found. Saves the ``git rev-parse`` process every query command paid (2-9 ms).
    """
    if any(name in os.environ for name in _GIT_DISCOVERY_ENV):
        return None
    try:
        here = os.path.realpath(start)
        if not os.path.isdir(here):
            return None
        uid = os.geteuid()
        dev = os.stat(here).st_dev
        while True:
            if os.path.basename(here) == ".git":
                return None
            dotgit = os.path.join(here, ".git")
            try:
                st = os.lstat(dotgit)
            except FileNotFoundError:
                st = None
            if st is not None:
                if st.st_uid != uid or os.stat(here).st_uid != uid:
                    return None
                if stat.S_ISDIR(st.st_mode):  # a repository's own worktree
                    dirs = [dotgit] if _is_git_dir(dotgit) else []
                elif stat.S_ISREG(st.st_mode):  # a linked worktree or a submodule: "gitdir: <path>"
                    with open(dotgit, encoding="utf-8", errors="replace") as fh:
                        line = fh.readline().strip()
                    git_dir = os.path.join(here, line.removeprefix("gitdir: "))
                    ok = line.startswith("gitdir: ") and os.path.isfile(os.path.join(git_dir, "HEAD"))
                    dirs = [git_dir] if ok else []
                    if ok and os.path.isfile(os.path.join(git_dir, "commondir")):
                        with open(os.path.join(git_dir, "commondir"), encoding="utf-8", errors="replace") as fh:
                            dirs.append(os.path.join(git_dir, fh.readline().strip()))
                else:
                    dirs = []
                if not dirs or not all(_plain_config(d) for d in dirs):
                    return None
                return Path(here), Path(os.path.normpath(dirs[-1]))
            if _is_git_dir(here):
                return None
            parent = os.path.dirname(here)
            if parent == here or os.stat(parent).st_dev != dev:
                return None
            here = parent
    except OSError:
        return None


def find_worktree(start: Path | None = None) -> Worktree:
    """Return the git worktree that contains ``start`` (default: the current directory).

    The root is found by reading the file system (:func:`_discover`) when that gives git's own answer
    for sure, else by ``git rev-parse --show-toplevel``.

    Raises:
        UsageError: ``start`` is not inside a git worktree (or git is missing).

    """
    start = Path(start or Path.cwd())
    found = _discover(start)
    if found is not None:
        root, common = found
        return Worktree(root=root, key=worktree_key(root), exclude=common / "info" / "exclude")
    try:
        out = subprocess.run(  # the exclude file too: `legible up` needs it, and one git run is enough
            ["git", "rev-parse", "--show-toplevel", "--git-path", "info/exclude"],
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
    lines = out.stdout.strip().splitlines()
    root = Path(os.path.realpath(lines[0]))
    exclude = start / lines[1] if len(lines) > 1 else None  # relative to the directory git ran in
    return Worktree(root=root, key=worktree_key(root), exclude=exclude)


def _exclude_from_git(root: Path, exclude: Path | None = None) -> None:
    if exclude is None:
        out = subprocess.run(
            ["git", "rev-parse", "--git-path", "info/exclude"],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            return
        exclude = root / out.stdout.strip()  # an absolute path stays as it is
    line = f"/{STATE_DIRNAME}/"
    existing = exclude.read_text().splitlines() if exclude.exists() else []
    if line in existing:
        return
    exclude.parent.mkdir(parents=True, exist_ok=True)
    with exclude.open("a") as fh:
        if existing and existing[-1] != "":
            fh.write("\n")
        fh.write(f"{line}\n")
