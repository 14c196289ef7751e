"""What the collector imports before ``/health`` says ready, and what it imports after (issue 12).

pyarrow (with numpy) and the ``duckdb`` package are about 190 ms of CPU the collector does not need to open the
store, bind its ports and start its threads; ``/health`` answers 200 without them and the first flush imports
them (or a lower-priority thread started after ready already has). Each check runs in a fresh interpreter, so
what an earlier test imported does not hide an eager import.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from legible._prewarm import COLLECTOR_IMPORTS
from legible.collector._writer import ARROW_IMPORTS, ARROW_ROWS

#: Modules a started collector (the ``Collector`` built, ``start()`` returned) must not have imported yet.
NOT_BEFORE_READY = (*ARROW_IMPORTS, "pandas", "requests", "polars")

_LOG_ROW = '(1, 2, "svc", "info", 9, "INFO", "hello", "{}", "{}", "{}", None, None, "stdout")'


def _run(script: str, *args: str) -> dict[str, object]:
    res = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    doc: dict[str, object] = json.loads(res.stdout.splitlines()[-1])
    return doc


def test_a_started_collector_has_not_imported_the_arrow_layer_and_its_first_flush_needs_none(tmp_path: Path) -> None:
    script = (
        "import json, sys\nfrom pathlib import Path\n"
        "from legible.collector import Collector\n"
        "d = Path(sys.argv[1]); (d / 'logs').mkdir()\n"
        "col = Collector(d / 'signals.duckdb', d / 'logs', '', 'wt', http_port=0, grpc_port=0)\n"
        "col.start()\n"
        f"early = [m for m in {NOT_BEFORE_READY!r} if m in sys.modules]\n"
        "import urllib.request\n"
        "with urllib.request.urlopen(f'http://127.0.0.1:{col.http_port}/health', timeout=30) as r:\n"
        "    health = r.status\n"
        f"col.writer.add('logs', [{_LOG_ROW}] * 3)\n"
        "col.writer.flush()\n"
        "first = col.writer.query('SELECT count(*) FROM logs')[1][0][0]\n"
        f"late = [m for m in {NOT_BEFORE_READY!r} if m in sys.modules]\n"
        "import legible.collector._writer as writer\n"
        f"col.writer.add('logs', [{_LOG_ROW}] * (writer.ARROW_ROWS + 1))  # a large flush: imports Arrow\n"
        "col.writer.flush()\n"
        "stored = col.writer.query('SELECT count(*) FROM logs')[1][0][0]\n"
        "error = col.writer.error\n"
        "col.stop()\n"
        "print(json.dumps({'early': early, 'health': health, 'first': first, 'late': late, 'stored': stored,\n"
        "                  'error': error, 'arrow': writer._arrow_module is not None}))\n"
    )
    doc = _run(script, str(tmp_path))
    # the connection `_duckdb` made scans Arrow tables once the large flush imported the `duckdb` package
    assert doc == {
        "early": [],
        "health": 200,
        "first": 3,
        "late": [],
        "stored": 3 + ARROW_ROWS + 1,
        "error": "",
        "arrow": True,
    }


def test_a_flush_that_fails_without_the_arrow_layer_keeps_every_row_and_the_store_turns_unhealthy(
    tmp_path: Path,
) -> None:
    """A failed flush tells unstorable rows with Arrow; when pyarrow cannot be imported none is dropped."""
    bad = _LOG_ROW.replace(", 9,", ", 70000,")  # severity_number beyond SMALLINT: the statement fails
    script = (
        "import json, sys\nfrom pathlib import Path\n"
        "sys.modules['pyarrow'] = None  # import pyarrow raises ImportError\n"
        "from legible.collector._writer import FAILURES_UNHEALTHY, Writer\n"
        "dropped = []\n"
        "w = Writer(Path(sys.argv[1]) / 'signals.duckdb', on_dropped=lambda t, n: dropped.append((t, n)))\n"
        f"w.add('logs', [{_LOG_ROW}] * 3 + [{bad}])\n"
        "w._stop = True  # no back-off sleeps between the failed flushes\n"
        "for _ in range(FAILURES_UNHEALTHY):\n"
        "    w.flush()\n"
        "print(json.dumps({'pending': w.pending, 'dropped': dropped, 'unhealthy': bool(w.error),\n"
        "                  'cause': 'Arrow' in w.flush_error}))\n"
    )
    doc = _run(script, str(tmp_path))
    assert doc == {"pending": 4, "dropped": [], "unhealthy": True, "cause": True}


def test_rows_flushed_before_and_after_the_arrow_layer_is_imported_are_stored_alike(tmp_path: Path) -> None:
    """The same batches through a writer without pyarrow (bound lists) and one with it (Arrow): same tables."""
    script = (
        "import json, sys\nfrom pathlib import Path\n"
        "import legible.collector._writer as writer\n"
        "from legible.collector._writer import PY_TEMPLATE_ROWS, Writer, arrow_layer\n"
        "writer.ARROW_ROWS = writer.ARROW_AFTER_ROWS = 10**9  # the large batch too goes without Arrow\n"
        "def log(i, body, attrs='{}', svc='api', tid=None):\n"
        "    return (10**18 + i, 10**18 + i + 1, svc, 'error' if i % 3 else 'info', 17 if i % 3 else 9,\n"
        "            None if i % 2 else 'INFO', body, attrs, '{\"service.name\": \"api\"}', '{}', tid, None,\n"
        "            'stdout' if i % 2 else 'otlp')\n"
        "small = [log(i, b) for i, b in enumerate(['GET /a 200 in 12 ms', 'user 42 logged in', 'one\\ntwo',\n"
        "         'id 123e4567-e89b-12d3-a456-426614174000 ok', '\u00e9t\u00e9 0x1f', 'x' * 300])]\n"
        "small.append(log(7, 'boom', '{\"exception.type\": \"ValueError\"}', tid='ab' * 16))\n"
        "again = [log(20 + i, r[6]) for i, r in enumerate(small)]  # every key known: group ids from the writer\n"
        "large = [log(100 + i, f'item {i} done', svc='worker') for i in range(PY_TEMPLATE_ROWS + 5)]\n"
        "spans = [('ab' * 16, f'{i:016x}', None if i == 0 else f'{0:016x}', None, 'api', f'GET /{i}', 'SERVER',\n"
        "          10**18 + i, 10**18 + i + 5 * 10**6, 5.0, 'ERROR' if i == 2 else 'UNSET', None, '{\"a\": 1}',\n"
        "          '{}', '{}', '[]', '[]', None, None, 10**18) for i in range(4)]\n"
        "def fill(path):\n"
        "    w = Writer(path)\n"
        "    for batch in (small, again, large):\n"
        "        w.add('logs', batch); w.flush()\n"
        "    w.add('spans', spans); w.flush()\n"
        "    assert not w.error and not w.pending, w.flush_error\n"
        "    out = {t: w.query(f'SELECT * FROM {t} ORDER BY ALL', max_rows=10**6)[1]\n"
        "           for t in ('logs', 'spans', 'log_groups', 'log_words', 'log_group_words')}\n"
        "    w.close()\n"
        "    return json.loads(json.dumps(out, default=str))\n"
        "d = Path(sys.argv[1])\n"
        "plain = fill(d / 'plain' / 'signals.duckdb')\n"
        "was = 'pyarrow' in sys.modules\n"
        "arrow_layer()\n"
        "print(json.dumps({'was': was, 'same': plain == fill(d / 'arrow' / 'signals.duckdb'),\n"
        "                  'rows': {t: len(v) for t, v in plain.items()}}))\n"
    )
    doc = _run(script, str(tmp_path))
    rows = doc["rows"]
    assert isinstance(rows, dict) and rows["logs"] == 2 * 7 + 1005 and rows["spans"] == 4 and rows["log_words"]
    assert doc["was"] is False and doc["same"] is True, doc


def _count_logs(port: int, token: str) -> int:
    body = json.dumps({"sql": "SELECT count(*) FROM logs", "params": [], "max_rows": 1, "worktree": "wt"}).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/query", data=body, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as r:
        n: int = json.loads(r.read())["rows"][0][0]
    return n


def test_the_collector_process_stores_a_trickle_without_arrow_and_loads_it_for_a_burst(tmp_path: Path) -> None:
    """A real ``python -m legible.collector`` tailing a log: libarrow is mapped only once a flush is large."""
    logs = tmp_path / "logs"
    logs.mkdir()
    token_file = tmp_path / "token"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "legible.collector",
            "--http-port=0",
            "--grpc-port=-1",
            f"--db={tmp_path / 'db'}",
            f"--logs-dir={logs}",
            "--worktree=wt",
            f"--token-file={token_file}",
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # "collector: ready http=127.0.0.1:PORT ..." once every receiver listens
        assert line.startswith("collector: ready http=127.0.0.1:"), line
        port = int(line.split("http=127.0.0.1:")[1].split()[0])
        token = token_file.read_text().strip()
        maps = Path(f"/proc/{proc.pid}/maps")
        with (logs / "app.log").open("a") as fh:
            fh.write("".join(f"GET /items/{i} 200\n" for i in range(5)))
        deadline = time.monotonic() + 60
        while _count_logs(port, token) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _count_logs(port, token) == 5 and "libarrow" not in maps.read_text()
        burst = 3 * ARROW_ROWS
        with (logs / "app.log").open("a") as fh:
            fh.write("".join(f"GET /items/{i} 200\n" for i in range(burst)))
        while _count_logs(port, token) < 5 + burst and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _count_logs(port, token) == 5 + burst and "libarrow" in maps.read_text()
    finally:
        proc.terminate()
        proc.wait(60)
        if proc.stderr is not None:
            proc.stderr.close()
    assert proc.returncode == 0


def test_the_prewarmed_collector_imports_only_what_ready_needs() -> None:
    assert not set(COLLECTOR_IMPORTS) & set(NOT_BEFORE_READY)
