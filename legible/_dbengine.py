"""DuckDB's engine for a process that only opens the store file and reads rows (issue 12).

The ``duckdb`` package (1.4 and later; 2.0 here) is a Python layer over its C++ extension module ``_duckdb``: its
``__init__`` says it "re-exports the DuckDB C++ extension (``_duckdb``)", so ``duckdb.connect``, the DB-API
exception classes (``duckdb.Error`` ...) and ``duckdb.DuckDBPyConnection`` are ``_duckdb``'s own objects, and the
layer adds the relational and expression API, Arrow/pandas scans (``duckdb._sources``) and a version lookup through
``importlib.metadata``. Importing that layer is most of ``import duckdb`` (measured here: 100-180 ms against
40-80 ms for ``_duckdb`` alone), and a CLI that opens the kept store file, runs SQL and fetches rows uses none of
it: ``legible logs`` on a stopped stack's 1M-line file took 248 ms with the package, 174 ms with the engine alone.

:func:`engine` gives the module to use: ``duckdb`` when this process has already imported it (the collector, which
scans Arrow tables and so needs the layer), else ``_duckdb``, else ``duckdb`` (a build without the split). Callers
use only names the package re-exports unchanged (``connect``, ``Error`` and its subclasses, ``extract_statements``,
``DuckDBPyConnection``); ``tests/test_dbengine.py`` checks that they are the very same objects in the installed
``duckdb``, so an upgrade that changes the layering fails that test rather than a user's query.
"""

from __future__ import annotations

import sys
from types import ModuleType

__all__ = ["REEXPORTED", "engine"]

#: The names of ``duckdb`` that callers of :func:`engine` may use: ``_duckdb``'s objects, re-exported unchanged.
REEXPORTED = ("connect", "Error", "FatalException", "DuckDBPyConnection", "extract_statements")


def engine() -> ModuleType:
    """Return the module whose :data:`REEXPORTED` names to use: ``duckdb`` if imported, else ``_duckdb``.

    Raises:
        ImportError: DuckDB is not installed.

    """
    loaded = sys.modules.get("duckdb")
    if loaded is not None:
        return loaded
    try:
        import _duckdb
    except ImportError:  # a build without the split: the package is the engine
        import duckdb

        return duckdb
    return _duckdb
