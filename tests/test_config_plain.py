"""``legible up`` plans from the config stamp without pydantic, and the plan is the one the models give (issue 12).

:func:`legible._config_file.load_config_cached` returns a :class:`legible._config_plain.PlainConfig` rebuilt
from ``.legible/config.validated`` when the stamp matches the file and the validator; these tests build the
plan both ways for every example configuration of the repository, the configurations of the config tests
and edge cases (durations, defaults, several services and kinds, checks, forward, browser settings), and
check every fallback to full validation (an edited, broken or moved file, another validator, a missing,
corrupt, foreign or public stamp) with today's one-line errors.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from legible import config as models
from legible import schemas
from legible._config_file import STAMP_FILENAME, STAMP_SCHEMA, load_config_cached, read_stamp
from legible._config_plain import PlainConfig, PlainForward, PlainReady, PlainService, PlainStack
from legible._errors import ConfigError, LegibleError
from legible.config import LegibleConfig, load_config
from legible.init import write_config
from legible.lease import Lease
from legible.plan import build_plan
from legible.worktree import Worktree, worktree_key

from .conftest import REPO, cli, make_repo

#: Every ``legible.toml`` of the repository (the examples and the repository's own).
EXAMPLES = sorted(p for p in REPO.glob("**/legible.toml") if ".venv" not in p.parts and ".legible" not in p.parts)

#: Edge cases (and the valid configurations of tests/test_config.py and tests/test_plan.py), by name.
CASES: dict[str, str] = {
    "minimal": "[app]\ncommand = 'true'\n",
    "start-order (test_config)": """
        [app]
        command = "true run"
        depends_on = ["db"]
        [services.db]
        command = "true db"
        [services.worker]
        command = "true w"
        depends_on = ["app"]
    """,
    "ports and env (test_plan)": """
        [app]
        command = "python -m http.server $PORT --bind ${HOST}"
        metrics_path = "/metrics"
        env = { DB_URL = "postgres://127.0.0.1:$DB_PORT/x" }
        [services.db]
        command = "sleep 100"
        port = true
    """,
    "every service key, list command, durations": """
        [app]
        command = ["python", "-c", "print('hi')", "--port=$PORT"]
        cwd = "sub"
        env = { FEATURE_X = "1", OTEL_EXPORTER_OTLP_PROTOCOL = "grpc", TOKEN = "$SECRET_TOKEN", MIX = "${HOME}/x" }
        ready = { log = "listening on \\\\d+" }
        ready_timeout = 12.5
        metrics_path = "/m"
        setup = ["echo one", "echo two"]
        instrument = true
        restart = false
        max_restarts = 0
        watch = ["src/**/*.py", "templates/**"]

        [services.worker]
        command = "python worker.py --api $APP_PORT"
        depends_on = ["app", "cache"]
        port = true
        shell = true
        ready = { tcp = true }
        ready_timeout = 1
        env = { OTEL_EXPORTER_OTLP_TRACES_PROTOCOL = "http/json" }

        [services.side]
        command = "sleep 1000"
        ready = { http = "http://127.0.0.1:${SIDE_PORT}/ok" }
        port = true

        [services.pinger]
        command = "sleep 1000"
        ready = { tcp = 1 }

        [services.cache]
        kind = "redis"

        [services.db]
        kind = "postgres"
        ready_timeout = 90
        env = { PGOPTIONS = "-c work_mem=4MB" }
        restart = false

        [stack]
        scrape_interval = "250ms"
        retention = "2w"
        browser = true
        cdp_port = true

        [forward]
        otlp = "https://otel.example.invalid:4318"
        headers = { Authorization = "Bearer written-in-legible-toml" }

        [journeys.walk]
        description = "a walk"
        steps = [
          { chapter = "start" },
          { goto = "/" },
          { fill = { selector = "#q", text = "x" }, timeout_ms = 100 },
          { press = { selector = "#q", key = "Enter" } },
          { press = "Tab", title = "tab away" },
          { wait_for = "done" },
          { expect_text = "ok" },
          { screenshot = "end" },
        ]
        [journeys.scripted]
        script = "journeys/s.py"

        [checks.fast-start]
        startup = { max = "1h30m" }
        [checks.spans]
        span = { journey = "walk", max = "1.5s", percentile = 99.9, since = "2h" }
        [checks.named]
        span = { name = "GET /slow", service = "app", max = "500ms" }
        [checks.errors]
        logs = { level = "warn", pattern = "time.?out", service = "worker", max_count = 3, since = "5m" }
        [checks.rate]
        promql = { query = "sum(rate(x[5m]))", op = ">=", threshold = -0.5 }
        [checks.inf]
        promql = { query = "up", threshold = inf }
        [checks.walked]
        journey = { name = "walk", max = "10s" }
        [checks.pages]
        browser = { pages = ["/", "/about"], console_errors = 1, failed_requests = 2 }
        [checks.sql]
        db = { max_statement = "50ms", service = "app", since = "15m" }
        description = "no slow SQL"
    """,
    "forward by the environment and partly by the file": """
        [app]
        command = "sleep 1000"
        [forward]
        remote_write = "http://vm.example.invalid:8428/api/v1/write"
        max_disk_mb = 64
    """,
    "docker backend": """
        [app]
        command = "python app.py"
        image = "python:3.12-slim"
        [services.worker]
        command = "python worker.py"
        [stack]
        backend = "docker"
    """,
}

#: The environment the plans are built with: ``$NAME`` references and ``LEGIBLE_FORWARD_*`` to resolve.
ENVIRON = {
    "PATH": os.environ["PATH"],
    "HOME": "/home/someone",
    "SECRET_TOKEN": "s3cr3t-from-the-environment",
    "LEGIBLE_FORWARD_OTLP": "http://env-otel.example.invalid:4318",
    "LEGIBLE_FORWARD_REMOTE_WRITE": "http://env-vm.example.invalid:8428/api/v1/write",
    "LEGIBLE_FORWARD_HEADERS": "X-Scope=env-header-value",
}


def _worktree(root: Path) -> Worktree:
    wt = Worktree(root, worktree_key(root))
    wt.ensure_state_dir()
    return wt


def _plan_or_error(wt: Worktree, cfg: LegibleConfig) -> Any:
    """The plan's document, or the error planning raises (a missing binary is the same either way)."""
    try:
        return build_plan(wt, cfg, Lease(wt.key, str(wt.root), 21000), browser=False, environ=ENVIRON).to_dict()
    except LegibleError as exc:
        return (type(exc).__name__, exc.message, exc.hint)


def _both_ways(root: Path) -> tuple[LegibleConfig, LegibleConfig]:
    """``(validated by pydantic, rebuilt from the stamp)`` for the worktree at ``root``."""
    wt = _worktree(root)
    (wt.state_dir / STAMP_FILENAME).unlink(missing_ok=True)
    first = load_config_cached(wt.root, wt.state_dir)
    assert isinstance(first, LegibleConfig)  # validated, and stamped
    cached = load_config_cached(wt.root, wt.state_dir)
    assert isinstance(cached, PlainConfig)
    return load_config(root), cached


def _assert_same_plan(root: Path) -> Any:
    validated, cached = _both_ways(root)
    wt = Worktree(root, worktree_key(root))
    expected, got = _plan_or_error(wt, validated), _plan_or_error(wt, cached)
    assert json.dumps(got) == json.dumps(expected)  # the same document, key order included
    assert cached.model_dump() == validated.model_dump(mode="json")
    return got


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(REPO)))
def test_the_plan_from_the_stamp_equals_the_plan_from_the_models_for_every_example(path: Path, tmp_path: Path) -> None:
    files = {"sub/.keep": ""}
    root = make_repo(tmp_path / "wt", path.read_text(), files)
    plan = _assert_same_plan(root)
    assert isinstance(plan, dict) or plan[0] == "PrerequisiteMissing"


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_plan_from_the_stamp_equals_the_plan_from_the_models(name: str, tmp_path: Path) -> None:
    root = make_repo(tmp_path / "wt", textwrap.dedent(CASES[name]), {"sub/.keep": "", "journeys/s.py": ""})
    plan = _assert_same_plan(root)
    assert isinstance(plan, dict), plan  # planned, not refused (an error would be the same either way)
    stamp = (root / ".legible" / STAMP_FILENAME).read_text()
    doc = json.loads(stamp)  # a typed document with its shipped schema, like every other file of .legible/
    jsonschema.Draft202012Validator(schemas.load(doc["schema"])).validate(doc)
    assert "s3cr3t" not in stamp and "env-header-value" not in stamp and "env-otel" not in stamp
    if "SECRET_TOKEN" in CASES[name]:
        assert '"TOKEN":"$SECRET_TOKEN"' in stamp  # the reference, as written in legible.toml


def test_init_writes_a_configuration_that_plans_the_same_from_its_stamp(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "wt", "")
    (root / "legible.toml").unlink()
    (root / "app.py").write_text("print('hi')\n")
    write_config(root)
    assert isinstance(_assert_same_plan(root), dict)


def test_pyproject_tool_legible_plans_the_same_from_its_stamp(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "wt", "")
    (root / "legible.toml").unlink()
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n[tool.legible.app]\ncommand = 'sleep 100'\n")
    assert isinstance(_assert_same_plan(root), dict)
    assert load_config(root).source.endswith("pyproject.toml")


def test_the_plain_classes_have_exactly_the_fields_of_the_models() -> None:
    pairs = [
        (PlainService, models.ServiceConfig),
        (PlainReady, models.ReadyProbe),
        (PlainStack, models.StackConfig),
        (PlainForward, models.ForwardConfig),
    ]
    for plain, model in pairs:
        names = [f.name for f in dataclasses.fields(plain) if f.name != "model_fields_set"]
        assert names == list(model.model_fields), plain.__name__
    top = {f.name for f in dataclasses.fields(PlainConfig)} - {"dump"}
    assert top == set(models.LegibleConfig.model_fields) - {"journeys", "checks"}


@pytest.fixture
def stamped(tmp_path: Path) -> Worktree:
    root = make_repo(tmp_path / "wt", "[app]\ncommand = 'sleep 100'\nready_timeout = 7\n")
    wt = _worktree(root)
    assert isinstance(load_config_cached(wt.root, wt.state_dir), LegibleConfig)
    assert isinstance(load_config_cached(wt.root, wt.state_dir), PlainConfig)
    return wt


def test_an_edited_file_is_validated_again_and_planned_from_its_new_values(stamped: Worktree) -> None:
    (stamped.root / "legible.toml").write_text("[app]\ncommand = 'sleep 100'\nready_timeout = 8\n")
    cfg = load_config_cached(stamped.root, stamped.state_dir)
    assert isinstance(cfg, LegibleConfig) and cfg.app.ready_timeout == 8
    again = load_config_cached(stamped.root, stamped.state_dir)
    assert isinstance(again, PlainConfig) and again.app.ready_timeout == 8  # stamped anew


def test_a_broken_file_after_the_stamp_gets_todays_error_and_up_exits_2(stamped: Worktree) -> None:
    stamp = (stamped.state_dir / STAMP_FILENAME).read_bytes()
    (stamped.root / "legible.toml").write_text("[app]\ncomand = 'sleep 100'\n")
    with pytest.raises(ConfigError) as full:
        load_config(stamped.root)
    with pytest.raises(ConfigError) as cached:
        load_config_cached(stamped.root, stamped.state_dir)
    assert (cached.value.message, cached.value.hint) == (full.value.message, full.value.hint)
    assert "app.comand: unknown key" in full.value.message
    assert (stamped.state_dir / STAMP_FILENAME).read_bytes() == stamp  # a broken file is never stamped
    res = cli(stamped.root, "up", "--wait")
    assert (res.returncode, res.stdout) == (2, "")
    assert res.stderr == f"error: {full.value.message}\nhint: {full.value.hint}\n"


def test_a_file_that_is_not_utf8_is_a_one_line_error(stamped: Worktree) -> None:
    (stamped.root / "legible.toml").write_bytes(b"[app]\ncommand = '\xff'\n")
    with pytest.raises(ConfigError, match=r"^legible.toml: not UTF-8 text: invalid start byte$"):
        load_config_cached(stamped.root, stamped.state_dir)


def test_legible_toml_appearing_beside_a_stamped_pyproject_is_read_instead(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "wt", "")
    (root / "legible.toml").unlink()
    (root / "pyproject.toml").write_text("[tool.legible.app]\ncommand = 'sleep 100'\n")
    wt = _worktree(root)
    load_config_cached(wt.root, wt.state_dir)
    assert isinstance(load_config_cached(wt.root, wt.state_dir), PlainConfig)
    (root / "legible.toml").write_text("[app]\ncommand = 'sleep 200'\n")  # the same command text otherwise
    cfg = load_config_cached(wt.root, wt.state_dir)
    assert isinstance(cfg, LegibleConfig) and cfg.app.command == "sleep 200"


@pytest.mark.parametrize(
    "damage",
    ["empty", "not json", "truncated", "old v1 text", "other schema", "wrong shape", "unknown field", "bad type"],
)
def test_a_corrupt_stamp_is_validated_again_and_rewritten(stamped: Worktree, damage: str) -> None:
    path = stamped.state_dir / STAMP_FILENAME
    doc = json.loads(path.read_text())
    text = {
        "empty": "",
        "not json": "{{{",
        "truncated": path.read_text()[:40],
        "old v1 text": doc["key"] + "\n",
        "other schema": json.dumps({**doc, "schema": "legible.config-stamp/v9"}),
        "wrong shape": json.dumps({**doc, "config": [1, 2]}),
        "unknown field": json.dumps({**doc, "config": {**doc["config"], "stack": {**doc["config"]["stack"], "x": 1}}}),
        "bad type": json.dumps({**doc, "forward_set": "otlp"}),
    }[damage]
    path.write_text(text)
    os.chmod(path, 0o600)
    assert isinstance(load_config_cached(stamped.root, stamped.state_dir), LegibleConfig)
    assert json.loads(path.read_text()) == doc  # stamped anew
    assert isinstance(load_config_cached(stamped.root, stamped.state_dir), PlainConfig)


def test_a_stamp_others_could_write_or_read_or_a_link_is_not_trusted(stamped: Worktree, tmp_path: Path) -> None:
    path = stamped.state_dir / STAMP_FILENAME
    os.chmod(path, 0o644)
    assert read_stamp(stamped.state_dir) is None
    assert isinstance(load_config_cached(stamped.root, stamped.state_dir), LegibleConfig)
    assert path.stat().st_mode & 0o777 == 0o600  # rewritten private
    elsewhere = tmp_path / "elsewhere.json"
    os.replace(path, elsewhere)
    path.symlink_to(elsewhere)
    assert read_stamp(stamped.state_dir) is None
    assert isinstance(load_config_cached(stamped.root, stamped.state_dir), LegibleConfig)
    assert not path.is_symlink() and read_stamp(stamped.state_dir) is not None


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_stamp_owned_by_another_user_is_not_trusted(stamped: Worktree) -> None:
    path = stamped.state_dir / STAMP_FILENAME
    os.chown(path, 65534, 65534)
    assert read_stamp(stamped.state_dir) is None
    assert isinstance(load_config_cached(stamped.root, stamped.state_dir), LegibleConfig)


def test_another_validator_source_does_not_match_the_stamp(stamped: Worktree, tmp_path: Path) -> None:
    """A stamp written by this validator is not used by a copy of legible whose config.py differs by a comment."""
    copy = tmp_path / "other" / "legible"
    shutil.copytree(REPO / "legible", copy, ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / "config.py").open("a") as fh:
        fh.write("# a changed validator\n")
    script = (
        "import sys; from pathlib import Path; from legible._config_file import load_config_cached; "
        "root = Path.cwd(); cfg = load_config_cached(root, root / '.legible'); "
        "print(type(cfg).__name__, 'pydantic' in sys.modules)"
    )

    def run(pythonpath: Path) -> list[str]:
        env = {**os.environ, "PYTHONPATH": str(pythonpath), "PYTHONDONTWRITEBYTECODE": "1"}
        res = subprocess.run([sys.executable, "-c", script], cwd=stamped.root, env=env, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        return res.stdout.split()

    assert run(REPO) == ["PlainConfig", "False"]  # this validator's stamp: no pydantic
    assert run(copy.parent) == ["LegibleConfig", "True"]  # the other validator: validated again (and stamped)
    assert run(REPO) == ["LegibleConfig", "True"]  # and its stamp is not this validator's


def test_the_stamp_is_private_json_with_a_schema(stamped: Worktree) -> None:
    path = stamped.state_dir / STAMP_FILENAME
    assert path.stat().st_mode & 0o777 == 0o600
    doc = json.loads(path.read_text())
    assert doc["schema"] == STAMP_SCHEMA and len(doc["key"]) == 64
    assert doc["config"]["app"]["ready_timeout"] == 7.0 and doc["forward_set"] == []
