"""Differential test of the stdout line path: the collector before the ingest work (commit d850fc5) and now.

Both versions tail the same file, written in pieces that split lines and UTF-8 characters, with a fixed
clock; every row (time, level, severity, body, attributes, trace and span ids), every offset persisted
with a batch, and every ``logs.template`` (the write path's staged form now, the single expression of
:func:`legible.store.template_sql` before) must be equal. The old version runs from ``git archive`` of that
commit in a subprocess.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tarfile
from io import BytesIO
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BEFORE = "d850fc5a89e31ebc56a707fc265e9b36d44688c9"

# Tails <dir>/logs/app.log with the ``legible`` on sys.path (a fixed clock), appending the file in the given
# byte pieces between polls; prints the rows and each body's template as JSON.
SCRIPT = r"""
import json, sys
from pathlib import Path
import duckdb, pyarrow as pa
from legible.collector._tail import Tailer
from legible.store import template_sql
d = Path(sys.argv[1]); data = (d / "corpus.bin").read_bytes(); cuts = json.loads(sys.argv[2])
rows, marks = [], []
def sink(r, o):
    rows.extend(r)
    marks.append([len(rows), *(off for _inode, off in o.values())])
t = Tailer(d / "logs", {}, sink, clock=lambda: 1_780_000_000_000_000_000)
with open(d / "logs" / "app.log", "ab") as f:
    for a, b in zip([0, *cuts], [*cuts, len(data)]):
        f.write(data[a:b]); f.flush()
        t.poll(final=False)
        while t.poll():
            pass
t.poll(final=True)
con = duckdb.connect()
con.register("b", pa.table({"body": [r[6] for r in rows]}))
try:  # the write path's staged form, where there is one; the single expression otherwise
    from legible.store import template_select
    sql = template_select("b", ["body"])
except ImportError:
    sql = f"SELECT body, {template_sql()} FROM b"
templates = [r[1] for r in con.execute(sql).fetchall()]
print(json.dumps({"rows": [list(r) for r in rows], "templates": templates, "marks": marks}))
"""


def corpus() -> bytes:
    """Lines as apps write them: plain, JSON, logfmt, prefixed, tracebacks, non-UTF-8, very long, CRLF."""
    rnd = random.Random(12)
    tid, sid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    out: list[bytes] = []
    for i in range(3000):
        k = i % 33
        n = rnd.randint(0, 10**6)
        odd = ("\u00b2", "\u0661", "5", "12345678901")[n % 4]  # fractions: superscript, Arabic-Indic, ASCII
        line = [
            f"plain text line number {n} about nothing",
            "plain text line without any digit or level word",
            f"WARNING: slow request {n} took {rnd.randint(1, 900)} ms",
            f"2026-05-28 08:{i % 60:02d}:{n % 60:02d},{n % 1000:03d} INFO werkzeug: 127.0.0.1 - - GET /s/{n}.css 200",
            f'{{"ts":"2026-05-28T08:00:{n % 60:02d}Z","level":"info","msg":"GET /api/items/{n} 200","ms":{n / 7:.2f}}}',
            f'{{"time":{1_780_000_000 + n},"level":{rnd.choice([10, 30, 50, 60])},"msg":"pino {n}","x":{{"y":[1]}}}}',
            f'time=2026-05-28T08:00:00Z level=debug msg="cache lookup" key=item:{n} hit={n % 2 == 0}',
            f'level=error msg="esc \\"quoted\\" {n}" err=boom trace_id={tid}',
            f"2026-05-28 08:00:01.123 UTC [{100 + n % 3}] ERROR:  duplicate key value violates {n}",
            f"2026-05-28 08:00:01.124 UTC [{100 + n % 3}] DETAIL:  Key (id)=({n}) already exists.",
            f"123:M 28 May 2026 08:00:0{n % 10}.123 * Ready to accept connections {n}",
            f"2026-05-28T08:00:00.000Z\tinfo\tapp/main.go:{n % 300}\tstarted worker {n}",
            f"2026-05-28 08:00:02,000 ERROR [shop.api] trace_id={tid} span_id={sid} checkout failed {n}",
            f"2026-05-28 08:00:02 WARNING [app] [trace_id={tid} span_id={sid} resource.service.name=x] - m {n}",
            f"request {rnd.getrandbits(128):032x} id 550e8400-e29b-41d4-a716-{n:012d} hex 0x{n:08x} deadbeef",
            f'user said "{"lorem ipsum dolor sit amet " * rnd.randint(1, 3)}" and [error] left; level="warn" ok',
            'Traceback (most recent call last):\n  File "a.py", line 1, in <module>\n    f()\n'
            f"ValueError: bad value {n}\n\nDuring handling of the above exception, another exception occurred:\n\n"
            f"Traceback (most recent call last):\n  File \"b.py\", line 2, in g\nKeyError: 'k{n}'",
            f"ERROR something broke {n}\njava.lang.IllegalStateException: x\n\tat a.B.c(B.java:{n % 90})\n"
            "\tat a.B.d(B.java:2)\nCaused by: java.io.IOException: y\n\t... 3 more",
            f"Grüße aus Köln {n} ✓ — ERROR émoji 🎉",
            f"crlf line {n} [warn] done\r",
            "",
            "   ",
            f"caf\xe9 {n} error latin-1",
            # stamps whose fraction follows a whole second seen before (1 to 12 digits, a zone, other digits)
            f"2026-05-28 08:00:{n % 7:02d}.{(str(n) * 2)[: 1 + n % 12]} WARN fraction after a known second {n}",
            f"2026-05-28T08:00:{n % 60:02d}.{n % 1000:03d}+02:00 CRIT a zone after the fraction {n}",
            f"2026-05-28 08:00:{n % 60:02d},\u0661\u0662\u0663 ERROR arabic-indic digits in the fraction {n}",
            f"2026-05-28 08:00:{n % 60:02d} info a lower-case level after the time {n}",
            f'{{"time":"2026-05-28 08:00:0{n % 7},{n % 1000}","severity":"ERROR","message":"m {n}","msg":"s"}}',
            f'{{"ts":"2026-05-28 08:00:0{n % 7},{odd}","msg":"{n}"}}',
            f'level=info level=warn msg=first msg="second \\" {n}" k=v k="w"',
            rnd.choice(  # times at the bounds of a believable one: 2000-01-01 and a day ahead of the clock
                ["2000-01-01T00:00:00Z INFO at 2000", "1999-12-31T23:59:59.999Z INFO before 2000"]
                + ['{"ts":946684800,"msg":"at 2000"}', '{"ts":"1999-12-31T23:59:59Z","msg":"before"}']
                + [f"2026-05-29 08:00:00,{n % 1000:03d} INFO within a day", "2026-05-29 20:26:41 WARN past a day"]
                + ["2026-05-29T20:26:40Z ERROR exactly a day ahead"]
            ),
            rnd.choice(  # logfmt that needs backtracking, or is not logfmt at all
                [f'level=warn msg="open {n}', 'level=info msg=bc="x y"', f'k="a\\\\" msg=m{n}', 'msg="a\\']
                + [f'level=info msg="\\" {n}"', 'a="x"b=c level=debug', "level=error msg=x\ty=1", 'x= y="" z']
            ),
            rnd.choice(
                ["SEVERE disk", "x <notice> y", "a |debug| b", "panic: nil map", "fatal error: oom", "EMERG now"]
                + [
                    "İİİ [error] dotted",
                    "ok (crit) z",
                    "no-level-here-123",
                    'Ⅷ level="warn"',
                    "abcdefab ready",
                    "deadbeef",
                    "12345678",
                    "a-b",
                ]
            ),
        ][k]
        out.append(line.encode("latin-1") if k == 22 else line.encode())
        if i % 250 == 0:
            out.append(b"x" * (20_000 + n % 5000) + b" ERROR end of a very long line")
        if i % 400 == 0:
            out.append(b"\xff\xfe bad bytes \xc3( " + str(n).encode())
    return b"\n".join(out) + b"\npartial last line without newline"


def _run(src: Path, tmp: Path, name: str, data: bytes, cuts: list[int]) -> dict[str, list[object]]:
    d = tmp / name
    (d / "logs").mkdir(parents=True)
    (d / "corpus.bin").write_bytes(data)
    env = {**os.environ, "PYTHONPATH": str(src), "TZ": "UTC"}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(d), json.dumps(cuts)],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    doc: dict[str, list[object]] = json.loads(out.stdout)
    return doc


def test_line_rows_and_templates_equal_the_collector_before(tmp_path: Path) -> None:
    try:
        blob = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", BEFORE, "legible"],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"needs the git history with commit {BEFORE[:7]}")
    before = tmp_path / "before"
    before.mkdir()
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(before, filter="data")
    data = corpus()
    rnd = random.Random(3)
    cuts = sorted({rnd.randint(1, len(data) - 1) for _ in range(40)} | {len(data) // 2})
    old = _run(before, tmp_path, "old", data, cuts)
    new = _run(REPO, tmp_path, "new", data, cuts)
    assert len(old["rows"]) > 2000
    assert len(new["rows"]) == len(old["rows"])
    for a, b in zip(old["rows"], new["rows"], strict=True):
        assert a == b
    assert old["templates"] == new["templates"]
    assert old["marks"] == new["marks"]  # the offsets persisted with each batch (where a restart resumes)
    # the corpus reaches the paths that changed: ASCII chunks, a skipped level search, a template pre-check
    levels = {r[3] for r in new["rows"]}  # type: ignore[index]
    assert {"debug", "info", "warn", "error", "fatal"} <= levels
