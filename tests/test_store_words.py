"""The word index of ``logs --grep`` (``log_words``, legible.store.word_runs / pick_word / search_contains).

Differential: for every needle, the rows (and the grouped view) found through the index, for *each* run of the
needle that :func:`legible.store.word_runs` offers, equal those of the scan without it. The store is written by
the collector's own writer (both flush paths: a batch above ``PY_TEMPLATE_ROWS`` has its template from SQL, a
small one from Python), by another writer (rows without postings, ``indexed`` ``NULL``), then pruned; the corpus
is the case-mapping corpus of ``tests/test_store_search.py`` plus random bodies (hex ids, digits, punctuation,
newlines, LIKE wildcards, non-ASCII letters whose lower case is ASCII), and the needles are its substrings and
random slices of random bodies (prefix, suffix and interior runs). A control drops one posting and expects the
differential to see it. Last, a real collector ingests lines and ``legible logs --grep`` answers through it.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import duckdb
import pytest

from legible.collector._writer import PY_TEMPLATE_ROWS, Writer
from legible.queries.logs import log_groups, make_filter
from legible.store import INDEXED_TEXT, WORD_RE, Store, WordPlan, pick_word, search_contains, word_runs
from tests.conftest import wait_until
from tests.test_store_search import HOSTILE, _needles

NOW = 1_780_000_000_000_000_000
#: Words of the random bodies: ordinary, hex-only (not indexed), mixed case, with letters whose lower case is
#: ASCII in DuckDB (Kelvin sign) or longer (dotted capital I), digits, LIKE wildcards.
VOCAB = [
    "declined",
    "DECLINED",
    "Declined",
    "card",
    "payment",
    "GET",
    "items",
    "user",
    "cache",
    "miss",
    "deadbeef",
    "cafe",
    "fade",
    "abc",
    "xyz",
    "\u212aelvin",
    "\u0130stanbul",
    "stra\u00dfe",
    "%",
    "_",
    "50%_off",
    "a_b",
    "x",
    "ok",
    "timeout",
    "Timeout",
    "TIMEOUT",
    "order",
    "orders",
    "reorder",
    "ΟΔΟΣ",
    "9f3ea1c2",
    "42",
    # around what the template folds (legible.store.covered_sql): hex runs of 8+ next to letters or not, 0x/0X,
    # UUIDs inside words, numbers inside words, long quoted strings
    "deadbeefcafe0123",
    "gdeadbeef1",
    "deadbeef1g",
    "0xdeadbeef",
    "0XCAFEBABE1",
    "x0xfeedface9",
    "123e4567-e89b-12d3-a456-426614174000",
    "xy123e4567-e89b-12d3-a456-426614174000abcg",
    "user42x",
    "3.14abc",
    "v2beta7",
    '"a quoted string longer than twenty four"',
    '"short one"',
    "\u212adeadbeef1",
    "Traceback (most recent call last):",
]
SEPS = [" ", "  ", "/", "=", ":", ".", "-", "\n", "\t", ",", "", '"', "\\"]


def random_body(rnd: random.Random) -> str:
    parts = []
    for _ in range(rnd.randint(1, 9) if rnd.random() < 0.95 else rnd.randint(40, 90)):  # some past 300 characters
        parts.append(rnd.choice(VOCAB) if rnd.random() < 0.8 else format(rnd.getrandbits(32), "x"))
        parts.append(rnd.choice(SEPS))
    return "".join(parts).strip() or "empty"


def log_row(body: str, i: int, attrs: dict | None = None) -> tuple:
    """A ``logs`` row in the writer's column order (see ``LOG_COLUMNS``)."""
    level = ("info", "warn", "error")[i % 3]
    return (NOW + i, NOW + i, "app", level, 9, None, body, json.dumps(attrs or {}), "{}", None, None, None, "stdout")


def _seqs(con: duckdb.DuckDBPyConnection, cond: str, params: list) -> set[int]:
    return {r[0] for r in con.execute(f"SELECT seq FROM logs WHERE {cond}", params).fetchall()}  # noqa: S608


def _differences(con: duckdb.DuckDBPyConnection, needles: list[str]) -> tuple[list[tuple], int]:
    """Needles (with the run) whose indexed rows differ from the scan's; and how many (needle, run) were tried."""
    wrong, tried = [], 0
    unindexed = con.execute("SELECT count(*) FROM logs WHERE indexed IS NULL").fetchone()[0] > 0
    for needle in needles:
        scan = _seqs(con, *search_contains(needle))
        for word in word_runs(needle):
            tried += 1
            if _seqs(con, *search_contains(needle, WordPlan(*word, unindexed, True))) != scan:
                wrong.append((needle, word))
    return wrong, tried


def write(w: Writer, bodies: list[str], first: int, batch: int, exception_every: int = 0) -> int:
    """Add ``bodies`` through the writer in batches of ``batch`` rows, one flush each; return the next index."""
    i = first
    for start in range(0, len(bodies), batch):
        rows = [log_row(b, i + k) for k, b in enumerate(bodies[start : start + batch])]
        if exception_every:  # an exception attribute holding the needle: searched, not indexed
            rows[0] = log_row(rows[0][6], i, {"exception.message": "Declined by the bank"})
        w.add("logs", rows)
        w.flush()
        i += len(rows)
    return i


def _small_store(tmp_path: Path, bodies: list[str]) -> duckdb.DuckDBPyConnection:
    """A store of ``bodies`` written by the writer in one flush, opened writable for a test to damage."""
    path = tmp_path / "signals.duckdb"
    w = Writer(path)
    write(w, bodies, 0, 10)
    w.close()
    return duckdb.connect(str(path))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    """A store written by the writer (both flush paths), pruned, then another writer, then the writer again."""
    path = tmp_path_factory.mktemp("words") / "signals.duckdb"
    rnd = random.Random(7)
    bodies = [random_body(rnd) for _ in range(5000)] + HOSTILE + [f"{h} tail" for h in HOSTILE]
    w = Writer(path)
    i = write(w, bodies[: PY_TEMPLATE_ROWS + 200], 0, PY_TEMPLATE_ROWS + 200)  # the SQL template path
    i = write(w, bodies[PY_TEMPLATE_ROWS + 200 : 2400], i, 300, exception_every=1)  # the Python template path
    before = w.con.execute("SELECT min(seq), count(*) FROM logs").fetchone()
    w.max_bytes = 1  # prune: the oldest rows go, a fifth at a time, with their postings
    assert w.prune() > 0
    after = w.con.execute("SELECT min(seq), count(*) FROM logs").fetchone()
    assert after[0] > before[0] and 0 < after[1] < before[1]
    w.close()
    foreign = duckdb.connect(str(path))  # another writer: no postings, indexed NULL, a group without its words
    foreign.execute(
        "INSERT INTO log_groups SELECT max(id) + 1, 'info', 'app', 'foreign <n> declined group' FROM log_groups"
    )
    for k, body in enumerate(bodies[2400:2700]):
        foreign.execute(
            "INSERT INTO logs (seq, time_ns, observed_ns, service, level, severity_number, body, source, attributes) "
            "VALUES (?, ?, ?, 'other', 'info', 9, ?, 'stdout', '{}')",
            [i + k, NOW + i + k, NOW + i + k, body],
        )
    i += 300
    foreign.close()
    w = Writer(path)
    i = write(w, bodies[2700:4000], i, 1300)
    i = write(w, bodies[4000:], i, 250, exception_every=1)
    i = write(w, ["foreign 7 declined group"] * 3, i, 3)  # one of each level: the info one meets that group
    repeated = ["x declined y", "a DECLINED twice\nmore", "GET /items/42 200 declined"] * 3
    write(w, repeated, i, 3)  # the keys are known after the first flush: the writer brings the group ids too
    assert w._group_ids  # that path was taken
    w.close()
    con = duckdb.connect(str(path), read_only=True)
    yield con, bodies
    con.close()


def test_the_store_holds_every_kind_of_row(store):
    con, _ = store
    indexed, unindexed, exceptions, words = con.execute(
        "SELECT count(*) FILTER (WHERE indexed), count(*) FILTER (WHERE indexed IS NULL), "
        "count(*) FILTER (WHERE has_exception), (SELECT count(*) FROM log_words) FROM logs"
    ).fetchone()
    assert indexed > 1000 and unindexed == 300 and exceptions >= 5 and words > 100
    low = con.execute("SELECT min(seq) FROM logs").fetchone()[0]
    stale = "SELECT count(*) FROM (SELECT unnest(seqs) AS s FROM log_words) WHERE s < ?"
    assert con.execute(stale, [low]).fetchone() == (0,)  # the prune took the postings with their rows
    missing = (  # every indexed row is listed under each of its words, those of its exception attributes too
        f"SELECT count(*) FROM (SELECT seq, unnest(regexp_extract_all(lower({INDEXED_TEXT}), ?)) AS w FROM logs "
        "WHERE indexed) AS r ANTI JOIN (SELECT word, unnest(seqs) AS s FROM log_words) AS p "
        "ON p.word = r.w AND p.s = r.seq"
    )
    assert con.execute(missing, [WORD_RE]).fetchone() == (0,)
    uncovered = (  # and every word of a row its group covers is a word of the group's template
        f"SELECT count(*) FROM (SELECT group_id, unnest(regexp_extract_all(lower({INDEXED_TEXT}), ?)) AS w "
        "FROM logs WHERE NOT indexed) AS r ANTI JOIN log_group_words AS g ON g.group_id = r.group_id AND g.word = r.w"
    )
    assert con.execute(uncovered, [WORD_RE]).fetchone() == (0,)
    covered, own = con.execute(
        "SELECT count(*) FILTER (WHERE NOT indexed), count(*) FILTER (WHERE indexed) FROM logs"
    ).fetchone()
    assert covered > 500 and own > 500  # both kinds are exercised
    foreign_group = (  # the group another writer added got its words when the writer reopened the file
        "SELECT count(*) FROM logs JOIN log_group_words AS g USING (group_id) "
        "WHERE NOT indexed AND level = 'info' AND template = 'foreign <n> declined group' AND g.word = 'declined'"
    )
    assert con.execute(foreign_group).fetchone() == (1,)
    assert con.execute("SELECT count(*) FROM log_words WHERE n <> len(seqs)").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM log_words WHERE word = 'bank'").fetchone()[0] > 0  # from attributes


def test_indexed_search_equals_the_scan_for_the_case_mapping_corpus(store):
    con, _ = store
    needles = _needles(HOSTILE) + [w for h in HOSTILE for w in h.split()] + VOCAB
    wrong, tried = _differences(con, needles)
    assert not wrong, wrong[:20]
    assert tried > 30  # the index was asked, not only the scan


def test_indexed_search_equals_the_scan_for_random_slices(store):
    con, bodies = store
    rnd = random.Random(3)
    needles = []
    for _ in range(400):
        body = rnd.choice(bodies)
        a = rnd.randrange(len(body))
        needles.append(body[a : a + rnd.randint(1, 24)])
    needles += ["declined", " declined ", "card declined", "clined", "declin", "ECLINE", "elvin", "kelvin", "50%_o"]
    wrong, tried = _differences(con, needles)
    assert not wrong, wrong[:20]
    kinds = {word[0] for n in needles for word in word_runs(n)}
    assert kinds == {"word", "prefix", "suffix", "infix"} and tried > 200


def test_the_grouped_view_and_lines_are_the_same_through_the_index(store):
    con, _ = store
    s = Store(path=Path("unused"), _con=con)
    for needle in ["declined", "Declined by", "timeout", "orders", "kelvin", "\u0130stanbul", "stanbul", "xyz/"]:
        flt = make_filter(since="all", grep=needle, now=NOW + 10**9)
        scan = log_groups(s, dataclasses.replace(flt, grep_word=None), now=NOW)
        for word in word_runs(needle):
            via = log_groups(s, dataclasses.replace(flt, grep_word=WordPlan(*word, True)), now=NOW)
            assert (via.total, via.by_level, via.groups) == (scan.total, scan.by_level, scan.groups), (needle, word)


def test_pick_word_takes_the_fewest_postings_and_scans_when_they_are_many(store):
    con, _ = store

    def query(sql: str, params: list) -> list:
        return con.execute(sql, params).fetchall()

    assert word_runs("card declined") == [("prefix", "declined"), ("suffix", "card")]
    assert pick_word(query, "card declined", break_even=1.0)[:2] in word_runs("card declined")
    assert pick_word(query, "card declined", break_even=1.0).unindexed  # the other writer's rows are read too
    assert pick_word(query, "card declined", break_even=0.0) is None  # the share is above the break-even
    assert pick_word(query, "abc") is None  # hex letters only: not indexed
    assert pick_word(query, "ok") is None  # too short


def test_word_runs_bound_each_run_by_what_the_needle_puts_around_it():
    assert word_runs("declined") == [("infix", "declined")]
    assert word_runs(" Declined.") == [("word", "declined")]
    assert word_runs("/items/42 GET") == [("word", "items"), ("prefix", "get")]
    assert word_runs("\u212aelvin") == [("infix", "elvin")]  # the Kelvin sign lowers to k: the side is open
    assert word_runs("beef cafe") == []  # hex letters only
    assert word_runs("ab-xy") == []


def test_a_missing_posting_is_seen_by_the_differential(tmp_path):
    """The control: drop one row's posting of a word (or a group's word), and an indexed search loses the row."""
    c = _small_store(tmp_path, ["card declined", "other", "a DECLINED twice\nmore", "x declined y"])
    assert c.execute("SELECT list(indexed ORDER BY seq) FROM logs").fetchone() == ([False, False, True, False],)
    assert _differences(c, [" declined "]) == ([], 1)
    c.execute("UPDATE log_words SET seqs = list_filter(seqs, lambda s: s <> 2) WHERE word = 'declined'")
    wrong, _ = _differences(c, [" declined "])
    assert wrong == [(" declined ", ("word", "declined"))]
    c.execute("UPDATE log_words SET seqs = list_append(seqs, 2) WHERE word = 'declined'")
    assert _differences(c, [" declined "]) == ([], 1)
    c.execute("DELETE FROM log_group_words WHERE word = 'declined'")
    wrong, _ = _differences(c, [" declined "])
    c.close()
    assert wrong == [(" declined ", ("word", "declined"))]


def test_rows_without_postings_are_read_only_when_the_plan_says_so(store):
    """The control for ``WordPlan.unindexed``: without it, the other writer's matching rows are lost."""
    con, _ = store
    needle = " declined"
    scan = _seqs(con, *search_contains(needle))
    assert _seqs(con, *search_contains(needle, WordPlan("prefix", "declined", True))) == scan
    partial = _seqs(con, *search_contains(needle, WordPlan("prefix", "declined", False)))
    other = {r[0] for r in con.execute("SELECT seq FROM logs WHERE indexed IS NULL").fetchall()}
    assert partial == scan - other and scan & other


def test_rows_covered_by_their_group_are_found_only_through_the_group_words(store):
    """The control for ``WordPlan.groups`` and ``covered_sql``: without the group words, covered rows are lost."""
    con, _ = store
    needle = " declined"
    scan = _seqs(con, *search_contains(needle))
    partial = _seqs(con, *search_contains(needle, WordPlan("prefix", "declined", True, False)))
    covered = {r[0] for r in con.execute("SELECT seq FROM logs WHERE NOT indexed").fetchall()}
    assert partial == scan - covered and scan & covered


def test_grep_through_a_real_collector_uses_the_index(tmp_path):
    from tests.test_collector import Proc

    col = Proc(tmp_path, "").start()
    try:
        lines = [f"GET /items/{i} 200 user={i:08x}" for i in range(3000)] + ["payment Declined for card 4242"] * 3
        (col.logs / "app.log").write_text("\n".join(lines) + "\n")
        wait_until(lambda: col.q("SELECT count(*) FROM logs")[0][0] == len(lines), timeout=30)
        store = col.store()
        flt = make_filter(since="all", grep="declined", now=NOW * 2)
        plan = flt.with_index(store).grep_word
        assert plan is not None and plan[:4] == ("infix", "declined", False, True)  # its group's words hold it
        assert plan.through_seq == len(lines) - 1
        got = log_groups(store, flt)
        assert got.total == 3
        assert col.q(
            "SELECT count(*) FILTER (WHERE indexed IS NULL), count(*) FILTER (WHERE NOT indexed) FROM logs"
        ) == [(0, len(lines))]  # one-line bodies with numbers and hex ids: all covered by their group's template
        scan = log_groups(store, dataclasses.replace(flt, grep_word=None))
        assert (got.total, got.groups) == (scan.total, scan.groups)
    finally:
        col.stop()


def test_the_python_half_of_covered_is_the_sql_half(store):
    """Small batches decide body and template in Python (``_writer._covered_py``): the same as ``covered_sql``."""
    from legible.collector._writer import _covered_py
    from legible.store import covered_sql, template_of

    _, bodies = store
    extra = ["x" * 300, "x" * 301, "caf\u00e9 menu", "a\nb", "id 0xdeadbeef1 ok", "id deadbeef1 0x", "0x12"]
    rows = [(b, template_of(b)) for b in [*bodies, *extra]]
    c = duckdb.connect()
    c.execute("CREATE TABLE t (i INTEGER, body VARCHAR, template VARCHAR)")
    c.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, b, t) for i, (b, t) in enumerate(rows)])
    sql_says = [r[0] for r in c.execute(f"SELECT {covered_sql('false')} FROM t ORDER BY i").fetchall()]
    assert sql_says == [_covered_py(b, t) for b, t in rows]
    assert 0 < sum(sql_says) < len(rows)


def test_covered_rows_that_lost_their_group_id_are_read(tmp_path):
    """A copy of the rows without ``group_id`` (as tests/test_queries_logs_group_id.py makes one) is still exact."""
    c = _small_store(tmp_path, ["card declined 1", "card declined 2", "a DECLINED twice\nmore", "other"])
    c.execute("UPDATE logs SET group_id = NULL WHERE seq = 0")

    def query(sql: str, params: list) -> list:
        return c.execute(sql, params).fetchall()

    plan = pick_word(query, "declined", break_even=1.0)
    assert plan is not None and plan.unindexed
    assert _seqs(c, *search_contains("declined", plan)) == _seqs(c, *search_contains("declined")) == {0, 1, 2}
    c.close()


def test_a_search_answers_as_of_its_plan(tmp_path):
    """Rows flushed between :func:`pick_word` and the search are left out by both halves of the index alike.

    Without the plan's bound, a matching row with postings flushed meanwhile was found while one its group covers
    was not (``WordPlan.groups`` was decided before it existed): an answer true at no moment.
    """
    w = Writer(tmp_path / "signals.duckdb")
    try:
        i = write(w, ["a DECLINED twice\nmore"] + ["other line"] * 30, 0, 31)

        def seqs(cond: str, params: list) -> set[int]:
            return {r[0] for r in w.query(f"SELECT seq FROM logs WHERE {cond}", params)[1]}  # noqa: S608

        plan = pick_word(lambda sql, params: w.query(sql, params)[1], " declined")
        assert plan is not None and not plan.groups and plan.through_seq == 30  # only a row with postings, yet
        write(w, ["x declined y", "b declined\nagain"], i, 2)  # one its group covers, one with postings
        assert seqs(*search_contains(" declined")) == {0, 31, 32}
        assert seqs(*search_contains(" declined", plan)) == {0}
        assert seqs(*search_contains(" declined", plan._replace(through_seq=None))) == {0, 32}  # the mixed answer
    finally:
        w.close()
