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
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from legible.config import LegibleConfig

__all__ = [
    "CHECK_KINDS",
    "CONFIG_FILENAME",
    "LEVELS",
    "STAMP_FILENAME",
    "LazyConfig",
    "config_key",
    "find_config_file",
    "load_config_lazily",
]

CONFIG_FILENAME = "legible.toml"
#: The stamp of the last configuration that validated, in the worktree's ``.legible`` directory.
STAMP_FILENAME = "config.validated"
#: Log levels, lowest first (the ``level`` of a logs check).
LEVELS = ("trace", "debug", "info", "warn", "error", "fatal")
#: Check kinds, in documentation order.
CHECK_KINDS = ("startup", "span", "promql", "logs", "journey", "browser", "db")
#: The modules whose code decides whether a configuration validates (their bytes are part of the stamp).
_VALIDATOR_SOURCES = ("config.py", "_duration.py")


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
    digest = hashlib.sha256(b"legible.config-stamp/v1\0")
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
    found = find_config_file(root)
    key: str | None = None
    if found is not None:
        try:
            key = config_key(found[0], found[1], found[0].read_bytes())
            stamp = (state_dir / STAMP_FILENAME).read_text().strip()
        except OSError:
            stamp = None
        if key is not None and stamp == key:
            return cast("LegibleConfig", LazyConfig(lambda: _validate(root)))
    from legible.config import load_config

    config = load_config(root)  # raises the configuration's error; nothing is stamped then
    if key is not None and state_dir.is_dir():
        from legible._files import write_private

        try:
            write_private(state_dir / STAMP_FILENAME, key + "\n")
        except OSError:  # a read-only .legible: the next run validates again
            pass
    return config
