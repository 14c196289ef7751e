"""What installing legible puts on a machine, and what its fastest commands import.

The folders of the design card (``clis/``, ``stacks/``, ``skills/``) install as ``legible.cli``,
``legible.stacks`` and ``legible.skills``: a wheel built from this checkout must hold no other top-level
import name. ``legible --help`` and ``legible status`` must not pay for the heavy libraries (DuckDB,
pydantic, Playwright, matplotlib), which only the commands that need them import.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import REPO, make_repo

HEAVY = ("duckdb", "pydantic", "playwright", "matplotlib", "pyarrow", "grpc")


def test_the_wheel_installs_one_top_level_name(tmp_path: Path) -> None:
    out = tmp_path / "wheel"
    res = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    (wheel,) = out.glob("legible-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert tops == {"legible"}, tops
    for must in (
        "legible/cli/main.py",
        "legible/stacks/vmagent/federate.yml.j2",
        "legible/stacks/vector/vector.toml.j2",
    ):
        assert must in names
    assert any(n.startswith("legible/skills/") and n.endswith("/SKILL.md") for n in names)
    top_level = [n for n in names if n.endswith("top_level.txt")]
    if top_level:
        assert zipfile.ZipFile(wheel).read(top_level[0]).decode().split() == ["legible"]


def _imported(args: list[str], cwd: Path) -> set[str]:
    """Top-level modules imported by ``legible ARGS`` (from ``python -X importtime``)."""
    res = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "legible.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    mods = set()
    for line in res.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name and not name.startswith("import time"):
                mods.add(name.split(".", 1)[0])
    assert mods, res.stderr[-500:]
    return mods


@pytest.mark.parametrize("args", [["--help"], ["status"]])
def test_fast_commands_import_no_heavy_library(tmp_path: Path, args: list[str]) -> None:
    root = make_repo(tmp_path / "r", "")
    heavy = _imported(args, root) & set(HEAVY)
    assert not heavy, f"legible {' '.join(args)} imports {sorted(heavy)}"


def _module_name(path: Path) -> str:
    """The import name of a file of ``legible/`` or ``clis/`` (installed as ``legible.cli``)."""
    rel = path.relative_to(REPO)
    parts = list(rel.with_suffix("").parts)
    if parts[0] == "clis":
        parts[0:1] = ["legible", "cli"]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


#: Private modules of other distributions that legible imports on purpose, each with the reason.
ALLOWED_PRIVATE = {
    # the duckdb package's own C++ extension, which its __init__ re-exports unchanged: a CLI that only reads the
    # store file skips the package's Python layer (legible/_dbengine.py); tests/test_dbengine.py pins that every
    # name used is the very object the package re-exports
    "_duckdb",
}


def test_no_module_imports_a_private_name_of_another_package() -> None:
    """``legible.x._y`` (a module or a name starting with one underscore) is used only inside ``legible.x``."""
    import ast

    bad = []
    for path in sorted([*(REPO / "legible").rglob("*.py"), *(REPO / "clis").rglob("*.py")]):
        mod = _module_name(path)
        package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and not node.level:
                names = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for full in names:
                if full in ALLOWED_PRIVATE:
                    continue
                parts = full.split(".")
                for i, part in enumerate(parts):
                    if part.startswith("_") and not part.startswith("__"):
                        owner = ".".join(parts[:i])
                        if package != owner and not package.startswith(owner + "."):
                            bad.append(f"{path.relative_to(REPO)}: {full}")
                        break
    assert not bad, "private names imported across packages:\n" + "\n".join(bad)
