"""find_worktree reads the file system where that gives git's own answer, and asks git everywhere else.

Each case is compared with ``git rev-parse --show-toplevel`` run in the same directory (real git, real
repositories): a repository, a subdirectory, a linked worktree (``git worktree add``), a nested repository,
a submodule (``core.worktree``: git is asked), a bare repository, the inside of ``.git``, no repository.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from legible._errors import UsageError
from legible.worktree import _toplevel_fast, find_worktree


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True, capture_output=True
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    base = tmp_path_factory.mktemp("repos")
    git(base, "init", "-q", "a")
    (base / "a" / "sub" / "deep").mkdir(parents=True)
    git(base / "a", "commit", "-q", "--allow-empty", "-m", "x")
    git(base / "a", "worktree", "add", "-q", str(base / "lw"))
    (base / "lw" / "x").mkdir()
    git(base / "a", "init", "-q", "nested")
    git(base, "init", "-q", "--bare", "bare.git")
    git(base, "init", "-q", "sm_src")
    git(base / "sm_src", "commit", "-q", "--allow-empty", "-m", "x")
    git(base / "a", "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(base / "sm_src"), "sm")
    (base / "none").mkdir()
    return base


CASES = ["a", "a/sub/deep", "lw", "lw/x", "a/nested", "a/sm", "bare.git", "a/.git", "a/.git/objects", "none"]
FAST = {"a", "a/sub/deep", "lw", "lw/x", "a/nested"}


@pytest.mark.parametrize("rel", CASES)
def test_find_worktree_answers_as_git_does(tree, rel, monkeypatch):
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_CEILING_DIRECTORIES"):
        monkeypatch.delenv(name, raising=False)
    where = tree / rel
    out = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=where, capture_output=True, text=True)
    fast = _toplevel_fast(where)
    assert (fast is not None) == (rel in FAST)  # the file-system path is taken exactly where it is sure
    if out.returncode != 0 or not out.stdout.strip():
        assert fast is None
        with pytest.raises(UsageError):
            find_worktree(where)
        return
    expected = Path(os.path.realpath(out.stdout.strip()))
    assert find_worktree(where).root == expected
    if fast is not None:
        assert fast == expected


def test_a_git_discovery_variable_sends_the_question_to_git(tree, monkeypatch):
    monkeypatch.setenv("GIT_DIR", str(tree / "a" / ".git"))
    assert _toplevel_fast(tree / "a" / "sub") is None
