"""Private files: everything legible writes under ``.legible/`` is 0600 in 0700 directories.

``.legible/`` holds logs, signals and configuration of a worktree's app: nobody but its owner reads them
(ARCHITECTURE.md, "Trust"). Services inherit ``umask 077`` from the supervisor (:data:`PRIVATE_UMASK`), so
what they create (VictoriaMetrics' data, the DuckDB store, logs) is private as well.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PRIVATE_UMASK", "private_dir", "write_private"]

#: The umask of the supervisor and every service it starts: files 0600, directories 0700.
PRIVATE_UMASK = 0o077


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700, or take group and other bits off an existing one; return it.

    An existing directory the owner made read-only stays read-only (legible never widens a mode), so
    writing into it fails with the error below.

    Raises:
        OSError: it cannot be created or its mode changed (not a directory, not ours, read-only filesystem).

    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        path.chmod(mode & 0o700)
    return path


def write_private(path: Path, text: str | bytes) -> None:
    """Write ``path`` atomically (temporary file, then rename) with mode 0600.

    Raises:
        OSError: the directory is not writable.

    """
    data = text.encode() if isinstance(text, str) else text
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o600)  # O_CREAT's mode does not apply to a leftover temporary file
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
