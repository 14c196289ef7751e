"""The narrowed ``logs --grep``/``--regex`` predicates (legible.store.search_contains, search_regex) answer as the
joined search text does.

Runs both forms over one corpus in a real DuckDB store (migrations, the ``logs`` table), for every needle:
a hit only in an exception attribute, only in the body, across the newline that joins them, in another case,
with non-ASCII case mappings, in a nested ``exception`` object (not an attribute of the conventions), in a
non-exception attribute (not searched), and no hit at all. The reference is
``contains(lower(SEARCH_TEXT), lower(needle))`` with DuckDB's ``lower`` on both sides; the narrowed form matches
the body with ``ILIKE``, so a second corpus of case-mapping edge cases (Turkish dotted and dotless i, German
sharp s, Greek final sigma, combining marks, Kelvin and Angstrom signs, ligatures, Cherokee and Georgian
letters whose lower case is in another block, NUL, newlines, LIKE wildcards and backslashes) is searched for
every substring of its strings and their case variants. The rows are stored as the collector stores them
(``has_exception`` set at ingest) and as another writer might (``NULL``: the test is made when searching).
"""

from __future__ import annotations

import json

import duckdb
import pytest

from legible.store import HAS_EXCEPTION_SQL, SEARCH_TEXT, migrate, search_contains, search_regex

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
    ("ΟΔΟΣ İstanbul", {"exception.message": "ΟΔΟΣ İSTANBUL 5 \u212a"}),
    ("100% done_now", {"exception.type": "50%_Error"}),
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
    "ΟΔΟΣ",
    "İstanbul",
    "istanbul",
    "100%",
    "% d",
    "e_n",
    "50%_error",
]


def _store(bodies_attrs: list[tuple[str, dict | None]], flag: bool) -> duckdb.DuckDBPyConnection:
    """A store holding the rows; ``flag``: ``has_exception`` written as the collector writes it, else ``NULL``."""
    c = duckdb.connect()
    migrate(c)
    for seq, (body, attrs) in enumerate(bodies_attrs):
        c.execute(
            "INSERT INTO logs (seq, time_ns, observed_ns, service, level, severity_number, body, source, attributes) "
            "VALUES (?, ?, ?, 'app', 'info', 9, ?, 'stdout', ?)",
            [seq, seq, seq, body, None if attrs is None else json.dumps(attrs)],
        )
    if flag:
        c.execute(f"UPDATE logs SET has_exception = {HAS_EXCEPTION_SQL}")  # noqa: S608 - fixed SQL
    assert c.execute("SELECT count(*) FROM logs WHERE has_exception IS NULL").fetchone() == (
        0 if flag else len(bodies_attrs),
    )
    return c


@pytest.fixture(scope="module", params=[True, False], ids=["flag-at-ingest", "flag-null"])
def con(request):
    c = _store(BODIES_ATTRS, request.param)
    yield c
    c.close()


def _joined(c: duckdb.DuckDBPyConnection, needle: str) -> set[int]:
    sql = f"SELECT seq FROM logs WHERE contains(lower({SEARCH_TEXT}), lower(?))"  # noqa: S608 - fixed SQL
    return {r[0] for r in c.execute(sql, [needle]).fetchall()}


def _narrowed(c: duckdb.DuckDBPyConnection, needle: str) -> set[int]:
    cond, params = search_contains(needle)
    return {r[0] for r in c.execute(f"SELECT seq FROM logs WHERE {cond}", params).fetchall()}  # noqa: S608


@pytest.mark.parametrize("needle", NEEDLES)
def test_search_contains_matches_the_joined_text(con, needle):
    assert _narrowed(con, needle) == _joined(con, needle)


#: Strings whose lower case is not what ASCII (or Python's ``str.lower``) would make of them.
HOSTILE = [
    "İstanbul ISTANBUL ıiIi",  # Turkish dotted capital I (lower: i), dotless i
    "i\u0307 combining dot above",
    "Straße STRASSE \u1e9e straße",  # sharp s, capital sharp s
    "ΟΔΟΣ οδος ΣΊΣΥΦΟΣ ς σ Σ",  # Greek sigma, final sigma
    "e\u0301 \u00e9 E\u0301 \u00c9 a\u0308\u0308",  # combining acute, precomposed, stacked marks
    "5 \u212a 5 k \u212b \u00e5",  # Kelvin sign (lower: k), Angstrom sign (lower: a with ring)
    "\ufb01le \ufb00 FILE",  # ligatures fi, ff (no single-letter lower case)
    "\u13a0\u13a1 \uab70\uab71",  # Cherokee: capitals U+13A0.., their lower case U+AB70..
    "\u1c90\u1c91 \u10d0\u10d1",  # Georgian Mtavruli, lower case Mkhedruli
    "\u01c4 \u01c5 \u01c6 titlecase dz",
    "\uff21\uff22 \uff41\uff42 full width",
    "nul\x00byte NUL\x00BYTE",
    "cr\rlf\r\ntab\tend",
    "wild%card_under\\slash \\% \\_",
    "emoji \U0001f600 \U0001f600X",
    "\u0130",
    "",
]


def _needles(corpus: list[str]) -> list[str]:
    """Every substring of 1 to 3 characters, each word, and their Python case variants."""
    found: set[str] = set()
    for text in corpus:
        for n in (1, 2, 3):
            found.update(text[i : i + n] for i in range(len(text) - n + 1))
        found.update(text.split())
    variants = {v for s in found for v in (s, s.upper(), s.lower(), s.swapcase(), s.casefold())}
    return sorted(v for v in variants if v)


def test_ilike_answers_as_contains_lower_over_a_hostile_corpus():
    rows = [(text, None) for text in HOSTILE]
    rows += [("plain", {"exception.message": text}) for text in HOSTILE]  # the same texts as exception attributes
    needles = _needles(HOSTILE)
    assert len(needles) > 500
    for flag in (True, False):
        c = _store(rows, flag)
        wrong = [n for n in needles if _narrowed(c, n) != _joined(c, n)]
        c.close()
        assert not wrong, wrong[:20]


def test_the_ilike_form_is_used_and_wildcards_are_not_read_as_wildcards():
    assert search_contains("declined")[0].startswith("(body ILIKE ?")
    assert search_contains("100%")[0].startswith("(contains(lower(body)")
    c = _store([("100% done", None), ("1000 done", None), ("a_b", None), ("axb", None)], True)
    assert _narrowed(c, "100%") == {0}
    assert _narrowed(c, "a_b") == {2}
    assert _narrowed(c, "ΟΔΟΣ") == set()
    c.close()


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


def test_grep_answers_from_a_proof_bundle_and_from_a_store_file_of_the_first_schema(tmp_path):
    """Neither can be migrated: a bundle's Parquet files and a read-only file a collector before m002 wrote."""
    from legible.bundle import bundle_store, write_signals
    from legible.queries.logs import log_groups, make_filter
    from legible.store import MIGRATIONS, Store, open_store, store_path

    def fill(c: duckdb.DuckDBPyConnection) -> None:
        for seq, (body, attrs) in enumerate(BODIES_ATTRS):
            c.execute(
                "INSERT INTO logs (seq, time_ns, observed_ns, service, level, severity_number, body, source, "
                "attributes) VALUES (?, ?, ?, 'app', 'info', 9, ?, 'stdout', ?)",
                [seq, seq, seq, body, None if attrs is None else json.dumps(attrs)],
            )

    flt = make_filter(since="all", grep="card 9191 declined", now=10**6)
    src = duckdb.connect()
    migrate(src)
    fill(src)
    write_signals(Store(path=tmp_path / "unused", _con=src), tmp_path / "bundle", 0, lambda s: s)
    src.close()
    from_bundle = log_groups(bundle_store(tmp_path / "bundle"), flt, now=10**6)
    assert from_bundle.total == 2  # one in exception.message only, one in the body only

    path = store_path(tmp_path / ".legible")
    path.parent.mkdir(parents=True)
    old = duckdb.connect(str(path))
    old.execute("CREATE TABLE _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)")
    MIGRATIONS[0][1](old)
    old.execute("INSERT INTO _migrations VALUES ('m001_initial', now()::TIMESTAMP)")
    fill(old)
    old.close()
    with open_store(tmp_path / ".legible") as store:  # no collector: the file, read-only
        assert log_groups(store, flt, now=10**6).total == 2
        assert store.query("SELECT count(*), count(has_exception) FROM logs").rows == [(len(BODIES_ATTRS), 0)]
        assert store.query("SELECT count(group_id) FROM logs").rows == [(0,)]
        assert store.query("SELECT count(*) FROM log_groups").rows == [(0,)]
    con = duckdb.connect(str(path))
    # the file itself was left as it was
    assert migrate(con) == ["m002_logs_has_exception", "m003_log_groups", "m004_log_words"]
    con.close()


#: RE2 patterns over BODIES_ATTRS: anchored, case-insensitive, across the joining newline, matching the empty
#: text, in an attribute only, in the body only, and one matching nothing.
PATTERNS = [
    r"card \d+ declined",
    r"(?i)card \d+ declined",
    r"^GET /items/\d+ 200$",
    r"ValueError$",
    r"^ValueError",
    r"body\nsecond",
    r"(?s)multi.*second part",
    r"\ncard",
    r"^$",
    r"^",
    r"x$",
    r"worker stopped\nTraceback",
    r"KeyError: x$",
    r"(?m)^KeyError",
    r"nestederror|NestedError",
    r"exception\.type",
    r"\x{212a}",
    r"zzz",
]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_search_regex_matches_the_joined_text(con, pattern):
    joined = f"SELECT seq FROM logs WHERE regexp_matches({SEARCH_TEXT}, ?)"  # noqa: S608 - fixed SQL
    cond, params = search_regex(pattern)
    narrowed = f"SELECT seq FROM logs WHERE {cond}"  # noqa: S608 - fixed SQL
    expected = {r[0] for r in con.execute(joined, [pattern]).fetchall()}
    assert {r[0] for r in con.execute(narrowed, params).fetchall()} == expected


def test_the_regex_corpus_has_hits_in_attributes_only_and_across_the_join(con):
    def hits(pattern: str) -> set[int]:
        cond, params = search_regex(pattern)
        return {r[0] for r in con.execute(f"SELECT seq FROM logs WHERE {cond}", params).fetchall()}  # noqa: S608

    assert hits(r"card \d+ declined") == {0}  # in exception.message only (the body of 7 is upper case)
    assert hits(r"body\nsecond") == {8}  # across the newline between body and attribute
    assert hits(r"worker stopped\nTraceback") == {2}
    assert hits(r"^GET /items/\d+ 200$") == {1}  # anchored on a row whose joined text is its body
    assert hits(r"^$") == set()  # no row's text is empty
