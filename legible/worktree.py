"""Worktree identity: the git worktree root, its key, and its ``.legible/`` state directory.

The key is ``<basename>-<first 8 hex of sha256(realpath)>`` (ARCHITECTURE.md, "Words"): stable for a path,
different for two worktrees of one repository, readable in ``legible ps``.
"""

from __future__ import annotations

import hashlib
import os
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


def find_worktree(start: Path | None = None) -> Worktree:
    """Return the git worktree that contains ``start`` (default: the current directory).

    Raises:
        UsageError: ``start`` is not inside a git worktree (or git is missing).

    """
    start = Path(start or Path.cwd())
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
