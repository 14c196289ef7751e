"""Finding ``legible.toml`` and remembering that it validated, without importing pydantic.

:mod:`legible.config` validates the file with pydantic: importing pydantic and building the schema of every
model costs about 130 ms, most of what a query command such as ``legible check --logs ...`` on a stopped
stack's store spends beyond DuckDB (issue 12; issue 3 wants it under 300 ms). A command that needs no value
of the configuration, only the guarantee that it is valid (a broken file is still an error, exit 2), calls
:func:`load_config_lazily`: the first run validates as :func:`legible.config.load_config` always did and, on
success, writes a stamp to ``.legible/config.validated`` (0600, :mod:`legible._files`); later runs whose
stamp matches get a :class:`LazyConfig` that validates (imports pydantic) only when a value is read.

The stamp is the SHA-256 of the configuration file's bytes, of which file it is (``legible.toml`` or
``pyproject.toml``, and where), and of the sources of the validator (``legible/config.py`` and
``legible/_duration.py``), so an edited file or an edited validator is validated again. A file that does not
validate never gets a stamp, so its error (one line naming the key and the file, exit 2) is the one
:func:`legible.config.load_config` raises, every time.

The stamp is one JSON document (``legible.config-stamp/v2``, written by :func:`json.dumps`, 0600)::

    {"schema": "legible.config-stamp/v2", "key": "<64 hex>", "config": {...}, "forward_set": ["otlp"]}

``config`` is the validated configuration's ``model_dump(mode="json")`` (defaults applied; only what the
file says: ``$NAME`` references in ``env`` stay references) and ``forward_set`` the keys ``[forward]`` set.
``legible up`` plans from it with no pydantic (:func:`load_config_cached`, :mod:`legible._config_plain`;
about 120 ms less before the supervisor has the plan, issue 12). A stamp that is missing, unreadable, not
JSON, of another schema or shape, not a regular file, owned by another user or readable by others is
ignored: the file is validated again (and stamped anew), never planned from a stale or foreign copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from legible.config import LegibleConfig
    from legible.contract import ConfigStampDoc

__all__ = [
    "CHECK_KINDS",
    "CONFIG_FILENAME",
    "LEVELS",
    "STAMP_FILENAME",
    "STAMP_SCHEMA",
    "LazyConfig",
    "config_key",
    "find_config_file",
    "load_config_cached",
    "load_config_lazily",
    "order_services",
    "read_stamp",
    "write_stamp",
]

CONFIG_FILENAME = "legible.toml"
#: The stamp of the last configuration that validated, in the worktree's ``.legible`` directory.
STAMP_FILENAME = "config.validated"
#: The ``schema`` of the stamp's JSON document.
STAMP_SCHEMA = "legible.config-stamp/v2"
#: Log levels, lowest first (the ``level`` of a logs check).
LEVELS = ("trace", "debug", "info", "warn", "error", "fatal")
#: Check kinds, in documentation order.
CHECK_KINDS = ("startup", "span", "promql", "logs", "journey", "browser", "db")
#: The modules whose code decides whether a configuration validates (their bytes are part of the stamp).
#: ``_config_file.py`` and ``_config_plain.py`` write and read the stamp's configuration.
_VALIDATOR_SOURCES = ("config.py", "_duration.py", "_config_file.py", "_config_plain.py")


def find_config_file(root: Path) -> tuple[Path, str] | None:
    """Return ``(path, "legible.toml" | "pyproject.toml")`` for the worktree at ``root``, or ``None``."""
    toml = root / CONFIG_FILENAME
    if toml.is_file():
        return toml, CONFIG_FILENAME
    py = root / "pyproject.toml"
    if py.is_file():
        try:
            data = tomllib.loads(py.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            return None
        if isinstance(data.get("tool"), dict) and "legible" in data["tool"]:
            return py, "pyproject.toml"
    return None


def config_key(path: Path, kind: str, content: bytes) -> str:
    """The stamp of configuration ``content`` read from ``path`` (a ``kind`` file): 64 hex digits (SHA-256).

    Covers the content, the file's path and kind, and the validator's sources (see the module docstring).

    Raises:
        OSError: a validator source cannot be read.

    """
    digest = hashlib.sha256(STAMP_SCHEMA.encode() + b"\0")
    digest.update(f"{kind}\0{path}\0".encode())
    digest.update(content)
    here = Path(__file__).parent
    for name in _VALIDATOR_SOURCES:
        digest.update(b"\0" + (here / name).read_bytes())
    return digest.hexdigest()


class LazyConfig:
    """A :class:`legible.config.LegibleConfig` known to validate, validated (pydantic imported) on first read.

    Any attribute read (``checks``, ``source``, ``stack``...) loads the configuration with ``load`` once and
    answers from it; ``loaded`` says whether that happened.
    """

    def __init__(self, load: Callable[[], LegibleConfig]) -> None:
        """Wrap ``load``, a function returning the validated configuration (``legible.config.load_config``)."""
        self._load = load
        self._config: LegibleConfig | None = None

    @property
    def loaded(self) -> bool:
        """True once the configuration was validated and kept."""
        return self._config is not None

    def __getattr__(self, name: str) -> Any:
        """The attribute ``name`` of the validated configuration (loading it on first use)."""
        if name.startswith("_"):
            raise AttributeError(name)
        if self._config is None:
            self._config = self._load()
        return getattr(self._config, name)


def _validate(root: Path) -> LegibleConfig:
    """:func:`legible.config.load_config` of ``root``, imported only now (it imports pydantic)."""
    from legible.config import load_config

    return load_config(root)


def load_config_lazily(root: Path, state_dir: Path) -> LegibleConfig:
    """The worktree's configuration: validated now, or lazily when ``state_dir`` holds its stamp.

    Args:
        root: the worktree root (where ``legible.toml`` is looked for, as :func:`legible.config.load_config`).
        state_dir: the worktree's ``.legible`` directory; the stamp is written there only when it exists.

    Returns:
        A :class:`legible.config.LegibleConfig`, or a :class:`LazyConfig` standing for one (typed as the
        configuration: it answers every attribute read the same way).

    Raises:
        ConfigError: what :func:`legible.config.load_config` raises (no file, invalid TOML, a bad key), with
            the same message and hint.

    """
    found = _read_config(root)
    if found is not None:
        stamp = read_stamp(state_dir)
        if stamp is not None and stamp["key"] == found[3]:
            return cast("LegibleConfig", LazyConfig(lambda: _validate(root)))
    return _validate_and_stamp(root, found, state_dir)


def _read_config(root: Path) -> tuple[Path, str, bytes, str] | None:
    """``(path, kind, content, stamp key)`` of the worktree's configuration file, or ``None`` (none, unreadable)."""
    found = find_config_file(root)
    if found is None:
        return None
    try:
        content = found[0].read_bytes()
        return found[0], found[1], content, config_key(found[0], found[1], content)
    except OSError:
        return None


def _validate_and_stamp(
    root: Path,
    found: tuple[Path, str, bytes, str] | None,
    state_dir: Path,
    make_state_dir: Callable[[], object] | None = None,
) -> LegibleConfig:
    """Validate the configuration (pydantic) from the very bytes its key was computed from, then stamp it.

    Without ``found`` (no file, or it could not be read) :func:`legible.config.load_config` raises its error.
    ``make_state_dir`` creates ``state_dir`` first (``legible up``); otherwise a missing one gets no stamp.
    """
    from legible.config import config_from_bytes, load_config

    if found is None:
        return load_config(root)  # raises the missing or unreadable file's error
    path, kind, content, key = found
    config = config_from_bytes(path, kind, content)  # raises the configuration's error; nothing is stamped
    try:
        if make_state_dir is not None:
            make_state_dir()
        if state_dir.is_dir():
            write_stamp(state_dir, key, config)
    except OSError:  # a read-only .legible: the next run validates again
        pass
    return config


def write_stamp(state_dir: Path, key: str, config: LegibleConfig) -> None:
    """Write ``state_dir/config.validated`` for ``config``, which validated from a file of stamp ``key``.

    The document (see the module docstring) is serialized by :func:`json.dumps` and written atomically,
    0600 (:func:`legible._files.write_private`).

    Raises:
        OSError: ``state_dir`` is not writable.

    """
    from legible._files import write_private

    doc: ConfigStampDoc = {
        "schema": "legible.config-stamp/v2",
        "key": key,
        "config": config.model_dump(mode="json"),
        "forward_set": sorted(config.forward.model_fields_set),
    }
    write_private(state_dir / STAMP_FILENAME, json.dumps(doc, separators=(",", ":")) + "\n")


def read_stamp(state_dir: Path) -> dict[str, Any] | None:
    """The stamp document in ``state_dir``, or ``None`` when there is none this process may trust.

    Trusted: a regular file (not a symbolic link), owned by this user, neither readable nor writable by
    others, holding a JSON object with ``schema`` :data:`STAMP_SCHEMA` and a string ``key``.
    """
    try:
        fd = os.open(state_dir / STAMP_FILENAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
            return None
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(16 << 20)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or doc.get("schema") != STAMP_SCHEMA or not isinstance(doc.get("key"), str):
        return None
    return doc


def load_config_cached(
    root: Path, state_dir: Path, make_state_dir: Callable[[], object] | None = None
) -> LegibleConfig:
    """The worktree's configuration for planning: from its stamp when it matches, else validated and stamped.

    When ``state_dir``'s stamp (see the module docstring) matches the file, the configuration is rebuilt from
    the stamp as a :class:`legible._config_plain.PlainConfig`, with no pydantic: it answers every read
    :func:`legible.plan.build_plan` makes. Otherwise the file is validated as :func:`legible.config.load_config`
    does and, on success, stamped (after ``make_state_dir()``, when given, creates ``state_dir``).

    Args:
        root: the worktree root.
        state_dir: the worktree's ``.legible`` directory.
        make_state_dir: creates ``state_dir`` (``Worktree.ensure_state_dir``); an ``OSError`` it raises only
            means no stamp is written.

    Returns:
        A :class:`legible.config.LegibleConfig`, or a :class:`~legible._config_plain.PlainConfig` typed as one.

    Raises:
        ConfigError: what :func:`legible.config.load_config` raises (no file, invalid TOML, a bad key), with
            the same message and hint (exit 2).

    """
    found = _read_config(root)
    if found is not None:
        stamp = read_stamp(state_dir)
        if stamp is not None and stamp["key"] == found[3]:
            from legible._config_plain import plain_config

            try:
                return cast("LegibleConfig", plain_config(stamp.get("config"), stamp.get("forward_set")))
            except (ValueError, TypeError, KeyError, AttributeError):
                pass  # a stamp of another shape: validate again, and stamp anew
    return _validate_and_stamp(root, found, state_dir, make_state_dir)


class _Graph(Protocol):
    """What :func:`order_services` reads of a configuration (a ``LegibleConfig`` or a ``PlainConfig``)."""

    @property
    def app(self) -> Any: ...  # noqa: D102

    @property
    def services(self) -> Any: ...  # noqa: D102


def order_services(cfg: _Graph) -> list[str]:
    """Return the user services (``app`` and extras) in start order: dependencies first, then by name.

    Raises:
        ValueError: the ``depends_on`` graph has a cycle (the message lists it).

    """
    graph = {"app": list(cfg.app.depends_on), **{n: list(s.depends_on) for n, s in cfg.services.items()}}
    done: list[str] = []
    visiting: list[str] = []

    def visit(n: str) -> None:
        if n in done:
            return
        if n in visiting:
            cycle = visiting[visiting.index(n) :] + [n]
            raise ValueError(f"depends_on has a cycle: {' -> '.join(cycle)}")
        visiting.append(n)
        for d in sorted(graph[n]):
            visit(d)
        visiting.pop()
        done.append(n)

    for n in sorted(graph):
        visit(n)
    return done
