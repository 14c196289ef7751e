"""find_worktree answers as ``git rev-parse --show-toplevel`` does, with or without running git."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from legible._errors import UsageError
from legible.worktree import _toplevel_fast, find_worktree
from tests.conftest import git, make_repo


def _git_toplevel(cwd: Path) -> Path | None:
    out = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=cwd, capture_output=True, text=True)
    return Path(os.path.realpath(out.stdout.strip())) if out.returncode == 0 and out.stdout.strip() else None


@pytest.fixture
def repos(tmp_path: Path) -> dict[str, Path]:
    main = make_repo(tmp_path / "main", "", {"src/pkg/a.py": "x = 1\n"})
    git(main, "worktree", "add", "-q", str(tmp_path / "linked"), "-b", "other")
    sub = make_repo(tmp_path / "sub", "", {"b.txt": "b\n"})
    git(main, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(sub), "vendor/sub")
    (tmp_path / "plain" / "deep").mkdir(parents=True)
    (main / "link").symlink_to(main / "src")
    return {
        "root": main,
        "subdir": main / "src" / "pkg",
        "symlinked subdir": main / "link" / "pkg",
        "linked worktree": tmp_path / "linked" / "src",
        "submodule": main / "vendor" / "sub",
        "not a repository": tmp_path / "plain" / "deep",
    }


def test_the_walk_finds_what_git_finds(repos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_CEILING_DIRECTORIES", "GIT_DISCOVERY_ACROSS_FILESYSTEM"):
        monkeypatch.delenv(var, raising=False)
    answered = 0
    for case, cwd in repos.items():
        expected = _git_toplevel(cwd)
        walked = _toplevel_fast(cwd)
        if walked is not None:  # None means "ask git", never a different answer
            answered += 1
            assert walked == expected, case
        if expected is None:
            with pytest.raises(UsageError):
                find_worktree(cwd)
        else:
            assert find_worktree(cwd).root == expected, case
    assert answered == 4  # every repository case but the submodule (left to git) was answered without git


def test_what_the_walk_cannot_answer_goes_to_git(repos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    inside_git_dir = repos["root"] / ".git" / "refs"
    assert _toplevel_fast(inside_git_dir) is None
    monkeypatch.setenv("GIT_WORK_TREE", str(repos["linked worktree"].parent))
    monkeypatch.setenv("GIT_DIR", str(repos["root"] / ".git" / "worktrees" / "linked"))
    assert _toplevel_fast(repos["subdir"]) is None
    assert find_worktree(repos["subdir"]).root == repos["linked worktree"].parent.resolve()


def test_a_stray_dot_git_is_not_taken_for_a_repository(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", "")
    (root / "inner" / ".git").mkdir(parents=True)  # an empty directory: git skips it and goes on up
    assert _toplevel_fast(root / "inner") is None
    assert find_worktree(root / "inner").root == root.resolve() == _git_toplevel(root / "inner")


def test_the_walk_names_the_exclude_file_git_names(repos: dict[str, Path]) -> None:
    """`legible up` lists `.legible/` in the file `git rev-parse --git-path info/exclude` names, without git."""
    for case in ("root", "subdir", "linked worktree"):
        wt = find_worktree(repos[case])
        out = subprocess.run(
            ["git", "rev-parse", "--git-path", "info/exclude"], cwd=wt.root, capture_output=True, text=True
        )
        assert wt.exclude is not None, case
        assert wt.exclude.resolve() == (wt.root / out.stdout.strip()).resolve(), case
