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
from legible.collector._writer import ARROW_IMPORTS

#: Modules a started collector (the ``Collector`` built, ``start()`` returned) must not have imported yet.
NOT_BEFORE_READY = (*ARROW_IMPORTS, "pandas", "requests", "polars")

_LOG_ROW = '(1, 2, "svc", "info", 9, "INFO", "hello", "{}", "{}", "{}", None, None, "stdout")'


def _run(script: str, *args: str) -> dict[str, object]:
    res = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    doc: dict[str, object] = json.loads(res.stdout.splitlines()[-1])
    return doc


def test_a_started_collector_has_not_imported_the_arrow_layer_and_its_first_flush_stores_rows(tmp_path: Path) -> None:
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
        "stored = col.writer.query('SELECT count(*) FROM logs')[1][0][0]\n"
        "error = col.writer.error\n"
        "col.stop()\n"
        "print(json.dumps({'early': early, 'health': health, 'stored': stored, 'error': error,\n"
        "                  'arrow': 'pyarrow' in sys.modules and 'duckdb' in sys.modules}))\n"
    )
    doc = _run(script, str(tmp_path))
    # the connection was opened by `_duckdb` alone; once `duckdb` is imported it scans Arrow tables like any other
    assert doc == {"early": [], "health": 200, "stored": 3, "error": "", "arrow": True}


def test_a_flush_that_cannot_import_the_arrow_layer_keeps_its_rows_and_the_store_turns_unhealthy(
    tmp_path: Path,
) -> None:
    script = (
        "import json, sys\nfrom pathlib import Path\n"
        "sys.modules['pyarrow'] = None  # import pyarrow raises ImportError\n"
        "from legible.collector._writer import FAILURES_UNHEALTHY, Writer\n"
        "dropped = []\n"
        "w = Writer(Path(sys.argv[1]) / 'signals.duckdb', on_dropped=lambda t, n: dropped.append((t, n)))\n"
        f"w.add('logs', [{_LOG_ROW}] * 4)\n"
        "w._stop = True  # no back-off sleeps between the failed flushes\n"
        "for _ in range(FAILURES_UNHEALTHY):\n"
        "    w.flush()\n"
        "print(json.dumps({'pending': w.pending, 'dropped': dropped, 'unhealthy': bool(w.error),\n"
        "                  'cause': 'pyarrow' in w.flush_error}))\n"
    )
    doc = _run(script, str(tmp_path))
    assert doc == {"pending": 4, "dropped": [], "unhealthy": True, "cause": True}


def test_the_collector_process_imports_the_arrow_layer_after_ready_by_itself(tmp_path: Path) -> None:
    """A real ``python -m legible.collector``: ready first, then pyarrow is mapped with no row ever sent."""
    logs = tmp_path / "logs"
    logs.mkdir()
    token = tmp_path / "token"
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
            f"--token-file={token}",
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
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30) as health:
            assert health.status == 200
        maps = Path(f"/proc/{proc.pid}/maps")
        deadline = time.monotonic() + 60
        while "libarrow" not in maps.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "libarrow" in maps.read_text()
    finally:
        proc.terminate()
        proc.wait(60)
        if proc.stderr is not None:
            proc.stderr.close()
    assert proc.returncode == 0


def test_the_prewarmed_collector_imports_only_what_ready_needs() -> None:
    assert not set(COLLECTOR_IMPORTS) & set(NOT_BEFORE_READY)
