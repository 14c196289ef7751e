r"""The folding of a log line into ``logs.template``, in Python's ``re`` (no DuckDB needed).

One table of regexes (:data:`TEMPLATE_RES`) serves every copy of the folding: :mod:`legible.store` builds its
SQL (RE2, DuckDB's ``regexp_replace``, https://github.com/google/re2/wiki/Syntax) from these patterns, the
collector folds small batches with :func:`template_of`, and :mod:`legible.redact` folds a secret with
:func:`fold` to see whether the store's template would still hold it. RE2 reads ``\d`` as ``[0-9]`` and
``\b`` as an ASCII word boundary; ``re.ASCII`` gives Python the same classes, and both take the leftmost-first
match (``tests/test_store_template.py`` compares the two over a varied and a random corpus).
"""

from __future__ import annotations

import functools
import re

__all__ = ["HEADLINE_MAX", "TEMPLATE_RES", "TRACEBACK", "fold", "template_of"]

#: ``(pattern, placeholder)`` in order: UUIDs, hex runs of 8+, numbers, quoted strings of 24+ characters.
TEMPLATE_RES = (
    (r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", "<uuid>"),
    (r"\b(0x)?[0-9a-fA-F]{8,}\b", "<hex>"),
    (r"\b\d+(\.\d+)?", "<n>"),
    (r'"[^"]{24,}"', '"<s>"'),
)
#: A body starting with this is a Python traceback: its headline is its last line.
TRACEBACK = "Traceback (most recent call last):"
#: Code points of the headline kept before folding (DuckDB's ``left``).
HEADLINE_MAX = 300


@functools.cache
def _compiled() -> list[tuple[re.Pattern[str], str]]:
    """:data:`TEMPLATE_RES` compiled with ``re.ASCII``, on first use (the CLI never needs them)."""
    return [(re.compile(pattern, re.ASCII), placeholder) for pattern, placeholder in TEMPLATE_RES]


def fold(text: str) -> str:
    """Replace in ``text`` what :data:`TEMPLATE_RES` matches by its placeholder, stage by stage."""
    for regex, placeholder in _compiled():
        text = regex.sub(placeholder, text)
    return text


def template_of(body: str) -> str:
    """Return ``logs.template`` of one ``body``: equal to :func:`legible.store.template_sql` for every string.

    The headline (the first line, or the last line of a trimmed traceback) cut to :data:`HEADLINE_MAX` code
    points, then :func:`fold`.
    """
    if body.startswith(TRACEBACK):  # the last line (regexp_extract '([^\n]*)$' of the trimmed body)
        head = body.rstrip("\n ").rpartition("\n")[2][:HEADLINE_MAX]
    else:
        head = body.partition("\n")[0][:HEADLINE_MAX]
    return fold(head)
