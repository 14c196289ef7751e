"""The narrowed ``logs --grep`` predicate (legible.store.search_contains) answers as the joined search text does.

Runs both forms over one corpus in a real DuckDB store (migrations, the ``logs`` table), for every needle:
a hit only in an exception attribute, only in the body, across the newline that joins them, in another case,
with non-ASCII case mappings, in a nested ``exception`` object (not an attribute of the conventions), in a
non-exception attribute (not searched), and no hit at all.
"""

from __future__ import annotations

import json

import duckdb
import pytest

from legible.store import SEARCH_TEXT, migrate, search_contains

BODIES_ATTRS = [
    ("Exception on /boom [GET]", {"exception.type": "ValueError", "exception.message": "card 9191 declined"}),
    ("GET /items/7 200", {"http.route": "/items/{id}"}),
    ("worker stopped", {"exception.stacktrace": 'Traceback (most recent call last):\n  File "w.py"\nKeyError: x'}),
    ("ÄRGER im Straßenverkehr", {}),
    ("KELVIN sign: 5 \u212a", None),
    ("nested", {"exception": {"type": "NestedError"}}),
    ("only the route", {"route": "exception.type"}),
    ("CARD 9191 DECLINED in body", {"exception.type": "ValueError"}),
    ("multi\nline body", {"exception.message": "second part"}),
    ("escaped key", {"exception.message": 'quote " and backslash \\ inside'}),
]
NEEDLES = [
    "card 9191 declined",
    "valueerror",
    "KeyError: x",
    "ärger",
    "STRASSE",
    "straße",
    "5 k",
    "nestederror",
    "exception.type",
    "exception.",
    "route",
    "line body\nsecond",
    "body\nValueError",
    "ValueError\ncard",
    'quote "',
    "backslash \\",
    "nothing like this",
    "\n",
]


@pytest.fixture(scope="module")
def con():
    c = duckdb.connect()
    migrate(c)
    for seq, (body, attrs) in enumerate(BODIES_ATTRS):
        c.execute(
            "INSERT INTO logs (seq, time_ns, observed_ns, service, level, severity_number, body, source, attributes) "
            "VALUES (?, ?, ?, 'app', 'info', 9, ?, 'stdout', ?)",
            [seq, seq, seq, body, None if attrs is None else json.dumps(attrs)],
        )
    yield c
    c.close()


@pytest.mark.parametrize("needle", NEEDLES)
def test_search_contains_matches_the_joined_text(con, needle):
    joined = {
        r[0]
        for r in con.execute(
            f"SELECT seq FROM logs WHERE contains(lower({SEARCH_TEXT}), ?)", [needle.lower()]
        ).fetchall()
    }
    cond, params = search_contains(needle)
    narrowed = {r[0] for r in con.execute(f"SELECT seq FROM logs WHERE {cond}", params).fetchall()}  # noqa: S608
    assert narrowed == joined


def test_the_corpus_has_hits_in_attributes_only_and_across_the_join(con):
    """The parametrized test above is only worth something if the corpus exercises every branch."""

    def hits(needle: str) -> set[int]:
        cond, params = search_contains(needle)
        return {r[0] for r in con.execute(f"SELECT seq FROM logs WHERE {cond}", params).fetchall()}  # noqa: S608

    assert hits("card 9191 declined") == {0, 7}  # 0: in exception.message only; 7: in the body only
    assert hits("KeyError: x") == {2}  # in exception.stacktrace only
    assert hits("line body\nsecond") == {8}  # across the newline between body and attribute
    assert hits("nestederror") == set()  # a nested object is not the exception.type attribute
    assert hits("route") == {6}  # an attribute value outside the conventions is not searched, the body is
