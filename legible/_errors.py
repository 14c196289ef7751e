"""The exception tree of legible and the exit code each one maps to.

The CLI (``clis/``) turns these into one line on stderr and the exit code below; the core never prints
and never exits. Exit codes follow the contract in ``ARCHITECTURE.md`` ("CLI contract")::

    LegibleError                 base class; exit 2 unless a subclass says otherwise
    ├── UsageError               exit 2  bad flag, bad argument, not inside a git worktree
    │   └── ConfigError          exit 2  legible.toml is malformed: names the file and the key
    ├── CheckFailed              exit 1  a check did not hold (issue 5)
    ├── PrerequisiteMissing      exit 3  a binary or package is missing: carries the install command
    ├── NotReady                 exit 4  a service did not become ready in time, or exited while starting
    ├── LeaseConflict            exit 5  no free port block, or the lease is held by a live stack
    ├── NotRunning               exit 2  the command needs a running stack and there is none
    └── Interrupted              exit 130 SIGINT/SIGTERM stopped the command; what it started was stopped

Every error carries ``hint`` (what to do next, one line) and, for service failures, ``log_tail`` (the
last lines of the failing service's log) so an agent can act without a second command.
"""

from __future__ import annotations

__all__ = [
    "CheckFailed",
    "ConfigError",
    "Interrupted",
    "LeaseConflict",
    "LegibleError",
    "NotReady",
    "NotRunning",
    "PrerequisiteMissing",
    "UsageError",
]


class LegibleError(Exception):
    """Base class of every error legible raises on purpose.

    Args:
        message: one line naming the bad thing.
        hint: one line saying how to fix it, or ``""``.
        log_tail: the last lines of a relevant service log (newest last), or ``[]``.

    """

    exit_code = 2

    def __init__(self, message: str, *, hint: str = "", log_tail: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.log_tail = list(log_tail or [])

    def to_dict(self) -> dict[str, object]:
        """Return ``{"error": type, "message", "hint", "exit_code", "log_tail"}`` for ``--json`` output."""
        return {
            "error": type(self).__name__,
            "message": self.message,
            "hint": self.hint,
            "exit_code": self.exit_code,
            "log_tail": self.log_tail,
        }


class UsageError(LegibleError):
    """A flag, an argument or the working directory is wrong (exit 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """``legible.toml`` (or ``[tool.legible]``) is malformed; the message names the file and the key (exit 2)."""


class CheckFailed(LegibleError):
    """A check did not hold (exit 1)."""

    exit_code = 1


class PrerequisiteMissing(LegibleError):
    """A binary or package legible needs is missing; ``hint`` holds the command that installs it (exit 3)."""

    exit_code = 3


class NotReady(LegibleError):
    """A service did not become ready within its timeout, or exited before it was ready (exit 4)."""

    exit_code = 4


class LeaseConflict(LegibleError):
    """No free block of loopback ports, or a port we leased is taken by a foreign process (exit 5)."""

    exit_code = 5


class NotRunning(LegibleError):
    """The command needs a running stack for this worktree and none is up (exit 2)."""

    exit_code = 2


class Interrupted(LegibleError):
    """SIGINT (Ctrl-C) or SIGTERM stopped a command; it stopped what it had started (exit 130, 128 + SIGINT)."""

    exit_code = 130
