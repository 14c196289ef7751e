"""A CLI that reads the kept store file uses DuckDB's engine module alone (legible._dbengine, issue 12).

* Every name callers take from :func:`legible._dbengine.engine` is the same object in the installed ``duckdb``
  package and in ``_duckdb`` (an upgrade that stops re-exporting one unchanged fails here, not in a user's query).
* In a fresh process, reading a real store file (migrations, rows of every type the queries return, a rejected
  statement) never imports the ``duckdb`` package, and answers exactly what the same statements answer through
  the package in a process that imported it (the collector's case).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from legible._dbengine import REEXPORTED, engine
from legible.store import migrate, store_path

_duckdb = pytest.importorskip("_duckdb")

#: Statements over the store whose answers the two processes compare: rows, each JSON type ``jsonable`` maps
#: (time, decimal, UUID, interval, list, struct, blob, NaN), and one statement DuckDB rejects.
STATEMENTS = [
    "SELECT seq, service, level, body FROM logs ORDER BY seq",
    "SELECT level, count(*) AS n FROM logs GROUP BY level ORDER BY level",
    "SELECT to_timestamp(1700000000)::TIMESTAMPTZ AS t, 1.5::DECIMAL(4, 2) AS d, "
    "'5a4ab2f0-6a93-4c2b-8f53-8c0b5c1f4a10'::UUID AS u, INTERVAL 3 SECOND AS i, [1, 2] AS l, {'a': 1} AS s, "
    "'x'::BLOB AS b, 'nan'::DOUBLE AS nan",
    "SELECT no_such_column FROM logs",
]

#: Runs in a fresh interpreter: queries the file read-only through legible.store, prints the answers and
#: whether the ``duckdb`` package got imported.
_READER = """
import json, sys
from pathlib import Path
from legible._errors import UsageError
from legible.store import Store
if sys.argv[2] == "package":
    import duckdb  # the collector's case: the package is loaded, engine() returns it
store = Store(path=Path(sys.argv[1]))
out = []
for sql in json.loads(sys.stdin.read()):
    try:
        res = store.query(sql)
        out.append({"columns": res.columns, "rows": [list(r) for r in res.rows], "source": res.source})
    except UsageError as e:
        out.append({"error": str(e)})
print(json.dumps({"answers": out, "package": "duckdb" in sys.modules}))
"""


def test_reexported_names_are_the_engine_objects() -> None:
    for name in REEXPORTED:
        assert getattr(duckdb, name) is getattr(_duckdb, name), name
    assert engine() is duckdb  # this process imported the package: it is used as it is


def _read(path: Path, mode: str) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", _READER, str(path), mode],
        input=json.dumps(STATEMENTS),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    doc: dict[str, object] = json.loads(proc.stdout)
    return doc


def test_file_reader_skips_the_package_and_answers_the_same(tmp_path: Path) -> None:
    path = store_path(tmp_path / ".legible")
    path.parent.mkdir(parents=True)
    con = duckdb.connect(str(path))
    migrate(con)
    con.execute(
        """INSERT INTO logs (seq, time_ns, observed_ns, service, level, severity_number, severity_text, body,
                             attributes, resource, source)
           SELECT i, 1700000000000000000 + i, 1700000000000000000 + i, 'app',
                  CASE WHEN i % 3 = 0 THEN 'error' ELSE 'info' END, 9, 'INFO', 'line ' || i || ' ünïcode',
                  '{}', '{}', 'stdout'
           FROM range(50) AS r(i)"""
    )
    con.close()
    alone, with_package = _read(path, "engine"), _read(path, "package")
    assert alone["package"] is False  # the reading CLI's case: no duckdb package layer
    assert with_package["package"] is True
    assert alone["answers"] == with_package["answers"]
    answers = alone["answers"]
    assert isinstance(answers, list)
    assert len(answers[0]["rows"]) == 50 and answers[0]["rows"][1][3] == "line 1 ünïcode"
    assert answers[2]["rows"][0][1:] == [1.5, "5a4ab2f0-6a93-4c2b-8f53-8c0b5c1f4a10", 3.0, [1, 2], {"a": 1}, "78", None]
    assert "no_such_column" in answers[3]["error"]
