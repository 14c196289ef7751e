"""The worktree's signal store: a DuckDB file of logs and spans, its schema, and a read-only query API.

One file per worktree, ``<worktree>/.legible/data/signals.duckdb`` (:func:`store_path`). The collector
(:mod:`legible.collector`) is its only writer; everything else reads through :class:`Store`:

* DuckDB lets one process hold a database file open for writing and then no other process may open it,
  not even read-only. So while the collector runs, :meth:`Store.query` sends the SQL to the collector's
  loopback endpoint (``POST /query`` on its OTLP/HTTP port); when no collector answers (after
  ``legible down``), it opens the file with ``read_only=True``. A file held by a collector that does not
  answer yet (starting, or restarting after a kill) is asked again, collector first, for up to
  :data:`HELD_WAIT_S` seconds before :class:`NotRunning` says so.
* Only one ``SELECT`` / ``WITH`` / ``EXPLAIN`` / ``DESCRIBE`` / ``SHOW`` / ``SUMMARIZE`` statement is
  accepted (checked with :func:`duckdb.extract_statements`); anything else raises :class:`UsageError`.
* The collector's ``/query`` wants ``Authorization: Bearer <token>``, the token the collector wrote to
  ``<state_dir>/collector.token`` (:data:`TOKEN_FILENAME`, mode 0600) at start; :func:`open_store` reads it.
* Both paths run DuckDB locked down (:func:`lock_down`, :data:`LOCKED_SETTINGS`): no file, URL,
  ``ATTACH``, ``COPY`` or extension access from SQL, so a query reads the store's tables and nothing else.
* At most :data:`MAX_ROWS` rows come back; :attr:`QueryResult.truncated` says when more existed.
* Values are JSON-compatible whichever path answered (see :func:`jsonable`): ``TIMESTAMP`` becomes an
  ISO 8601 string, ``JSON`` columns stay strings, ``DECIMAL`` becomes ``float``, ``BLOB`` becomes hex.

The tables and columns are documented in ``docs/store.md``; the schema is the numbered list
:data:`MIGRATIONS`, each applied once and recorded in ``_migrations`` (the llm ``migrations.py`` way).
Times are ``BIGINT`` nanoseconds since the Unix epoch (UTC), exact and timezone-free, with virtual
``TIMESTAMP`` columns (``ts``, ``start_ts``) for readable SQL. Rows are appended in arrival order, so
DuckDB's per-row-group min/max (zone maps) prune time filters without a secondary index.

Example::

    from legible.store import open_store
    store = open_store(worktree.state_dir, collector_url="http://127.0.0.1:41234")
    cols, rows = store.query("SELECT service, level, count(*) FROM logs GROUP BY ALL ORDER BY 3 DESC")
"""

from __future__ import annotations

import datetime as _dt
import decimal
import json
import math
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from legible._dbengine import engine
from legible._errors import NotRunning, UsageError
from legible._template import HEADLINE_MAX, TEMPLATE_RES, TRACEBACK, template_of

_T = TypeVar("_T")

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "ALLOWED_STATEMENTS",
    "EMPTY_LOG_GROUPS",
    "EMPTY_LOG_WORDS",
    "EMPTY_LOG_GROUP_WORDS",
    "GROUP_WORDS_SQL",
    "MISSING_GROUP_WORDS_SQL",
    "covered_sql",
    "GROUP_IDS_SQL",
    "GROUP_KEYS_SQL",
    "GROUP_NEW_KEYS_SQL",
    "LEVELS",
    "MAX_ROWS",
    "SEARCH_TEXT",
    "MIGRATIONS",
    "EXCEPTION_TEXT",
    "HAS_EXCEPTION",
    "HAS_EXCEPTION_SQL",
    "INDEX_BREAK_EVEN",
    "WORD_RE",
    "WORDS_SQL",
    "INDEXED_TEXT",
    "WordPlan",
    "QueryResult",
    "assign_groups",
    "Store",
    "check_read_only",
    "compat_views",
    "index_words",
    "insert_words_sql",
    "pick_word",
    "word_runs",
    "jsonable",
    "connect_file",
    "lock_down",
    "migrate",
    "open_store",
    "read_token",
    "run_query",
    "search_contains",
    "search_regex",
    "store_path",
    "template_of",
]

#: Hard cap on the rows one query returns.
MAX_ROWS = 10_000
#: SQL for the text a log search (``logs --grep/--regex``, a logs check's ``pattern``) looks in: the body, then
#: the exception attributes of OpenTelemetry's semantic conventions (``exception.type``, ``.message``,
#: ``.stacktrace``). An exception logged both to stdout (body with the traceback) and over OTLP (body with the
#: message only, the traceback in attributes) is stored once, as whichever copy came first, and is found
#: either way.
SEARCH_TEXT = (
    "concat_ws(chr(10), body, attributes->>'exception.type', attributes->>'exception.message', "
    "attributes->>'exception.stacktrace')"
)
#: The exception attributes of :data:`SEARCH_TEXT` alone, joined the same way (``NULL`` when none is set).
EXCEPTION_TEXT = (
    "concat_ws(chr(10), attributes->>'exception.type', attributes->>'exception.message', "
    "attributes->>'exception.stacktrace')"
)


#: SQL for "this log row may hold an ``exception.*`` attribute": the ``logs.has_exception`` flag the collector
#: writes at ingest (migration ``m002``), and for a row some other writer stored without it (``NULL``) the test it
#: stands for, evaluated then only for those rows (DuckDB's ``coalesce`` evaluates an argument only for the rows
#: still ``NULL``).
HAS_EXCEPTION = "coalesce(has_exception, contains(attributes::VARCHAR, '\"exception.'))"
#: The characters ``LIKE``/``ILIKE`` read as wildcards (DuckDB has no default escape character: ``\\`` is literal).
_LIKE_WILDCARDS = frozenset("%_")


#: The words of the word index (table ``log_words``, migration ``m004``), as an RE2 pattern over ``lower(body)``:
#: the maximal runs of at least three ASCII letters that hold a letter after ``f`` (the three alternatives start a
#: run with that letter at its third or later, second, or first place, and each runs on to the run's end). Runs of
#: ``a``-``f`` only are left out: hex ids and hashes (``user=9f3ea1...``) gave 98 % of the distinct words of the
#: query benchmark's lines (45,565 -> 25 per million lines) and a quarter of its postings, and a needle made of
#: such letters rarely narrows anything. Digits are left out for the same reason (``[a-z0-9]{3,}``: 981,425
#: distinct words, 6.7M postings against 4.0M).
WORD_RE = "[a-z]{2,}[g-z][a-z]*|[a-z][g-z][a-z]+|[g-z][a-z]{2,}"
#: SQL of the text of a log row the word index holds the words of: :data:`SEARCH_TEXT` (the body, then the
#: exception attributes), built only for a row that may have such attributes (:data:`HAS_EXCEPTION`); for the
#: others it is the body.
INDEXED_TEXT = f"CASE WHEN {HAS_EXCEPTION} THEN {SEARCH_TEXT} ELSE body END"
#: SQL of the list of a log row's words (:data:`WORD_RE`), repeats included, over a column ``text`` (for example
#: :data:`INDEXED_TEXT`) in DuckDB's ``lower``: the case mapping ``ILIKE`` and ``lower`` apply to the needle.
WORDS_SQL = f"regexp_extract_all(lower(text), '{WORD_RE}')"
#: The word index is used only when its candidate rows are at most this share of the ``logs`` rows: above it the
#: semi-join on the candidates costs more than the scan it saves (``logs --grep`` over a million lines: 500
#: candidates 19 ms, 80,000 candidates 28 ms, 900,000 candidates 146 ms, against about 60 ms for the scan).
INDEX_BREAK_EVEN = 0.25
#: A ``SELECT`` of no rows with the columns of ``log_words``: the word index of a store that has none (an old
#: read-only file, a proof bundle), whose ``logs.indexed`` is ``NULL`` everywhere.
EMPTY_LOG_WORDS = (
    "SELECT NULL::VARCHAR AS word, NULL::BIGINT AS last_seq, NULL::INTEGER AS n, NULL::BIGINT[] AS seqs WHERE false"
)
#: The same for ``log_group_words``.
EMPTY_LOG_GROUP_WORDS = "SELECT NULL::INTEGER AS group_id, NULL::VARCHAR AS word WHERE false"
#: Insert the words (:data:`WORD_RE`) of the templates of the ``log_groups`` with ``id > $1`` into ``log_group_words``.
GROUP_WORDS_SQL = (
    "INSERT INTO log_group_words (group_id, word) "  # noqa: S608 - fixed SQL
    f"SELECT id, unnest(list_distinct(regexp_extract_all(lower(template), '{WORD_RE}'))) FROM log_groups WHERE id > $1"
)

#: Insert the template words of the ``log_groups`` that have none in ``log_group_words`` (a group another writer
#: added without :func:`assign_groups`; a template without words is looked at again, and adds nothing).
MISSING_GROUP_WORDS_SQL = (
    "INSERT INTO log_group_words (group_id, word) "  # noqa: S608 - fixed SQL
    f"SELECT id, unnest(list_distinct(regexp_extract_all(lower(template), '{WORD_RE}'))) FROM log_groups "
    "WHERE id NOT IN (SELECT group_id FROM log_group_words)"
)


def covered_sql(has_exception: str = "has_exception", prefix: str = "") -> str:
    r"""Return SQL for "every word of this log row is a word of its ``template``" over ``body`` and ``template``.

    Such a row needs no postings of its own (``logs.indexed`` ``false``): the words of its group's template
    (``log_group_words``) stand for them, and most lines of an app are such rows, so the collector extracts
    words from the few others only. Why it holds: the body is ASCII (``strlen``, bytes, equals ``length``,
    code points; so DuckDB's ``lower`` is ASCII's), one line of at most ``HEADLINE_MAX`` characters (the
    template folds the whole body), and folding replaced nothing but numbers (digits and ``.``) and hex runs
    (``\b[0-9a-fA-F]{8,}\b``: no ``<uuid>`` or ``"<s>"`` in the template, and no ``0x``/``0X`` in the body
    when it has a ``<hex>``). A letter run of the body that meets a hex run lies inside it (the ``\b`` on both
    sides of a hex run are next to characters that are not letters), so it has only ``a``-``f`` and is no word
    (:data:`WORD_RE`); every other letter run is copied as it is, between characters that are not letters (a
    ``<`` or ``>`` where a number was), so it is a word of the template too. A row with exception attributes is
    never covered (their words are not in the template). ``tests/test_store_words.py`` checks it over a corpus
    built around these edges.

    Args:
        has_exception: SQL of the row's ``has_exception`` (a column, or :data:`HAS_EXCEPTION_SQL` at ingest).
        prefix: the relation of ``body`` and ``template`` with its dot (``"b."``), or ``""``.

    """
    b, t = f"{prefix}body", f"{prefix}template"
    return (
        f"({t} IS NOT NULL AND NOT coalesce({has_exception}, true) AND strlen({b}) = length({b})"
        f" AND length({b}) <= {HEADLINE_MAX} AND NOT contains({b}, chr(10)) AND NOT contains({t}, '<uuid>')"
        f" AND NOT contains({t}, '\"<s>\"')"
        f" AND (NOT contains({t}, '<hex>') OR NOT (contains({b}, '0x') OR contains({b}, '0X'))))"
    )


#: How a needle's run ``r`` constrains the words of a matching row, by kind (see :func:`word_runs`).
_WORD_CONDITIONS = {
    "word": "word = ?",
    "prefix": "starts_with(word, ?)",
    "suffix": "ends_with(word, ?)",
    "infix": "contains(word, ?)",
}
#: SQL: the index does not hold this row's words: another writer stored it (``indexed`` ``NULL``), or a row marked
#: as covered by its group has no group (``group_id`` is the collector's too: a copy of the rows may drop it).
_UNINDEXED = "(indexed IS NULL OR (NOT indexed AND group_id IS NULL))"
#: At most this many runs of a needle are counted by :func:`pick_word` (the whole words and longest first).
_MAX_RUNS = 3


def _in_groups(cond: str) -> str:
    """SQL: a ``logs`` row covered by its group (``indexed`` ``false``) whose template has a word for ``cond``."""
    return f"group_id IN (SELECT group_id FROM log_group_words WHERE {cond})"  # noqa: S608


_ASCII_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_NOT_HEX = frozenset("ghijklmnopqrstuvwxyz")


def insert_words_sql(source: str) -> str:
    """Return the ``INSERT`` of the word index entries of the log rows of the relation ``source``.

    One ``log_words`` row per distinct word of those rows: the word, the highest ``seq`` it lists, how many, and
    the sorted ``seq`` of every row whose lower-cased ``text`` holds it (:data:`WORDS_SQL`). The collector runs it
    on each flushed batch, in the flush's transaction, so a row and its postings are committed together.

    Args:
        source: a table, view or sub-query with columns ``seq`` and ``text`` (:data:`INDEXED_TEXT`), not user
            input.

    """
    return (
        "INSERT INTO log_words (word, last_seq, n, seqs) "  # noqa: S608
        "SELECT w, max(seq), count(*), list(seq ORDER BY seq) "
        f"FROM (SELECT DISTINCT seq, unnest({WORDS_SQL}) AS w FROM {source}) GROUP BY w"
    )


def index_words(con: duckdb.DuckDBPyConnection, from_seq: int = 0, chunk: int = 200_000) -> int:
    """Add to the word index the ``logs`` rows with ``seq >= from_seq`` it does not hold yet; return their count.

    For rows another writer stored (``logs.indexed`` ``NULL``: a benchmark, a test, a store older than
    migration ``m004``, which calls it): a row its group's template covers (:func:`covered_sql`; the group's
    words must be in ``log_group_words``, as :func:`assign_groups` leaves them) is marked ``false``, the others
    get their postings (:func:`insert_words_sql`) and are marked ``true``, ``chunk`` rows of ``seq`` at a time
    (bounded memory), in the caller's transaction.

    Args:
        con: a writable connection to the store.
        from_seq: the lowest ``logs.seq`` to look at.
        chunk: the ``seq`` span of one statement.

    """
    con.execute(MISSING_GROUP_WORDS_SQL).fetchall()
    lo, hi = con.execute(
        "SELECT min(seq), max(seq) FROM logs WHERE seq >= ? AND indexed IS NULL", [from_seq]
    ).fetchall()[0]
    if lo is None:
        return 0
    done = 0
    covered = f"(group_id IS NOT NULL AND {covered_sql()})"
    for start in range(int(lo), int(hi) + 1, chunk):
        rows = (
            f"(SELECT seq, {INDEXED_TEXT} AS text FROM logs WHERE seq >= $1 AND seq < $2 AND indexed IS NULL"  # noqa: S608
            f" AND NOT {covered})"
        )
        con.execute(insert_words_sql(rows), [start, start + chunk]).fetchall()
        marked = con.execute(
            f"UPDATE logs SET indexed = NOT {covered} WHERE seq >= ? AND seq < ? AND indexed IS NULL",  # noqa: S608
            [start, start + chunk],
        ).fetchall()
        done += int(marked[0][0]) if marked else 0
    return done


def word_runs(needle: str) -> list[tuple[str, str]]:
    """Return what the word index knows of the rows whose ``lower(SEARCH_TEXT)`` contains ``lower(needle)``.

    Each ``(kind, run)`` is a lower-cased maximal run of ASCII letters of the needle that any such row's words
    (:data:`WORD_RE`) must match: ``"word"`` (an interior run: the row has this word), ``"prefix"`` (the run ends
    at the needle's end: a word starts with it), ``"suffix"`` (starts at the needle's start: a word ends with it),
    ``"infix"`` (both: a word contains it). A side next to an ASCII character that is not a letter bounds the run
    in the body too (DuckDB's ``lower`` keeps ASCII in ASCII and letters letters); a side next to the needle's
    end or a non-ASCII character is open (``lower`` may turn the character into an ASCII letter: ``K``, the
    Kelvin sign, becomes ``k``). Runs of fewer than three letters or without a letter after ``f`` constrain
    nothing (such words are not indexed) and are left out.

    Args:
        needle: the text searched for, any case.

    Returns:
        The runs, longest first; empty when the index cannot narrow the search.

    """
    runs: list[tuple[str, str]] = []
    i, n = 0, len(needle)
    while i < n:
        if needle[i] not in _ASCII_LETTERS:
            i += 1
            continue
        j = i
        while j < n and needle[j] in _ASCII_LETTERS:
            j += 1
        run = needle[i:j].lower()
        if len(run) >= 3 and not _NOT_HEX.isdisjoint(run):
            open_left = i == 0 or not needle[i - 1].isascii()
            open_right = j == n or not needle[j].isascii()
            kind = ("infix" if open_right else "suffix") if open_left else ("prefix" if open_right else "word")
            runs.append((kind, run))
        i = j
    runs.sort(key=lambda kr: (kr[0] != "word", -len(kr[1])))
    return runs


class WordPlan(NamedTuple):
    """How :func:`search_contains` narrows a search with the word index (from :func:`pick_word`).

    Attributes:
        kind: ``"word"``, ``"prefix"``, ``"suffix"`` or ``"infix"`` (see :func:`word_runs`).
        run: the lower-cased run of the needle.
        unindexed: some ``logs`` rows are not in the index (``indexed`` ``NULL``, or ``false`` without a
            ``group_id``) and are read as well.
        groups: some rows covered by their group's template (``indexed`` ``false``) may match and are listed
            from ``log_group_words``.
        through_seq: the highest ``logs.seq`` when the plan was made, or ``None``: the search then looks at rows
            up to it only, so rows flushed after the plan (which ``unindexed`` and ``groups`` did not see) are
            left out by both halves of the index alike, and the answer is the store's as of the plan (the writer
            commits ``seq`` in increasing order, so every lower ``seq`` was there too).

    """

    kind: str
    run: str
    unindexed: bool = False
    groups: bool = True
    through_seq: int | None = None


def pick_word(
    query: Callable[[str, list[Any]], Sequence[Sequence[Any]]], needle: str, break_even: float = INDEX_BREAK_EVEN
) -> WordPlan | None:
    """Choose the run of ``needle`` (:func:`word_runs`) whose postings are fewest, or ``None`` to scan.

    One statement counts, for each run (at most three, whole words and longest first), the postings of the words
    it matches (``log_words.n``) and the groups whose template has one, the ``logs`` rows the index does not hold
    (``indexed`` ``NULL``) and all ``logs`` rows; when the chosen run matches a group's words, a second counts the
    rows those groups cover (a scan of ``logs.group_id``, about 3 ms a million rows). A needle with one run (the
    usual case) gets that count in the first statement (about 1 ms when no group matches): one round trip to the
    collector. The index is used when the candidates are at most ``break_even`` of the rows.

    Args:
        query: runs one read-only statement with positional parameters and returns its rows (for example
            ``lambda sql, p: store.query(sql, p).rows``).
        needle: the text searched for.
        break_even: the largest share of candidate rows for which the index is used.

    Returns:
        A :class:`WordPlan` for :func:`search_contains`, or ``None``.

    """
    runs = word_runs(needle)[:_MAX_RUNS]
    if not runs:
        return None
    conds = [_WORD_CONDITIONS[kind] for kind, _ in runs]
    listed = ", ".join(f"coalesce(sum(n) FILTER (WHERE {c}), 0)" for c in conds)
    groups = ", ".join(f"count(*) FILTER (WHERE {c})" for c in conds)
    sql = (
        f"SELECT (SELECT count(*) FROM logs), (SELECT count(*) FROM logs WHERE {_UNINDEXED}), "  # noqa: S608
        f"(SELECT [{listed}] FROM log_words), (SELECT [{groups}] FROM log_group_words), (SELECT max(seq) FROM logs)"
    )
    params = [run for _, run in runs]
    if len(runs) == 1:  # the one run's covered rows counted in the same statement: one round trip, not two
        sql += f", (SELECT count(*) FROM logs WHERE indexed = false AND {_in_groups(conds[0])})"  # noqa: S608
    try:
        row = query(sql, params * (3 if len(runs) == 1 else 2))[0]
    except UsageError:
        return None  # no word index here (a proof bundle's store)
    total, unindexed = int(row[0] or 0), int(row[1] or 0)
    listed_n = [int(v or 0) for v in row[2]]
    grouped = [int(v or 0) > 0 for v in row[3]]
    # a run no group's template matches needs no count of covered rows (a scan of logs): the fewest postings of
    # those; else the run with the fewest postings, and its covered rows counted
    best = min(range(len(runs)), key=lambda k: (grouped[k], listed_n[k]))
    covered = 0
    if len(runs) == 1:
        covered = int(row[5] or 0)
    elif grouped[best]:
        in_groups = _in_groups(conds[best])
        count = f"SELECT count(*) FROM logs WHERE indexed = false AND {in_groups}"  # noqa: S608
        covered = int(query(count, [params[best]])[0][0] or 0)
    if listed_n[best] + covered + unindexed > break_even * total:
        return None
    return WordPlan(*runs[best], unindexed > 0, covered > 0, None if row[4] is None else int(row[4]))


def search_contains(needle: str, word: WordPlan | None = None) -> tuple[str, list[Any]]:
    """Return ``(condition, params)``: the lower-cased :data:`SEARCH_TEXT` of a log line contains ``needle``.

    Same answer as ``contains(lower(SEARCH_TEXT), lower(needle))`` (DuckDB's ``lower`` on both sides) for every
    row, at a fraction of its cost (``logs --grep`` over a million lines: the JSON extraction of three attributes
    per row was about two thirds of the query, the lower-cased copy of every body most of the rest). Why it is
    the same:

    * a needle without a newline matches the newline-joined text exactly when it matches one of the parts
      (``lower`` maps each code point on its own and keeps ``chr(10)``), so the body is searched alone first;
    * the body is matched with ``ILIKE '%needle%'``, which DuckDB answers by lower-casing both sides with the
      same ``lower`` (an ASCII fast path when both are ASCII, where ``lower`` is ASCII's), so it is
      ``contains(lower(body), lower(needle))``; a needle with ``%`` or ``_`` (wildcards) keeps ``contains``.
      ``tests/test_store_search.py`` compares both over a corpus of case-mapping edge cases;
    * the exception attributes are extracted only for the rows whose ``attributes`` JSON text holds
      ``"exception.`` (:data:`HAS_EXCEPTION`, a column written at ingest): a top-level key ``exception.type``
      is written that way by every writer of the store (the collector's ``orjson``/``json`` serialisers never
      escape ASCII letters or ``.``), so the others have no such attribute and their extraction would be
      ``NULL``.

    A needle with a newline keeps the joined form (it can match across parts).

    With ``word`` (a run of the needle, from :func:`pick_word`), the condition is first narrowed to the rows the
    word index lists for it (``log_words``, see :func:`word_runs` for why every matching row is listed), and
    the rows its group's template covers (``log_group_words``, :func:`covered_sql`) when :attr:`WordPlan.groups`,
    and the rows it does not hold when :attr:`WordPlan.unindexed`; the test above then runs on those rows only.
    DuckDB plans the ``IN`` as a semi-join whose few ``seq`` it pushes into the scan of ``logs`` as a filter, so
    the bodies of the other rows are not read (an ``OR`` or a ``UNION`` with a scan of ``logs`` in the sub-query
    loses that: the unindexed rows are added only when there are some).

    Args:
        needle: the text searched for, any case (not empty).
        word: from :func:`pick_word`, or ``None`` to scan every row.

    Returns:
        A condition over the ``logs`` table and its positional parameters.

    """
    if "\n" in needle:
        cond, params = f"contains(lower({SEARCH_TEXT}), lower(?))", [needle]
    else:
        if _LIKE_WILDCARDS.isdisjoint(needle):
            body, body_param = "body ILIKE ?", "%" + needle + "%"
        else:
            body, body_param = "contains(lower(body), lower(?))", needle
        cond = f"({body} OR ({HAS_EXCEPTION} AND contains(lower({EXCEPTION_TEXT}), lower(?))))"
        params = [body_param, needle]
    if word is None:
        return cond, params
    cond_w = _WORD_CONDITIONS[word.kind]
    listed, runs = f"SELECT unnest(seqs) FROM log_words WHERE {cond_w}", [word.run]  # noqa: S608
    if word.groups:  # as a list, so DuckDB does not read logs' size as the candidates' (see above)
        listed += (
            " UNION ALL SELECT unnest((SELECT list(seq) FROM logs"  # noqa: S608
            f" WHERE indexed = false AND {_in_groups(cond_w)}))"
        )
        runs.append(word.run)
    listed = f"seq IN ({listed})"
    if word.unindexed:
        listed = f"({listed} OR {_UNINDEXED})"
    if word.through_seq is not None:  # the store as of the plan (see WordPlan.through_seq)
        return f"seq <= ? AND {listed} AND {cond}", [word.through_seq, *runs, *params]
    return f"{listed} AND {cond}", [*runs, *params]


def search_regex(pattern: str) -> tuple[str, list[str]]:
    """Return ``(condition, params)``: the :data:`SEARCH_TEXT` of a log line matches the RE2 ``pattern``.

    Same answer as ``regexp_matches(SEARCH_TEXT, pattern)`` for every row, without building the joined text
    where it is only the body: ``concat_ws`` skips ``NULL`` parts, so for a row with no ``exception.*``
    attribute (:data:`HAS_EXCEPTION` false, see :func:`search_contains` for why that test is exact) the
    joined text *is* the body (``logs.body`` is ``NOT NULL``), and the pattern is matched against the body
    alone. Rows that may hold one keep the joined text, so a pattern can still match across the newline
    that joins the parts. DuckDB evaluates a ``CASE`` branch only for the rows that take it
    (``logs --regex`` over a million lines, one in 2,000 with an exception: 307 -> 121 ms).
    ``tests/test_store_search.py`` compares both forms.

    Args:
        pattern: an RE2 regular expression (https://github.com/google/re2/wiki/Syntax).

    Returns:
        A condition over the ``logs`` table and its positional parameters.

    """
    return (
        f"CASE WHEN {HAS_EXCEPTION} THEN regexp_matches({SEARCH_TEXT}, ?) ELSE regexp_matches(body, ?) END",
        [pattern, pattern],
    )


#: Normalised log levels, lowest first (OpenTelemetry severity ranges 1-4, 5-8, ..., 21-24).
LEVELS = ("trace", "debug", "info", "warn", "error", "fatal")
#: Statement types :meth:`Store.query` accepts (names of ``duckdb.StatementType``).
ALLOWED_STATEMENTS = frozenset({"SELECT", "EXPLAIN"})
STORE_FILENAME = "signals.duckdb"
#: The collector's bearer token for ``/query``, ``/flush`` and ``/status``, in the state directory.
TOKEN_FILENAME = "collector.token"  # noqa: S105 - a file name, not a secret
#: DuckDB settings that confine SQL to the open database (https://duckdb.org/docs/stable/configuration/overview,
#: https://duckdb.org/docs/stable/operations_manual/securing_duckdb/overview), applied in this order and
#: then frozen with ``lock_configuration``.
LOCKED_SETTINGS = (
    ("autoinstall_known_extensions", "false"),
    ("autoload_known_extensions", "false"),
    ("enable_external_access", "false"),
    ("lock_configuration", "true"),
)

# The folding used for logs.template: ids, hex and numbers become placeholders so similar lines group.
# RE2 syntax (DuckDB's regexp_replace). Applied to the headline (first line, or the last line of a
# Python traceback), cut to 300 characters.
_UUID_RE, _HEX_RE, _NUM_RE, _STR_RE = (f"'{pattern}'" for pattern, _ in TEMPLATE_RES)  # no ' in them
_HEADLINE_SQL = rf"""left(CASE WHEN starts_with(body, '{TRACEBACK}')
            THEN regexp_extract(rtrim(body, e'\n '), '([^\n]*)$', 1)
            ELSE split_part(body, e'\n', 1) END, {HEADLINE_MAX})"""
_TEMPLATE_SQL = f"""
regexp_replace(regexp_replace(regexp_replace(regexp_replace(
  {_HEADLINE_SQL},
  {_UUID_RE}, '<uuid>', 'g'),
  {_HEX_RE}, '<hex>', 'g'),
  {_NUM_RE}, '<n>', 'g'),
  {_STR_RE}, '"<s>"', 'g')
"""


def template_sql() -> str:
    """Return the SQL expression over ``body`` that computes ``logs.template`` (see ``docs/store.md``)."""
    return _TEMPLATE_SQL.strip()


#: The same folding as :data:`_TEMPLATE_SQL`, one stage per ``(column in, column out, expression)``, each a
#: ``CASE`` whose condition is necessary for the stage's regex to match, so a row that cannot change skips
#: the regex (DuckDB evaluates a ``THEN`` branch only for the rows that take it): a UUID holds ``-``, a
#: number an ASCII digit (RE2's ``\d``), a long quoted string ``"`` and at least 26 characters, a hex run
#: at least 8 characters. ``tests/test_collector_lines_diff.py`` compares the two over a varied corpus.
_TEMPLATE_STAGES = (
    ("body", "_t0", _HEADLINE_SQL),
    (
        "_t0",
        "_t1",
        f"""CASE WHEN contains(_t0, '-') THEN regexp_replace(_t0,
  {_UUID_RE}, '<uuid>', 'g') ELSE _t0 END""",
    ),
    (
        "_t1",
        "_t2",
        f"CASE WHEN length(_t1) >= 8 THEN regexp_replace(_t1, {_HEX_RE}, '<hex>', 'g') ELSE _t1 END",
    ),
    (
        "_t2",
        "_t3",
        f"CASE WHEN regexp_matches(_t2, '[0-9]') THEN regexp_replace(_t2, {_NUM_RE}, '<n>', 'g') ELSE _t2 END",
    ),
    (
        "_t3",
        "template",
        f"""CASE WHEN length(_t3) >= 26 AND contains(_t3, '"') THEN regexp_replace(_t3, {_STR_RE}, '"<s>"', 'g')
            ELSE _t3 END""",
    ),
)


def template_select(source: str, columns: Sequence[str]) -> str:
    """Return a ``SELECT`` of ``columns`` and ``template`` (as :func:`template_sql`) from the relation ``source``.

    The write path's form of the folding: stages nest as sub-queries so each intermediate value is computed
    once and a stage whose regex cannot match a row is skipped for it (see :data:`_TEMPLATE_STAGES`).

    Args:
        source: a table or view name with a ``body`` column (not user input).
        columns: select expressions to keep (for example ``"attributes::JSON"``).

    """
    rel = source
    for _in, out, expr in _TEMPLATE_STAGES[:-1]:
        rel = f"(SELECT *, {expr} AS {out} FROM {rel})"  # noqa: S608 - fixed SQL, no user input
    final = _TEMPLATE_STAGES[-1][2]
    return f"SELECT {', '.join(columns)}, {final} AS template FROM {rel}"  # noqa: S608


def _m001_initial(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE IF NOT EXISTS logs (
            seq             BIGINT NOT NULL,
            time_ns         BIGINT NOT NULL,
            observed_ns     BIGINT NOT NULL,
            ts              TIMESTAMP GENERATED ALWAYS AS (make_timestamp(time_ns // 1000)) VIRTUAL,
            service         VARCHAR NOT NULL,
            level           VARCHAR NOT NULL,
            severity_number SMALLINT NOT NULL,
            severity_text   VARCHAR,
            body            VARCHAR NOT NULL,
            template        VARCHAR,
            attributes      JSON,
            resource        JSON,
            scope           VARCHAR,
            trace_id        VARCHAR,
            span_id         VARCHAR,
            source          VARCHAR NOT NULL
        )
        """
    )
    con.execute(
        """
        CREATE TABLE IF NOT EXISTS spans (
            seq             BIGINT NOT NULL,
            trace_id        VARCHAR NOT NULL,
            span_id         VARCHAR NOT NULL,
            parent_span_id  VARCHAR,
            trace_state     VARCHAR,
            service         VARCHAR NOT NULL,
            name            VARCHAR NOT NULL,
            kind            VARCHAR NOT NULL,
            start_ns        BIGINT NOT NULL,
            end_ns          BIGINT NOT NULL,
            start_ts        TIMESTAMP GENERATED ALWAYS AS (make_timestamp(start_ns // 1000)) VIRTUAL,
            duration_ms     DOUBLE NOT NULL,
            status_code     VARCHAR NOT NULL,
            status_message  VARCHAR,
            attributes      JSON,
            resource        JSON,
            scope           VARCHAR,
            events          JSON,
            links           JSON,
            exception_type    VARCHAR,
            exception_message VARCHAR,
            received_ns     BIGINT NOT NULL
        )
        """
    )
    con.execute(
        """
        CREATE TABLE IF NOT EXISTS tail_offsets (
            path        VARCHAR PRIMARY KEY,
            inode       BIGINT NOT NULL,
            "offset"    BIGINT NOT NULL,
            updated_ns  BIGINT NOT NULL
        )
        """
    )


#: How the collector fills ``logs.has_exception`` from the ``attributes`` JSON text of a row (``m002`` fills the
#: rows stored before the column existed the same way). See :data:`HAS_EXCEPTION`.
HAS_EXCEPTION_SQL = "coalesce(contains(attributes::VARCHAR, '\"exception.'), false)"


def _m002_logs_has_exception(con: duckdb.DuckDBPyConnection) -> None:
    """Add ``logs.has_exception`` (issue 12): ``logs --grep`` reads the exception attributes only where it is set.

    Filled for the existing rows here (one ``UPDATE`` over the table: about a second per million rows), and by
    the collector at ingest; ``NULL`` (a row another writer stored without it) means "not known", and
    :data:`HAS_EXCEPTION` tests the attributes of such a row instead.
    """
    con.execute("ALTER TABLE logs ADD COLUMN IF NOT EXISTS has_exception BOOLEAN")
    con.execute(f"UPDATE logs SET has_exception = {HAS_EXCEPTION_SQL} WHERE has_exception IS NULL")  # noqa: S608 - fixed SQL


#: Insert into ``log_groups`` the ``(level, service, template)`` keys of the ``logs`` rows with ``seq >= $2`` that have
#: no ``group_id`` yet and a template, each once, with ids ``$1 + 1, $1 + 2, ...`` (``$1``: the highest id so far),
#: leaving out the keys the dictionary holds already (an anti-join over it).
GROUP_KEYS_SQL = """
INSERT INTO log_groups (id, level, service, template)
SELECT $1 + row_number() OVER (ORDER BY k.level, k.service, k.template), k.level, k.service, k.template
FROM (SELECT DISTINCT level, service, template FROM logs
      WHERE seq >= $2 AND group_id IS NULL AND template IS NOT NULL) AS k
WHERE NOT EXISTS (SELECT 1 FROM log_groups AS d
                  WHERE d.level = k.level AND d.service = k.service AND d.template = k.template)
"""
#: :data:`GROUP_KEYS_SQL` without the anti-join, for a caller that knows none of those keys is in the dictionary
#: (the collector's flush: its ``INSERT`` just joined the rows to the dictionary and found no id for them).
GROUP_NEW_KEYS_SQL = GROUP_KEYS_SQL[: GROUP_KEYS_SQL.index("WHERE NOT EXISTS")]
#: Set ``logs.group_id`` from the ``log_groups`` keys with ``id > $1`` for the rows with ``seq >= $2`` that have
#: none (a join on the three strings; rows without a template keep ``NULL``).
GROUP_IDS_SQL = """
UPDATE logs SET group_id = d.id FROM (SELECT * FROM log_groups WHERE id > $1) AS d
WHERE logs.seq >= $2 AND logs.group_id IS NULL
  AND d.level = logs.level AND d.service = logs.service AND d.template = logs.template
"""


def assign_groups(
    con: duckdb.DuckDBPyConnection, from_seq: int = 0, *, keys_are_new: bool = False, words: bool = True
) -> None:
    """Fill ``logs.group_id`` (see ``docs/store.md``) for the rows with ``seq >= from_seq`` that lack it.

    New ``(level, service, template)`` keys are added to ``log_groups`` first (:data:`GROUP_KEYS_SQL`), then the
    rows get their ids (:data:`GROUP_IDS_SQL`); set-based statements, run in the caller's transaction. Rows
    without a template keep ``NULL``. The collector calls it for a flush whose rows met a key the dictionary
    did not hold yet; migration ``m003`` for the rows stored before; another writer of the store (a benchmark, a
    test) may call it after inserting rows, or leave them ``NULL``: the grouped view then groups on the strings.

    Args:
        con: a writable connection to the store.
        from_seq: the lowest ``logs.seq`` to look at (lets DuckDB's zone maps skip older row groups).
        keys_are_new: the caller knows that no key of those rows is in the dictionary yet, so neither the
            insert nor the ids need to look at the keys already there (their cost grows with the dictionary).
        words: add the new groups' template words to ``log_group_words`` (:data:`GROUP_WORDS_SQL`; ``False``
            only before migration ``m004`` created it).

    """
    top = con.execute("SELECT coalesce(max(id), 0) FROM log_groups").fetchall()[0][0]
    con.execute(GROUP_NEW_KEYS_SQL if keys_are_new else GROUP_KEYS_SQL, [top, from_seq]).fetchall()
    if words:  # the new groups' words (see covered_sql)
        con.execute(GROUP_WORDS_SQL, [top]).fetchall()
    con.execute(GROUP_IDS_SQL, [top if keys_are_new else 0, from_seq]).fetchall()


def _m003_log_groups(con: duckdb.DuckDBPyConnection) -> None:
    """Add the ``log_groups`` dictionary and ``logs.group_id`` (issue 12): ``legible logs`` groups on an integer.

    The grouped view's hash aggregate on the three strings ``(level, service, template)`` was most of its time
    over a million lines; one on a small integer (a perfect hash aggregate) costs about half of it. Filled here
    for the existing rows (:func:`assign_groups`) and by the collector at ingest.
    """
    con.execute(
        """
        CREATE TABLE IF NOT EXISTS log_groups (
            id          INTEGER NOT NULL,
            level       VARCHAR NOT NULL,
            service     VARCHAR NOT NULL,
            template    VARCHAR NOT NULL
        )
        """
    )
    con.execute("ALTER TABLE logs ADD COLUMN IF NOT EXISTS group_id INTEGER")
    assign_groups(con, words=False)


def _m004_log_words(con: duckdb.DuckDBPyConnection) -> None:
    """Add the word index ``log_words`` and ``logs.indexed`` (issue 12): ``logs --grep`` reads only listed rows.

    ``log_words`` has one row per word (:data:`WORD_RE`) per flush: ``word``, ``last_seq`` (the highest ``seq`` in
    ``seqs``, so retention finds whole rows to delete), ``n`` (the length of ``seqs``, so a search counts its
    candidates without reading the lists) and ``seqs`` (the sorted ``logs.seq`` of the flushed rows whose
    lower-cased :data:`INDEXED_TEXT`, the body and any exception attributes, holds the word).
    ``log_group_words`` has ``(group_id, word)`` for each word of each ``log_groups`` template. ``logs.indexed``
    is ``true`` for a row whose words are listed in ``log_words``, ``false`` for a row whose words are all words
    of its group's template (:func:`covered_sql`), ``NULL`` for a row another writer stored (searched without the
    index). The rows stored before are indexed here
    (:func:`index_words`: about 2 s per million rows).
    """
    con.execute(
        """
        CREATE TABLE IF NOT EXISTS log_words (
            word        VARCHAR NOT NULL,
            last_seq    BIGINT NOT NULL,
            n           INTEGER NOT NULL,
            seqs        BIGINT[] NOT NULL
        )
        """
    )
    con.execute(
        """
        CREATE TABLE IF NOT EXISTS log_group_words (
            group_id    INTEGER NOT NULL,
            word        VARCHAR NOT NULL
        )
        """
    )
    con.execute(GROUP_WORDS_SQL, [-(2**31)]).fetchall()
    con.execute("ALTER TABLE logs ADD COLUMN IF NOT EXISTS indexed BOOLEAN")
    index_words(con)


#: The schema, as ``(name, function)`` pairs applied in order, each once.
MIGRATIONS: list[tuple[str, Callable[[duckdb.DuckDBPyConnection], None]]] = [
    ("m001_initial", _m001_initial),
    ("m002_logs_has_exception", _m002_logs_has_exception),
    ("m003_log_groups", _m003_log_groups),
    ("m004_log_words", _m004_log_words),
]


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply the migrations ``con``'s database has not seen yet; return their names.

    Each migration runs in its own transaction together with its ``_migrations`` row, so a crash leaves
    the database at a migration boundary.

    Args:
        con: a writable connection.

    """
    con.execute("CREATE TABLE IF NOT EXISTS _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)")
    done = {r[0] for r in con.execute("SELECT name FROM _migrations").fetchall()}
    applied = []
    for name, fn in MIGRATIONS:
        if name in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            fn(con)
            con.execute("INSERT INTO _migrations VALUES (?, now()::TIMESTAMP)", [name])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        applied.append(name)
    if applied:
        # Fold the migrations into the file now: DuckDB re-binds an ALTER TABLE when it replays it from the WAL,
        # before its statically linked core functions are loaded, and the generated `ts` column's
        # make_timestamp is one of them, so a WAL holding a migration could not be opened again (duckdb#18259;
        # DuckDB 2.0.1). connect_file() recovers a file a kill left in that window.
        con.execute("CHECKPOINT")
    return applied


#: What DuckDB's error says when it cannot replay a database file's write-ahead log at open.
_WAL_REPLAY_ERROR = "Failure while replaying WAL"


def held_by_another(exc: BaseException) -> bool:
    """Whether ``exc`` is DuckDB refusing to open a file another process holds ("Could not set lock on file")."""
    return isinstance(exc, engine().IOException) and "Could not set lock" in str(exc)


def retry_while_held(
    call: Callable[[], _T],
    held: Callable[[BaseException], bool],
    wait_s: float,
    every_s: float,
    on_wait: Callable[[BaseException], None] | None = None,
) -> _T:
    """``call()``; while it raises what ``held`` accepts, call it again every ``every_s`` s for up to ``wait_s`` s.

    For the two sides of the store's lock (the collector opening the file, a command reading it): DuckDB gives
    no busy timeout for a file lock. The retries are tenacity's, imported only once a first call was refused
    (about 40 ms of imports); ``on_wait`` is called with that first refusal.

    Raises:
        Exception: what ``call`` raised, ``held`` or not, once ``wait_s`` passed.

    """
    try:
        return call()
    except Exception as exc:
        if not held(exc):
            raise
        if on_wait is not None:
            on_wait(exc)
    import tenacity

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_delay(wait_s),
        wait=tenacity.wait_fixed(every_s),
        retry=tenacity.retry_if_exception(held),
        reraise=True,
    )
    return retrying(call)


def connect_file(
    path: Path | str,
    *,
    read_only: bool = False,
    config: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect(path, read_only=..., config=...)``, recovering a write-ahead log DuckDB cannot replay.

    DuckDB is :func:`legible._dbengine.engine`: a CLI that reads the kept file does not import the ``duckdb``
    package's Python layer (about 70 ms of such a query).

    DuckDB 2.0.1 binds the expressions of an ``ALTER TABLE`` it replays from the WAL before its statically
    linked functions are loaded (duckdb#18259), so a file whose WAL holds a migration of a table with a
    generated column (``logs.ts``: ``make_timestamp``) cannot be opened; :func:`migrate` checkpoints right after
    migrating, so only a kill in between leaves such a file. The same WAL replays when the file is attached to
    an in-memory database (whose default catalog has those functions); it is then checkpointed into the file
    (no row lost: the WAL is folded, not dropped), and the file opened as asked.

    Args:
        path: the database file.
        read_only: open it read-only (the recovery itself needs to write the file once).
        config: DuckDB settings for the connection.
        log: called with one line when a WAL was recovered.

    Raises:
        duckdb.Error: the file cannot be opened (held by another process, corrupt), or the recovery failed.

    """
    db = engine()

    try:
        con: duckdb.DuckDBPyConnection = db.connect(str(path), read_only=read_only, config=dict(config or {}))
        return con
    except db.Error as exc:
        if _WAL_REPLAY_ERROR not in str(exc):
            raise
        first = exc
    mem = db.connect(":memory:", config={"autoinstall_known_extensions": "false"})
    try:
        mem.execute("ATTACH ? AS recovered", [str(path)])
        mem.execute("CHECKPOINT recovered")
    except db.Error:
        raise first from None
    finally:
        mem.close()
    if log is not None:
        log(f"replayed {path}'s write-ahead log in a separate database and checkpointed it (duckdb#18259)")
    con = db.connect(str(path), read_only=read_only, config=dict(config or {}))
    return con


def lock_down(con: duckdb.DuckDBPyConnection) -> None:
    """Apply :data:`LOCKED_SETTINGS` to ``con``'s database; afterwards no SQL can change them.

    ``temp_directory`` and the other settings must be set before (they are locked too). Settings are per
    database instance, so every cursor of ``con`` is confined as well.
    """
    for name, value in LOCKED_SETTINGS:
        con.execute(f"SET {name} = {value}")


def compat_views(con: duckdb.DuckDBPyConnection) -> None:
    """Let a store file of an older schema, opened read-only (so not migrated), answer today's queries.

    A file last written by a collector before migration ``m002`` has no ``logs.has_exception``, one before ``m003``
    no ``logs.group_id`` and no ``log_groups``, one before ``m004`` no ``logs.indexed`` and no ``log_words``: a
    temporary view ``logs`` (found before the file's table) adds the missing columns as ``NULL``
    (:data:`HAS_EXCEPTION` reads it as "test the attributes"; the grouped view of :mod:`legible.queries.logs`
    groups such rows on the strings; a search reads every row), and empty temporary views ``log_groups`` and
    ``log_words``/``log_group_words`` stand for the missing dictionary and word index. Nothing is created for a
    file that has them.

    Args:
        con: a connection to the store file (read-only is fine: temporary views live in memory).

    """
    row = con.execute(
        "SELECT current_database(), count(*) FILTER (WHERE table_name = 'logs' AND column_name = 'has_exception'), "
        "count(*) FILTER (WHERE table_name = 'logs' AND column_name = 'group_id'), "
        "count(*) FILTER (WHERE table_name = 'log_groups'), "
        "count(*) FILTER (WHERE table_name = 'logs' AND column_name = 'indexed'), "
        "count(*) FILTER (WHERE table_name = 'log_words'), "
        "count(*) FILTER (WHERE table_name = 'log_group_words') FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = 'main'"
    ).fetchone()
    if row is None:
        return
    catalog = '"' + str(row[0]).replace('"', '""') + '"'  # an identifier, quoted as SQL quotes identifiers
    added = (
        ("" if row[1] else ", NULL::BOOLEAN AS has_exception")
        + ("" if row[2] else ", NULL::INTEGER AS group_id")
        + ("" if row[4] else ", NULL::BOOLEAN AS indexed")
    )
    if added:
        con.execute(f"CREATE TEMP VIEW logs AS SELECT *{added} FROM {catalog}.main.logs")  # noqa: S608
    if not row[3]:
        con.execute(f"CREATE TEMP VIEW log_groups AS {EMPTY_LOG_GROUPS}")
    if not row[5]:
        con.execute(f"CREATE TEMP VIEW log_words AS {EMPTY_LOG_WORDS}")
    if not row[6]:
        con.execute(f"CREATE TEMP VIEW log_group_words AS {EMPTY_LOG_GROUP_WORDS}")


#: A ``SELECT`` of no rows with the columns of ``log_groups``: the dictionary of a store that has none (an old
#: read-only file, a proof bundle), whose ``logs.group_id`` is ``NULL`` everywhere.
EMPTY_LOG_GROUPS = (
    "SELECT NULL::INTEGER AS id, NULL::VARCHAR AS level, NULL::VARCHAR AS service, NULL::VARCHAR AS template "
    "WHERE false"
)


def read_token(state_dir: Path | str) -> str | None:
    """Return the collector's token from ``<state_dir>/collector.token``, or ``None`` if there is none."""
    try:
        token = (Path(state_dir) / TOKEN_FILENAME).read_text().strip()
    except OSError:
        return None
    return token or None


def store_path(state_dir: Path | str) -> Path:
    """Return ``<state_dir>/data/signals.duckdb`` (``state_dir`` is the worktree's ``.legible``)."""
    return Path(state_dir) / "data" / STORE_FILENAME


def check_read_only(sql: str, con: duckdb.DuckDBPyConnection | None = None) -> None:
    """Accept exactly one read-only statement (see :data:`ALLOWED_STATEMENTS`).

    ``WITH``, ``DESCRIBE``, ``SHOW`` and ``SUMMARIZE`` parse as ``SELECT`` in DuckDB and are accepted.

    Args:
        sql: the statement text.
        con: a connection to parse with; default DuckDB's module-level connection, which is created on
            first use (an in-memory database: 20-40 ms that a CLI reading the store file need not pay).

    Raises:
        UsageError: a parse error, several statements, or a statement that is not read-only.

    """
    db = engine()

    try:
        statements = (db if con is None else con).extract_statements(sql)
    except db.Error as e:
        raise UsageError(f"SQL: {_one_line(e)}", hint="see docs/store.md for the tables") from None
    if len(statements) != 1:
        raise UsageError(f"SQL: expected one statement, got {len(statements)}", hint="send one SELECT")
    kind = statements[0].type.name
    if kind not in ALLOWED_STATEMENTS:
        raise UsageError(f"SQL: only SELECT/WITH/EXPLAIN are allowed, not {kind}", hint="read-only store")


def jsonable(value: Any) -> Any:
    """Convert one DuckDB result value to its JSON-compatible form (see the module docstring)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return str(value)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:500]


def run_query(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params: Sequence[Any] | dict[str, Any] | None = None,
    max_rows: int = MAX_ROWS,
) -> tuple[list[str], list[tuple[Any, ...]], bool]:
    """Check and run one read-only query on ``con``; the shared core of both :class:`Store` paths.

    Args:
        con: a connection or cursor.
        sql: one read-only statement.
        params: positional (``?``/``$1``) or named (``$name``) parameters.
        max_rows: row cap (at most :data:`MAX_ROWS`).

    Returns:
        ``(columns, rows, truncated)`` with :func:`jsonable` values.

    Raises:
        UsageError: the statement is not allowed, or DuckDB rejected it (the message is DuckDB's).

    """
    db = engine()

    check_read_only(sql, con)
    cap = max(0, min(max_rows, MAX_ROWS))
    try:
        rel = con.execute(sql, params) if params else con.execute(sql)
        columns = [d[0] for d in rel.description or []]
        raw = rel.fetchmany(cap + 1)
    except db.Error as e:
        raise UsageError(f"SQL: {_one_line(e)}", hint="see docs/store.md for the tables") from None
    finally:
        try:
            con.abort()  # DuckDB 2: drop the rest of the result so the connection can be reused
        except (db.Error, AttributeError):
            pass
    truncated = len(raw) > cap
    rows = [tuple(jsonable(v) for v in r) for r in raw[:cap]]
    return columns, rows, truncated


@dataclass
class QueryResult:
    """The answer of :meth:`Store.query`; unpacks as ``columns, rows = result``.

    Attributes:
        columns: column names.
        rows: at most ``max_rows`` tuples of JSON-compatible values.
        truncated: more rows existed than were returned.
        source: ``"collector"`` (answered over HTTP) or ``"file"`` (read the DuckDB file).

    """

    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool = False
    source: str = "file"

    def __iter__(self) -> Iterator[Any]:
        return iter((self.columns, self.rows))

    def dicts(self) -> list[dict[str, Any]]:
        """Return the rows as ``{column: value}`` dicts."""
        return [dict(zip(self.columns, r, strict=True)) for r in self.rows]


#: Seconds a query waits for a collector that holds the store file and does not answer yet (it opens the file
#: before it listens: a start takes some 100-400 ms here), and between two tries (:meth:`Store.query`).
HELD_WAIT_S = 5.0
HELD_RETRY_S = 0.1


class _StoreHeld(NotRunning):
    """The store file is locked by another process (DuckDB: "Could not set lock on file")."""


@dataclass
class Store:
    """Read access to one worktree's store; see the module docstring for how a query is routed.

    Attributes:
        path: the DuckDB file.
        collector_url: base URL of the running collector's HTTP endpoint, or ``None``.
        worktree: worktree key the collector must report, so a port reused by another worktree's
            collector is never asked (it answers 409 and the file is read instead).
        timeout: seconds to wait for the collector.
        token: the collector's bearer token (:func:`read_token`), sent with each query.

    """

    path: Path
    collector_url: str | None = None
    worktree: str | None = None
    timeout: float = 30.0
    token: str | None = field(default=None, repr=False)
    _con: Any = field(default=None, repr=False)

    def query(
        self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None, max_rows: int = MAX_ROWS
    ) -> QueryResult:
        """Run one read-only statement.

        Args:
            sql: ``SELECT`` / ``WITH`` / ``EXPLAIN`` over the tables of ``docs/store.md``.
            params: positional or named parameters (JSON-compatible values).
            max_rows: row cap, at most :data:`MAX_ROWS`.

        Returns:
            A :class:`QueryResult`.

        Raises:
            UsageError: the statement is not read-only or DuckDB rejected it.
            NotRunning: no collector answers and there is no store file (nothing ever ran here), or the
                file is locked by a collector that did not answer for :data:`HELD_WAIT_S` seconds.

        """
        if self._con is not None or not self.collector_url:
            return self._query_file(sql, params, max_rows)

        def either() -> QueryResult:
            answer = self._query_collector(sql, params, max_rows)
            return answer if answer is not None else self._query_file(sql, params, max_rows)

        return retry_while_held(either, lambda e: isinstance(e, _StoreHeld), HELD_WAIT_S, HELD_RETRY_S)

    def _query_file(self, sql: str, params: Sequence[Any] | dict[str, Any] | None, max_rows: int) -> QueryResult:
        con = self._file_connection()
        columns, rows, truncated = run_query(con, sql, params, max_rows)
        return QueryResult(columns, rows, truncated, "file")

    def _query_collector(
        self, sql: str, params: Sequence[Any] | dict[str, Any] | None, max_rows: int
    ) -> QueryResult | None:
        from legible import _loopback  # here, not at the top: reading the file needs no HTTP client

        body = json.dumps({"sql": sql, "params": params, "max_rows": max_rows, "worktree": self.worktree})
        url = f"{self.collector_url.rstrip('/')}/query"  # type: ignore[union-attr]
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            status, answer = _loopback.request("POST", url, body=body.encode(), headers=headers, timeout=self.timeout)
            if status == 401 and (fresh := read_token(self.path.parent.parent)) not in (None, self.token):
                # the collector restarted since the token was read (a new token at every start): once more
                self.token = fresh
                headers["Authorization"] = f"Bearer {fresh}"
                status, answer = _loopback.request(
                    "POST", url, body=body.encode(), headers=headers, timeout=self.timeout
                )
            if status == 400:
                doc = json.loads(answer or b"{}")
                raise UsageError(doc.get("error", "SQL: rejected"), hint=doc.get("hint", ""))
            if status == 401:
                raise NotRunning(
                    f"the collector refused the token in {self.path.parent.parent / TOKEN_FILENAME}",
                    hint="the stack was restarted by hand? run `legible down` then `legible up --wait`",
                )
            if status != 200:
                return None  # 404/409: not our collector, or too old; read the file
            doc = json.loads(answer)
        except (OSError, ValueError):
            return None
        return QueryResult(
            list(doc["columns"]), [tuple(r) for r in doc["rows"]], bool(doc.get("truncated")), "collector"
        )

    def _file_connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is not None:
            return self._con  # type: ignore[no-any-return]
        db = engine()

        if not self.path.exists():
            raise NotRunning(f"no store at {self.path}", hint="run `legible up` and let the app emit signals")
        try:
            self._con = connect_file(self.path, read_only=True, config=dict(LOCKED_SETTINGS))
            compat_views(self._con)
        except db.Error as e:
            raise (_StoreHeld if held_by_another(e) else NotRunning)(
                f"the store is held by a running collector that did not answer: {_one_line(e)}",
                hint="check `legible status`; the collector may be busy or restarting",
            ) from None
        return self._con  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close the file connection, if one was opened."""
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(state_dir: Path | str, collector_url: str | None = None, worktree: str | None = None) -> Store:
    """Return the :class:`Store` of the worktree whose state directory is ``state_dir``.

    Args:
        state_dir: the worktree's ``.legible`` directory.
        collector_url: the collector's HTTP base URL (``endpoints["otlp-http"]`` of the plan), or ``None``
            to read the file only.
        worktree: the worktree key the collector must report; default: derived from ``state_dir``'s parent
            (:func:`legible.worktree.worktree_key`).

    Raises:
        Nothing; errors surface on :meth:`Store.query`.

    """
    state_dir = Path(state_dir)
    if worktree is None:
        from legible.worktree import worktree_key

        worktree = worktree_key(state_dir.parent)
    token = read_token(state_dir) if collector_url else None
    return Store(path=store_path(state_dir), collector_url=collector_url, worktree=worktree, token=token)
