"""legible.toml validation: every mistake is one line naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from legible._errors import ConfigError
from legible.config import load_config, order_services, parse_config


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"app": {"comand": "x"}}, "app.comand: unknown key"),
        ({"app": {"command": 3}}, "app.command: wrong type (int)"),
        ({"app": {"command": ""}}, "app.command: must not be empty"),
        (
            {"app": {"command": "a", "ready": {"http": "/", "tcp": True}}},
            "app.ready: set exactly one of http, tcp, log",
        ),
        ({"app": {"command": "a", "ready": {"log": "("}}}, "app.ready: log is not a valid regular expression"),
        ({"app": {"command": "a", "ready_timeout": "soon"}}, "app.ready_timeout: Input should be a valid number"),
        ({"app": {"command": "a", "metrics_path": "metrics"}}, "app.metrics_path: must start with /"),
        ({}, "app: required key is missing"),
        ({"app": {"command": "a"}, "services": {"app": {"command": "b"}}}, "services.app: a service name is lowercase"),
        (
            {"app": {"command": "a"}, "services": {"w": {"command": "b", "depends_on": ["db"]}}},
            "services.w.depends_on: unknown service 'db'",
        ),
        (
            {"app": {"command": "a", "depends_on": ["w"]}, "services": {"w": {"command": "b", "depends_on": ["app"]}}},
            "depends_on has a cycle: app -> w -> app",
        ),
        ({"app": {"command": "a"}, "stack": {"scrape_interval": "often"}}, "stack.scrape_interval"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(data: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data, source="/w/legible.toml")
    msg = info.value.message
    assert msg.startswith("legible.toml: ")
    assert expected in msg
    assert "\n" not in msg
    assert info.value.exit_code == 2
    assert "/w/legible.toml" in info.value.hint


def test_start_order_puts_dependencies_first() -> None:
    cfg = parse_config(
        {
            "app": {"command": "a", "depends_on": ["db"]},
            "services": {"db": {"command": "d"}, "worker": {"command": "w", "depends_on": ["app", "db"]}},
        }
    )
    assert order_services(cfg) == ["db", "app", "worker"]


def test_pyproject_tool_legible_is_read_and_errors_name_the_table(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname="x"\n[tool.legible.app]\ncommand = "python app.py"\n')
    assert load_config(tmp_path).app.command == "python app.py"
    (tmp_path / "pyproject.toml").write_text('[tool.legible.app]\ncommand = "x"\nport = "yes"\n')
    with pytest.raises(ConfigError, match=r"pyproject.toml: tool.legible.app.port"):
        load_config(tmp_path)


def test_legible_toml_wins_and_toml_syntax_errors_give_the_line(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.legible.app]\ncommand = "from-pyproject"\n')
    (tmp_path / "legible.toml").write_text('[app]\ncommand = "from-toml"\n')
    assert load_config(tmp_path).app.command == "from-toml"
    (tmp_path / "legible.toml").write_text('[app]\ncommand = "unterminated\n')
    with pytest.raises(ConfigError, match=r"legible.toml: invalid TOML: .*line 2"):
        load_config(tmp_path)


def test_missing_config_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert "legible init" in info.value.hint


def test_an_otlp_protocol_in_env_is_checked_where_it_is_written() -> None:
    from legible.config import OTLP_PROTOCOLS
    from legible.services.context import OTLP_PROTOCOLS as PLANNED

    assert OTLP_PROTOCOLS == PLANNED
    data = {"app": {"command": "a", "env": {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http"}}}
    with pytest.raises(ConfigError, match=r"legible.toml: app.env: .*OTEL_EXPORTER_OTLP_TRACES_PROTOCOL = 'http'"):
        parse_config(data, source="/w/legible.toml")
    ok = {"app": {"command": "a", "env": {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}}}
    assert parse_config(ok).app.env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"
