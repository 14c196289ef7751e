"""Postgres and Redis server lines become log records with levels (legible.collector._lines), no processes."""

from __future__ import annotations

import time

import pytest

from legible.collector._lines import RecordAssembler, parse_line

NOW = time.time_ns()


@pytest.mark.parametrize(
    ("line", "level", "body"),
    [
        ("2026-01-02 03:04:05.678 UTC [42] LOG:  database system is ready", "info", "LOG:  database system is ready"),
        (
            "2026-01-02 03:04:05.678 UTC [42] WARNING:  there is no transaction",
            "warn",
            "WARNING:  there is no transaction",
        ),
        (
            '2026-01-02 03:04:05.678 UTC [42] ERROR:  relation "x" does not exist',
            "error",
            'ERROR:  relation "x" does not exist',
        ),
        ("2026-01-02 03:04:05.678 UTC [42] FATAL:  terminating connection", "fatal", "FATAL:  terminating connection"),
        ("2026-01-02 03:04:05.678 UTC [42] DEBUG2:  checkpointer", "debug", "DEBUG2:  checkpointer"),
        ("42:M 02 Jan 2026 03:04:05.678 * Ready to accept connections tcp", "info", "Ready to accept connections tcp"),
        (
            "42:M 02 Jan 2026 03:04:05.678 # WARNING Memory overcommit must be enabled!",
            "warn",
            "WARNING Memory overcommit must be enabled!",
        ),
        ("42:C 02 Jan 2026 03:04:05.678 . debug chatter", "debug", "debug chatter"),
    ],
)
def test_server_lines_keep_their_level(line: str, level: str, body: str) -> None:
    p = parse_line(line, NOW)
    assert (p.level, p.body) == (level, body)
    assert p.attributes["process.pid"] == 42


def test_postgres_time_is_utc_and_a_slow_statement_is_a_warning_with_the_statement() -> None:
    p = parse_line("2026-01-02 03:04:05.678 UTC [42] LOG:  duration: 63.125 ms  statement: SELECT pg_sleep(0.06)", NOW)
    assert p.level == "warn"
    assert p.attributes["db.statement"] == "SELECT pg_sleep(0.06)" and p.attributes["db.duration_ms"] == 63.125
    assert p.time_ns is not None and abs(p.time_ns - 1767323045678000000) < 1000  # UTC, not local time


def test_an_error_and_its_statement_are_one_record_but_another_backend_is_not() -> None:
    a = RecordAssembler()
    lines = [
        '2026-01-02 03:04:05.678 UTC [42] ERROR:  relation "wat" does not exist at character 15',
        "2026-01-02 03:04:05.678 UTC [42] STATEMENT:  SELECT * FROM wat",
        "2026-01-02 03:04:05.679 UTC [43] STATEMENT:  SELECT 1",
    ]
    out = []
    for i, line in enumerate(lines):
        out += a.feed(line, (i + 1) * 100, NOW)
    out += a.flush()
    assert [r.parsed.level for r in out] == ["error", "info"]
    assert out[0].parsed.body.endswith("STATEMENT:  SELECT * FROM wat")
