"""`legible metrics` against a real VictoriaMetrics, found through a minimal state.json."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import requests
from legible.cli.main import app
from typer.testing import CliRunner

from tests._query_fixtures import git_repo
from tests.conftest import wait_until

VM = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"
LABELS = 'service="app",status_code="unset",span_kind="server",worktree="wt-1"'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def samples(now: int) -> str:
    """10 minutes of span-duration histograms: GET /slow around 2.1 s, GET / around 10 ms."""
    lines = []
    buckets = {
        "GET /slow": {"0.05": 0, "0.5": 0, "1": 0.05, "2.5": 0.995, "+Inf": 1},
        "GET /": {"0.05": 0.9, "0.5": 1, "1": 1, "2.5": 1, "+Inf": 1},
    }
    for i in range(61):
        t = (now - 600 + i * 10) * 1000
        for span, fracs in buckets.items():
            lab = f'{LABELS},span_name="{span}"'
            for le, frac in fracs.items():
                lines.append(f'legible_span_duration_seconds_bucket{{{lab},le="{le}"}} {int(frac * i * 10)} {t}')
            lines.append(f"legible_span_duration_seconds_count{{{lab}}} {i * 10} {t}")
        for n in range(25):
            lines.append(f'legible_demo_gauge{{idx="{n}",worktree="wt-1"}} {n * 1.5 + i} {t}')
        lines.append(f'legible_log_lines_total{{service="app",level="info",worktree="wt-1"}} {i * 7} {t}')
        # a prometheus_client counter: its _total and the _created timestamp beside it
        lines.append(f'legible_service_restarts_total{{service="app",worktree="wt-1"}} 0 {t}')
        lines.append(f'legible_service_restarts_created{{service="app",worktree="wt-1"}} {now - 600} {t}')
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def vm(tmp_path_factory: pytest.TempPathFactory):
    if not Path(VM).exists():
        pytest.skip("victoria-metrics is not installed")
    port = free_port()
    data = tmp_path_factory.mktemp("vmdata")
    proc = subprocess.Popen(
        [
            VM,
            f"-httpListenAddr=127.0.0.1:{port}",
            f"-storageDataPath={data}",
            "-search.latencyOffset=1s",
            "-loggerLevel=ERROR",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            try:
                return requests.get(f"{url}/health", timeout=1).ok
            except requests.RequestException:
                return False

        wait_until(healthy, 20, "VictoriaMetrics answering /health")
        r = requests.post(f"{url}/api/v1/import/prometheus", data=samples(int(time.time())), timeout=10)
        assert r.status_code == 204, r.text
        requests.get(f"{url}/internal/force_flush", timeout=10)
        series = {"match[]": "legible_log_lines_total"}
        wait_until(  # imported series become searchable after a moment
            lambda: requests.get(f"{url}/api/v1/series", params=series, timeout=5).json()["data"],
            20,
            "the imported series searchable in VictoriaMetrics",
        )
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, vm: str) -> Path:
    root = git_repo(tmp_path_factory.mktemp("metrics") / "wt")
    (root / ".legible").mkdir()
    write_state(root, vm, {})
    return root


def write_state(root: Path, vm: str, services: dict) -> None:
    """A minimal live ``state.json`` (this test process as the supervisor) pointing at ``vm``."""
    me = psutil.Process(os.getpid())
    (root / ".legible" / "state.json").write_text(
        json.dumps(
            {
                "schema": "legible.state/v1",
                "status": "ready",
                "supervisor": {"pid": me.pid, "create_time": me.create_time()},
                "endpoints": {"victoria-metrics": vm, "otlp-http": "http://127.0.0.1:1"},
                "services": services,
            }
        )
    )


def run(repo: Path, monkeypatch: pytest.MonkeyPatch, *args: str):
    monkeypatch.chdir(repo)
    return CliRunner().invoke(app, list(args))


P99_SLOW = (
    'histogram_quantile(0.99, sum by (le) (rate(legible_span_duration_seconds_bucket{span_name="GET /slow"}[5m])))'
)


def test_p99_of_the_slow_endpoint_in_one_call(repo, monkeypatch):
    res = run(repo, monkeypatch, "metrics", P99_SLOW)
    assert res.exit_code == 0, res.output
    head, line = res.output.splitlines()
    assert head == "1 series (now); unit s (from the name)"
    value = float(line.split()[-2])
    assert line.startswith("(no labels)") and line.endswith(" s") and 1.9 < value < 2.5


def test_instant_common_labels_once_and_units(repo, monkeypatch):
    q = "histogram_quantile(0.99, sum by (le, span_name, worktree) (rate(legible_span_duration_seconds_bucket[5m])))"
    lines = run(repo, monkeypatch, "metrics", q).output.splitlines()
    assert lines[0] == '2 series (now); unit s (from the name); common: {worktree="wt-1"}'
    assert lines[1].startswith('{span_name="GET /slow"}  2.') and lines[1].endswith(" s")
    assert lines[2].startswith('{span_name="GET /"}  ') and lines[2].endswith(" ms")


def test_bucket_counts_carry_no_unit(repo, monkeypatch):
    res = run(repo, monkeypatch, "metrics", 'sum(legible_span_duration_seconds_bucket{le="+Inf"})')
    assert res.exit_code == 0, res.output
    head, line = res.output.splitlines()
    assert head == "1 series (now)"  # no "unit s": the value is a number of observations
    # the count of the newest sample VictoriaMetrics serves: 1200, or 1180 when the last one is not in yet
    assert re.fullmatch(r"\(no labels\)  1[12]\d0", line), line


def test_range_sparklines_and_series_cap(repo, monkeypatch):
    res = run(repo, monkeypatch, "metrics", "legible_demo_gauge", "--range", "10m", "--step", "30s")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith('25 series (last 10m every 30 s); common: legible_demo_gauge{worktree="wt-1"}')
    assert lines[1].startswith('{idx="24"}  ') and "min " in lines[1] and " last " in lines[1]
    spark = lines[1].split("  ")[1]
    assert set(spark) <= set("▁▂▃▄▅▆▇█ ") and spark[-1] == "█" and len(spark) <= 40
    assert len(lines) == 22 and lines[-1].startswith("… 5 more series: --limit 50")


def test_json(repo, monkeypatch):
    doc = json.loads(run(repo, monkeypatch, "metrics", "legible_log_lines_total", "--json").output)
    assert doc["schema"] == "legible.metrics/v1" and doc["kind"] == "instant"
    assert doc["series"][0]["labels"]["level"] == "info" and 400 <= doc["series"][0]["value"] <= 420


def test_list_with_types_and_series_counts(repo, monkeypatch):
    lines = run(repo, monkeypatch, "metrics", "list").output.splitlines()
    assert lines[0] == "6 metrics, 40 series"
    rows = {ln.split()[0]: ln.split()[1:] for ln in lines[2:]}
    assert rows["legible_span_duration_seconds_bucket"] == ["histogram", "10"]
    assert rows["legible_span_duration_seconds_count"] == ["histogram", "2"]
    assert rows["legible_log_lines_total"] == ["counter", "1"]
    assert rows["legible_demo_gauge"] == ["gauge", "25"]
    assert rows["legible_service_restarts_created"] == ["counter", "1"]  # part of the counter, not a gauge
    out = run(repo, monkeypatch, "metrics", "list", "SPAN").output
    assert out.startswith("2 metrics matching 'SPAN', 12 series")
    doc = json.loads(run(repo, monkeypatch, "metrics", "list", "log_lines", "--json").output)
    assert doc["schema"] == "legible.metrics-list/v1" and doc["metrics"][0]["type"] == "counter"


def test_promql_error_is_the_servers_message_on_one_line(repo, monkeypatch):
    res = run(repo, monkeypatch, "metrics", "sum(rate(foo[5m])")
    assert res.exit_code == 2
    err = res.stderr.splitlines()
    assert err[0].startswith("error: PromQL: ") and "unparsed data" in err[0] and len(err) == 2


def test_bad_options(repo, monkeypatch):
    res = run(repo, monkeypatch, "metrics", "up", "--range", "ten")
    assert res.exit_code == 2 and res.stderr.startswith("error: --range: 'ten' is not a duration")
    res = run(repo, monkeypatch, "metrics", "up", "--step", "15s")
    assert res.exit_code == 2 and res.stderr.startswith("error: --step needs --range")


def test_no_stack_running_is_exit_2_with_hint(tmp_path, monkeypatch):
    root = git_repo(tmp_path / "wt")
    res = run(root, monkeypatch, "metrics", "up")
    assert res.exit_code == 2
    assert res.stderr.startswith("error: no stack is running for wt-")
    assert "hint: run `legible up --wait`" in res.stderr


def test_an_empty_answer_right_after_up_says_the_first_scrape_may_not_be_in(
    tmp_path: Path, vm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0 series seconds after VictoriaMetrics became ready: the answer says why, not only "check the names"."""
    from legible.queries.metrics import FIRST_SCRAPE_S

    root = git_repo(tmp_path / "wt")
    (root / ".legible").mkdir()

    def state(ready_ago_s: float) -> None:
        write_state(root, vm, {"victoria-metrics": {"status": "ready", "ready_at": time.time() - ready_ago_s}})

    state(2)
    young = run(root, monkeypatch, "metrics", "legible_not_scraped_yet")
    assert young.exit_code == 0, young.output
    lines = young.output.splitlines()
    assert lines[0].startswith("0 series for legible_not_scraped_yet (now): no data")
    assert len(lines) == 2 and lines[1].startswith("VictoriaMetrics became ready 2 s ago: its first scrapes")
    state(FIRST_SCRAPE_S + 5)
    old = run(root, monkeypatch, "metrics", "legible_not_scraped_yet")
    assert old.exit_code == 0 and len(old.output.splitlines()) == 1, old.output
    state(2)
    known = run(root, monkeypatch, "metrics", "legible_log_lines_total")  # series found: nothing to explain
    assert known.exit_code == 0 and "became ready" not in known.output, known.output
