"""`legible logs` over a real store file (the "after `legible down`" path: no stack, the kept DuckDB file)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from legible.cli.main import app
from typer.testing import CliRunner

from tests._query_fixtures import T_ERR, build_store, git_repo
from tests.conftest import wait_until

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = git_repo(tmp_path_factory.mktemp("logs") / "wt")
    build_store(root)
    return root


def run(repo: Path, monkeypatch: pytest.MonkeyPatch, *args: str):
    monkeypatch.chdir(repo)
    return CliRunner().invoke(app, list(args))


def test_default_view_groups_errors_first_bounded_with_cut_line(repo, monkeypatch):
    res = run(repo, monkeypatch, "logs")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert len(lines) <= 42
    assert lines[0].startswith("733 lines in last 15m from app, collector: 2 error groups, 1 warn group;")
    assert lines[1].split()[:4] == ["N", "LEVEL", "SERVICE", "SEEN"]
    assert lines[2].split()[1] == "error" and lines[3].split()[1] == "error"
    assert any(ln.split()[:2] == ["600", "info"] and "GET /items/" in ln for ln in lines)
    assert lines[-1].startswith("… 12 more groups: --limit 60")
    assert "database is locked" not in res.output  # 2 h old: outside the default window


def test_error_question_answered_in_two_commands_under_2kb(repo, monkeypatch):
    first = run(repo, monkeypatch, "logs", "--level", "error")
    assert first.exit_code == 0
    assert f"trace={T_ERR}" in first.output
    assert "ValueError: card declined for order 42" in first.output
    assert "at /app/payments.py:12 in charge" in first.output
    trace_id = first.output.split("trace=")[1].split()[0]
    second = run(repo, monkeypatch, "trace", trace_id[:8])
    assert second.exit_code == 0, second.output
    assert "charge" in second.output and "! ValueError: card declined for order 42" in second.output
    assert len((first.output + second.output).encode()) < 2048


def test_level_grep_attr_trace_filters(repo, monkeypatch):
    out = run(repo, monkeypatch, "logs", "--level", "warning").output
    assert "level>=warn" in out.splitlines()[0] and "slow query took" in out and "GET /items" not in out
    out = run(repo, monkeypatch, "logs", "--grep", "CACHE MISS").output
    assert out.startswith("25 lines") and "cache miss key=user:" in out
    out = run(repo, monkeypatch, "logs", "--regex", r"order \d+$", "--raw").output
    assert "validating order 42" in out
    out = run(repo, monkeypatch, "logs", "--attr", "http.route=/error", "--raw").output
    assert out.startswith("1 lines") and "ValueError" in out
    out = run(repo, monkeypatch, "logs", "--trace-id", T_ERR[:10], "--raw", "--fields", "level,span_id,body").output
    assert out.splitlines()[0].startswith("3 lines")
    assert "info c0ffee0000000001 validating order 42" in out
    out = run(repo, monkeypatch, "logs", "--service", "collector").output
    assert out.startswith("30 lines") and "flushed batch" in out


def test_raw_newest_last_bounded_with_tracebacks_kept_whole(repo, monkeypatch):
    res = run(repo, monkeypatch, "logs", "--raw")
    lines = res.output.splitlines()
    assert lines[0].startswith("733 lines in last 15m; newest")
    assert len(lines) <= 42
    assert lines[-1].startswith("… ") and "more earlier lines" in lines[-1]
    assert "GET /items/7 200 24ms" in lines[-2]  # the newest line is last


def test_window_hint_when_nothing_matches(repo, monkeypatch):
    out = run(repo, monkeypatch, "logs", "--grep", "database is locked").output
    assert out.splitlines()[0].startswith("0 lines in last 15m")
    assert "newest 2h ago: try --since 3h" in out
    out = run(repo, monkeypatch, "logs", "--grep", "database is locked", "--since", "3h").output
    assert out.startswith("1 lines in last 3h")


def test_json_documents(repo, monkeypatch):
    doc = json.loads(run(repo, monkeypatch, "logs", "--json", "--level", "error").output)
    assert doc["schema"] == "legible.logs/v1" and doc["view"] == "groups"
    assert doc["total"] == 2 and doc["groups"][0]["trace_id"] == T_ERR
    assert doc["groups"][0]["last"].endswith("Z")
    doc = json.loads(run(repo, monkeypatch, "logs", "--json", "--raw", "-n", "3").output)
    assert doc["view"] == "raw" and len(doc["lines"]) == 3 and doc["lines"][0]["ts"].endswith("Z")
    doc = json.loads(
        run(
            repo,
            monkeypatch,
            "logs",
            "--json",
            "--sql",
            "SELECT level, count(*) AS n FROM logs GROUP BY ALL ORDER BY n DESC",
        ).output
    )
    assert doc["schema"] == "legible.sql/v1" and doc["rows"][0] == ["info", 666]


def test_sql_escape_hatch_bounded(repo, monkeypatch):
    res = run(repo, monkeypatch, "logs", "--sql", "SELECT seq, body FROM logs ORDER BY seq", "-n", "5")
    assert res.exit_code == 0
    lines = res.output.splitlines()
    assert lines[0].split() == ["seq", "body"] and len(lines) == 7
    assert lines[-1].startswith("… 730 more rows: --limit 100")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "5x"], "error: --since: '5x' is not a time"),
        (["--since", "yesterday"], "error: --since: 'yesterday' is not a time"),
        (["--regex", "(unclosed"], "error: --regex: '(unclosed' is not a regular expression"),
        (["--sql", "DELETE FROM logs"], "error: SQL: only SELECT/WITH/EXPLAIN are allowed"),
        (["--sql", "SELECT nope FROM logs"], "error: SQL: Binder Error"),
        (["--level", "loud"], "error: --level: 'loud' is not a level"),
        (["--attr", "novalue"], "error: --attr: 'novalue' is not key=value"),
        (["--fields", "ts,nope"], "error: --fields: unknown field 'nope'"),
        (["--limit", "0"], "error: --limit: 0 must be at least 1"),
        (["--bogus"], "error: legible logs: no such option: --bogus"),
        (["--lim", "5"], "error: legible logs: no such option: --lim"),  # no prefix abbreviation
    ],
)
def test_bad_input_exits_2_with_one_line_error(repo, monkeypatch, args, message):
    res = run(repo, monkeypatch, "logs", *args)
    assert res.exit_code == 2
    err = res.stderr.splitlines()
    assert err[0].startswith(message), err
    assert len(err) == 2 and err[1].startswith("hint: ")


def test_no_store_is_not_running(tmp_path, monkeypatch):
    root = git_repo(tmp_path / "empty")
    res = run(root, monkeypatch, "logs")
    assert res.exit_code == 2 and res.stderr.startswith("error: no store at ")


def test_help_lists_the_options(repo, monkeypatch):
    res = run(repo, monkeypatch, "logs", "--help")
    assert res.exit_code == 0 and "--since" in res.output and "--follow" in res.output


def _append_error_line(repo: Path, body: str) -> None:
    """Append one error line to the store, retrying while the follower holds its read lock."""
    import duckdb

    from legible.store import store_path

    for _ in range(100):
        try:
            con = duckdb.connect(str(store_path(repo / ".legible")))
        except duckdb.Error:
            time.sleep(0.05)
            continue
        try:
            con.execute(
                "INSERT INTO logs (seq, time_ns, observed_ns, service, level, severity_number, body, "
                "template, source) SELECT max(seq) + 1, ?, ?, 'app', 'error', 17, ?, ?, 'stdout' FROM logs",
                [time.time_ns(), time.time_ns(), body, body],
            )
        finally:
            con.close()
        return
    raise AssertionError("could not open the store for writing")


def test_follow_prints_new_lines_and_stops_cleanly_on_ctrl_c(tmp_path):
    root = git_repo(tmp_path / "wt")
    build_store(root)
    proc = subprocess.Popen(
        [sys.executable, "-m", "legible.cli.main", "logs", "--follow", "--level", "error"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    lines: list[str] = []

    def read() -> None:  # line by line, as --follow prints them
        for ln in proc.stdout:
            lines.append(ln)

    reader = threading.Thread(target=read, daemon=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("following new lines, level>=error; last 2 shown; Ctrl-C stops"), first
        reader.start()
        _append_error_line(root, "disk full while writing /tmp/x")
        wait_until(lambda: any("disk full" in ln for ln in lines), 15, "the appended error line printed by --follow")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        reader.join(timeout=10)
        out, err = "".join(lines), proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "request failed: 500" in out
    assert out.splitlines()[-1].endswith("error app disk full while writing /tmp/x")


def test_groups_fold_lines_the_collector_left_without_template(tmp_path, monkeypatch):
    import duckdb

    from legible.store import store_path

    root = git_repo(tmp_path / "wt")
    build_store(root)
    con = duckdb.connect(str(store_path(root / ".legible")))
    con.execute("UPDATE logs SET template = NULL WHERE service = 'app'")
    con.close()
    out = run(root, monkeypatch, "logs").output
    assert any(ln.split()[:3] == ["600", "info", "app"] for ln in out.splitlines()), out


def _counter(metrics: str, name: str) -> float:
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in metrics.splitlines() if ln.startswith(name))


def test_one_error_of_the_shop_is_two_groups_not_three(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One ``/error`` on the real shop gives two error groups, each record stored once (issue 12).

    The shop logs every record both over OTLP and to stdout/stderr. Its stderr copy of Flask's "Exception on
    /error [GET]" record starts with ``<time> ERROR <logger> trace_id=<id>`` and has no span id; the
    collector parses that prefix, so the copy folds into the OTLP record. The access line ("GET /error 500",
    logged by the shop's ``after_request`` hook, JSON on stdout) is a second, distinct record of the same
    request, with its own message: two groups, both naming the request's trace id.
    """
    import requests

    from tests.conftest import cli, cli_json
    from tests.test_stack import SHOP_TOML, shop_repo

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    root = shop_repo(tmp_path / "shop", SHOP_TOML)
    try:
        code, doc = cli_json(root, "up", "--wait")
        assert code == 0, doc
        app_url, collector = doc["endpoints"]["app"], doc["endpoints"]["otlp-http"]
        before = requests.get(f"{collector}/metrics", timeout=5).text
        assert requests.get(f"{app_url}/error", timeout=10).status_code == 500

        def both_copies_in() -> bool:
            # each of the two records came twice (OTLP, and stdout or stderr): two copies folded, and both
            # OTLP records received (the exporter batches for up to a second)
            now = requests.get(f"{collector}/metrics", timeout=5).text
            otlp = _counter(now, 'legible_collector_received_total{signal="logs"}')
            folded = _counter(now, "legible_collector_deduplicated_logs_total")
            return otlp - _counter(before, 'legible_collector_received_total{signal="logs"}') >= 2 and (
                folded - _counter(before, "legible_collector_deduplicated_logs_total") >= 2
            )

        wait_until(both_copies_in, 30, "both records of the error received twice and folded")
        code, out = cli_json(root, "logs", "--level", "error", "--since", "5m")
        assert code == 0, out
        found = [g for g in out["groups"] if "/error" in g["example"]]
        assert sorted(g["example"].split("\n", 1)[0] for g in found) == ["Exception on /error [GET]", "GET /error 500"]
        assert all(g["count"] == 1 for g in found), found
        assert len({g["trace_id"] for g in found}) == 1, found
        # whichever copy of the exception was kept, it sits under its span (the stderr copy prints no span id;
        # the collector gives it the one of its OTLP copy): `legible trace` has no log it cannot place
        trace_id = found[0]["trace_id"]

        def all_logs_placed() -> bool:
            code, doc = cli_json(root, "trace", trace_id)
            return code == 0 and doc["logs"] >= 2 and doc["loose_logs"] == []

        wait_until(all_logs_placed, 10, "every log of the /error trace under its span")
    finally:
        cli(root, "down")


def test_grep_and_regex_find_an_exception_kept_only_in_otlp_attributes(tmp_path, monkeypatch):
    """An exception logged to stdout and over OTLP is stored once, as whichever copy came first; the OTLP
    copy holds the traceback in the semantic-convention attributes, and a search must find it there too."""
    import duckdb

    from legible.store import store_path

    root = git_repo(tmp_path / "wt")
    build_store(root)
    attrs = {
        "exception.type": "ValueError",
        "exception.message": "card 9191 declined",
        "exception.stacktrace": 'Traceback (most recent call last):\n  File "app.py"\nValueError: card 9191 declined',
    }
    con = duckdb.connect(str(store_path(root / ".legible")))
    try:
        con.execute(
            "INSERT INTO logs (seq, time_ns, observed_ns, service, level, severity_number, body, template, source, "
            "attributes) SELECT max(seq) + 1, ?, ?, 'app', 'error', 17, ?, ?, 'otlp', ? FROM logs",
            [time.time_ns(), time.time_ns(), "Exception on /boom [GET]", "Exception on /boom [GET]", json.dumps(attrs)],
        )
    finally:
        con.close()
    for args in (("--grep", "card 9191 declined"), ("--regex", r"ValueError: card \d+ declined")):
        res = run(root, monkeypatch, "logs", "--raw", "--since", "all", *args)
        assert res.exit_code == 0, res.output
        assert res.output.startswith("1 lines") and "Exception on /boom [GET]" in res.output, res.output
    res = run(root, monkeypatch, "logs", "--raw", "--since", "all", "--grep", "card 9191 accepted")
    assert res.output.startswith("0 lines"), res.output


def test_raw_lines_count_and_last_seq_come_with_the_lines_in_one_statement(tmp_path):
    """The newest N by time, the count of all matches and their highest seq (time order is not seq order)."""
    import duckdb

    from legible.queries.logs import log_lines, make_filter
    from legible.store import Store, migrate

    c = duckdb.connect()
    migrate(c)
    times = [5, 1, 9, 3, 7, 2]  # seq 0..5 arrive out of time order
    c.executemany(
        "INSERT INTO logs (seq, time_ns, observed_ns, service, level, severity_number, body, source) "
        "VALUES (?, ?, ?, 'app', ?, 9, ?, 'stdout')",
        [(i, t, t, "warn" if i % 2 else "info", f"line {i}") for i, t in enumerate(times)],
    )
    store = Store(path=tmp_path / "unused.duckdb", _con=c)

    def got(limit: int, **kw: str) -> tuple[list[str], int, int]:
        res = log_lines(store, make_filter(since="all", now=100, **kw), limit, ["seq", "body"])
        return [r["body"] for r in res.rows], res.total, res.last_seq

    assert got(3) == (["line 0", "line 4", "line 2"], 6, 5)  # oldest first of the newest 3 by time
    assert got(10) == (["line 1", "line 5", "line 3", "line 0", "line 4", "line 2"], 6, 5)
    assert got(0) == ([], 6, 5)
    assert got(2, level="warn") == (["line 5", "line 3"], 3, 5)
    assert got(5, grep="nothing") == ([], 0, -1)
    c.close()
