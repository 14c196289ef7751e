"""``legible check`` on a stopped stack's store without pydantic: the config stamp and plain ad-hoc checks.

The fast paths (:func:`legible._config_file.load_config_lazily`, :func:`legible.checks.parse_adhoc`'s plain
kinds) must give what the pydantic path gives: the same values, the same one-line errors, exit 2 for a
broken ``legible.toml`` whether or not an earlier run stamped it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from legible import checks
from legible._config_file import STAMP_FILENAME, LazyConfig, load_config_lazily
from legible._errors import ConfigError, UsageError
from legible.config import CheckConfig, load_config

from ._query_fixtures import build_store, git_repo
from .conftest import REPO, cli

TOML = """\
[app]
command = "python app.py"
ready = { http = "/" }

[checks.no-errors]
logs = { level = "error", max_count = 5 }
"""
#: One typo: `levle` is not a key of a logs check.
BROKEN = TOML.replace('level = "error"', 'levle = "error"')
ADHOC = ["check", "--logs", "level=error,max_count=1000", "--span", "max=2s,percentile=99"]


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    root = git_repo(tmp_path / "wt")
    (root / "legible.toml").write_text(TOML)
    return root


def test_first_load_validates_and_stamps_then_reads_lazily(worktree: Path) -> None:
    state_dir = worktree / ".legible"
    assert not isinstance(load_config_lazily(worktree, state_dir), LazyConfig)  # no .legible: nothing stamped
    assert not (state_dir / STAMP_FILENAME).exists()
    state_dir.mkdir()
    first = load_config_lazily(worktree, state_dir)
    assert not isinstance(first, LazyConfig)
    assert (state_dir / STAMP_FILENAME).stat().st_mode & 0o777 == 0o600
    lazy = load_config_lazily(worktree, state_dir)
    assert isinstance(lazy, LazyConfig) and not lazy.loaded
    assert lazy.checks == first.checks == load_config(worktree).checks
    assert lazy.source == first.source and lazy.loaded


def test_an_edit_after_the_stamp_is_validated_again(worktree: Path) -> None:
    state_dir = worktree / ".legible"
    state_dir.mkdir()
    load_config_lazily(worktree, state_dir)
    stamp = (state_dir / STAMP_FILENAME).read_text()
    (worktree / "legible.toml").write_text(BROKEN)
    with pytest.raises(ConfigError) as slow:
        load_config(worktree)
    with pytest.raises(ConfigError) as lazy:
        load_config_lazily(worktree, state_dir)
    assert lazy.value.message == slow.value.message and lazy.value.hint == slow.value.hint
    assert "checks.no-errors.logs.levle: unknown key" in lazy.value.message
    assert (state_dir / STAMP_FILENAME).read_text() == stamp  # a broken file is never stamped


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "80"}
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "legible.cli.main", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
    )


def _imported(proc: subprocess.CompletedProcess[str]) -> set[str]:
    """The modules ``python -X importtime`` reported for ``proc``."""
    return {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}


def _doc(proc: subprocess.CompletedProcess[str]) -> dict[str, object]:
    doc = json.loads(proc.stdout)
    doc.pop("took_ms")
    for result in doc["checks"]:
        result.pop("took_ms")
    return doc


def test_check_on_the_kept_store_skips_pydantic_once_stamped_and_answers_the_same(worktree: Path) -> None:
    build_store(worktree)
    first = _run(worktree, *ADHOC, "--json")
    assert first.returncode == 0, first.stderr[-2000:]
    assert "pydantic" in _imported(first)  # the first run validates legible.toml with pydantic
    second = _run(worktree, *ADHOC, "--json")
    assert second.returncode == 0, second.stderr[-2000:]
    imported = _imported(second)
    assert sorted(m for m in imported if m.split(".")[0] in ("pydantic", "pydantic_core", "psutil")) == []
    assert "legible.config" not in imported
    assert _doc(second) == _doc(first)
    text_lazy, text_full = cli(worktree, *ADHOC), None
    (worktree / ".legible" / STAMP_FILENAME).unlink()
    text_full = cli(worktree, *ADHOC)
    assert text_lazy.returncode == text_full.returncode == 0
    strip = [line.split(" (")[0] for line in text_lazy.stdout.splitlines()]  # the first line ends "(N ms)"
    assert strip == [line.split(" (")[0] for line in text_full.stdout.splitlines()]
    # a configured check reads the configuration (lazily, from the stamp of the run above) as before
    assert (worktree / ".legible" / STAMP_FILENAME).exists()
    named = cli(worktree, "check", "no-errors")
    assert named.returncode == 0 and "PASS  no-errors" in named.stdout, named.stdout + named.stderr
    (worktree / "legible.toml").write_text(BROKEN)
    with pytest.raises(ConfigError) as info:
        load_config(worktree)
    broken = cli(worktree, *ADHOC)
    assert (broken.returncode, broken.stdout) == (2, "")
    assert broken.stderr == f"error: {info.value.message}\nhint: {info.value.hint}\n"


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("span", "max=2s"),
        ("span", "max=2s,percentile=99"),
        ("span", "max=500ms,name=GET /slow,service=app,since=1h"),
        ("span", "max=1h30m,journey=checkout,percentile=99.9"),
        ("logs", "level=error"),
        ("logs", "level=warn,max_count=3,pattern=time.?out,service=worker,since=5m"),
        ("logs", ""),
        ("startup", "800ms"),
        ("startup", "max=2s,service=db"),
        ("db", "max_statement=50ms,service=app,since=15m"),
    ],
)
def test_plain_adhoc_checks_equal_the_model(kind: str, text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = checks.parse_adhoc(kind, text)
    assert isinstance(plain, checks.AdhocCheck)  # read without pydantic
    monkeypatch.setattr(checks, "_plain_adhoc", lambda kind, spec: None)
    model = checks.parse_adhoc(kind, text)
    assert isinstance(model, CheckConfig)
    assert plain.kind == model.kind
    assert vars(plain.spec) == model.spec.model_dump()


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("span", "percentile=99"),  # max is required
        ("span", "max=2"),  # a duration needs its unit
        ("span", "max=2s,percentile=100"),
        ("span", "max=2s,percentile=nan"),
        ("span", "max=2s,colour=red"),
        ("logs", "level=ERROR"),
        ("logs", "max_count=-1"),
        ("logs", "max_count=many"),
        ("logs", "max_count=\u00b2"),  # a digit to str.isdigit, not to int(): once a traceback
        ("browser", "pages=/,console_errors=\u0663"),  # ARABIC-INDIC DIGIT THREE
        ("startup", "soon"),
        ("db", "service=app"),
    ],
)
def test_what_the_plain_path_refuses_gets_the_models_error(kind: str, text: str) -> None:
    with pytest.raises(UsageError) as info:
        checks.parse_adhoc(kind, text)
    assert info.value.message.startswith(f"--{kind} {text!r}: ")
    assert info.value.hint == "see `legible check --help`"


def test_a_stopped_stack_is_read_without_psutil(worktree: Path) -> None:
    """After `legible down` the state says ``stopped``: queries read it as not alive and import no psutil."""
    build_store(worktree)
    state = {
        "status": "stopped",
        "supervisor": {"pid": os.getpid(), "create_time": 0.0},  # a live pid: only the status may decide
        "services": {},
        "endpoints": {"otlp-http": "http://127.0.0.1:9"},
    }
    (worktree / ".legible" / "state.json").write_text(json.dumps(state))
    proc = _run(worktree, "traces", "--slowest", "2", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "psutil" not in _imported(proc)
    assert json.loads(proc.stdout)["schema"] == "legible.traces/v1"
    from legible.contract import read_state

    lifecycle = read_state(worktree / ".legible" / "state.json")  # the lifecycle commands still ask psutil
    queries = read_state(worktree / ".legible" / "state.json", stopped_is_final=True)
    assert lifecycle is not None and queries is not None
    assert queries["alive"] is False and queries["status"] == lifecycle["status"] == "stopped"


def test_plain_fields_are_the_models_fields_and_defaults() -> None:
    from pydantic_core import PydanticUndefined

    from legible import config

    models = {"startup": config.StartupCheck, "span": config.SpanCheck, "logs": config.LogsCheck, "db": config.DbCheck}
    assert set(checks.PLAIN_FIELDS) == set(models)
    for kind, model in models.items():
        fields = model.model_fields.items()
        expected = {name: ... if info.default is PydanticUndefined else info.default for name, info in fields}
        assert checks.PLAIN_FIELDS[kind] == expected, kind
