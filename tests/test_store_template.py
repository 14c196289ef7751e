"""``logs.template`` computed in Python (:func:`legible.store.template_of`) equals DuckDB's SQL folding.

The collector's flush of a small log batch takes its templates from Python, a large batch from the SQL
(:data:`legible.collector._writer.PY_TEMPLATE_ROWS`): both must store the same rows. Compared here over the
corpus of lines apps write (``tests/test_collector_lines_diff.py``) and over random strings built from the
characters the regexes care about (hex digits, ``-``, ``.``, ``"``, ``0x``, non-ASCII digits and letters,
combining marks, headlines around the 300 code point cut).
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from legible._template import TEMPLATE_RES
from legible.collector import _writer
from legible.collector._writer import Writer
from legible.store import template_of, template_select, template_sql
from tests.test_collector_lines_diff import corpus

_ALPHABET = [*'0123456789abcdefABCDEFxX-_." \n\r\t:/=', "é", "\u0661", "\u00b2", "🎉", "e\u0301", "\u200d", "İ"]
_ALPHABET.append("\x00")


def _bodies() -> list[str]:
    """The lines-diff corpus (decoded as the tailer does, with replacement) and 20,000 random strings."""
    bodies = corpus().decode("utf-8", errors="replace").split("\n")
    rnd = random.Random(7)
    for _ in range(20_000):
        n = rnd.choice([1, 8, 12, 30, 80, 299, 300, 301, 320, 700])
        body = "".join(rnd.choice(_ALPHABET) for _ in range(rnd.randint(0, n)))
        body = rnd.choice(["", "", "0x", '"', "Traceback (most recent call last):", "550e8400-e29b-41d4-a716-"]) + body
        bodies.append(body)
    return bodies


def _sql_templates(bodies: list[str]) -> tuple[list[str], list[str]]:
    con = duckdb.connect()
    con.register("b", pa.table({"body": bodies}))
    single = [r[0] for r in con.execute(f"SELECT {template_sql()} FROM b").fetchall()]
    staged = [r[1] for r in con.execute(template_select("b", ["body"])).fetchall()]
    con.close()
    return single, staged


def test_template_of_equals_the_sql_folding() -> None:
    bodies = _bodies()
    single, staged = _sql_templates(bodies)
    assert staged == single
    mine = [template_of(b) for b in bodies]
    wrong = [(b, s, m) for b, s, m in zip(bodies, single, mine, strict=True) if s != m]
    assert not wrong, f"{len(wrong)} templates differ, e.g. {wrong[:3]!r}"
    # the corpus reaches every step, so an equal answer is not an empty one
    for placeholder in ("<uuid>", "<hex>", "<n>", '"<s>"'):
        assert any(placeholder in t for t in mine), placeholder
    assert any(b.startswith("Traceback") and "\n" in b.strip() for b in bodies)
    assert any(len(b.partition("\n")[0]) > 300 for b in bodies)


def test_the_comparison_sees_a_folding_with_unicode_classes() -> None:
    """The same regexes without ``re.ASCII`` (``\\d`` and ``\\b`` over Unicode) differ from the SQL here."""
    bodies = _bodies()
    single, _ = _sql_templates(bodies)
    regexes = [(re.compile(p), r) for p, r in TEMPLATE_RES]

    def unicode_template(body: str) -> str:
        if body.startswith("Traceback (most recent call last):"):
            head = body.rstrip("\n ").rpartition("\n")[2][:300]
        else:
            head = body.partition("\n")[0][:300]
        for regex, placeholder in regexes:
            head = regex.sub(placeholder, head)
        return head

    assert [unicode_template(b) for b in bodies] != single


def _log_rows(bodies: list[str]) -> list[tuple[Any, ...]]:
    """Rows in the writer's ``LOG_COLUMNS`` order around ``bodies``: levels, services, exceptions, trace ids."""
    rnd = random.Random(3)
    rows = []
    for i, body in enumerate(bodies):
        attrs = rnd.choice(['{"exception.type": "KeyError"}', '{"http.route": "/x"}', None])
        trace = f"{rnd.getrandbits(128):032x}" if i % 5 == 0 else None
        level = rnd.choice(["info", "info", "warn", "error"])
        service = rnd.choice(["app", "worker"])
        rows.append((10**18 + i, 10**18 + i, service, level, 9, None, body, attrs, "{}", None, trace, None, "stdout"))
    return rows


@pytest.mark.parametrize("py_rows", [0, 10**9])
def test_the_small_and_the_large_batch_paths_store_the_same_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, py_rows: int
) -> None:
    """Batches of 1 to 5,000 rows stored with templates from Python and from DuckDB give equal tables."""
    rows = _log_rows(_bodies()[:9000])
    sizes = [1, 1, 7, 300, 1000, 1001, 5000]
    stores = {}
    for name, limit in (("default", _writer.PY_TEMPLATE_ROWS), ("forced", py_rows)):
        monkeypatch.setattr(_writer, "PY_TEMPLATE_ROWS", limit)
        w = Writer(tmp_path / name / "s.duckdb")
        at = 0
        for n in sizes:
            assert w.add("logs", rows[at : at + n])
            w.flush()
            at += n
        assert w.pending == 0
        stores[name] = (
            w.con.execute("SELECT * FROM logs ORDER BY seq").fetchall(),
            w.con.execute("SELECT * FROM log_groups ORDER BY id").fetchall(),
        )
        w.close()
    (logs_a, groups_a), (logs_b, groups_b) = stores["default"], stores["forced"]
    assert len(logs_a) == sum(sizes) and len(groups_a) > 10
    assert all(r[-1] is not None for r in logs_a if r[9] is not None)  # every row with a template has a group
    assert logs_a == logs_b
    assert groups_a == groups_b


def _dangling(con: duckdb.DuckDBPyConnection) -> int:
    """Log rows whose ``group_id`` is not the ``log_groups`` id of their own (level, service, template)."""
    row = con.execute(
        "SELECT count(*) FROM logs AS l LEFT JOIN log_groups AS d ON d.id = l.group_id WHERE d.id IS NULL"
        " OR d.level != l.level OR d.service != l.service OR d.template != l.template"
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_known_group_ids_are_forgotten_when_the_size_cap_deletes_their_groups(tmp_path: Path) -> None:
    """After a prune removed a group, a small batch of its key gets a new id that ``log_groups`` holds."""
    old = [
        (10**18, 10**18, "app", "info", 9, None, f"alpha step {w}", None, "{}", None, None, None, "stdout")
        for w in "ab"
    ]
    new = (10**18, 10**18, "app", "warn", 13, None, "beta", None, "{}", None, None, None, "stdout")
    w = Writer(tmp_path / "s.duckdb")
    for _ in range(3):  # the first flush learns the two ids by the join, the next ones use them
        assert w.add("logs", list(old))
        w.flush()
    assert len(w._group_ids) == 2
    for i in range(40):
        assert w.add("logs", [(*new[:6], f"beta {j} {'x' * (i + j)}", *new[7:]) for j in range(200)])
        w.flush()
    w.max_bytes = 1  # every prune pass deletes the oldest fifth, ten passes
    assert w.prune() > 0
    assert w.con.execute("SELECT count(*) FROM log_groups WHERE template LIKE 'alpha%'").fetchone() == (0,)
    assert w.add("logs", list(old))
    w.flush()
    assert w.pending == 0
    assert w.con.execute("SELECT count(*) FROM logs WHERE template LIKE 'alpha%'").fetchone() == (2,)
    assert _dangling(w.con) == 0
    w.close()
