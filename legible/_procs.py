"""Process identity and process-group signalling: the one place that knows about PIDs, groups and Linux.

A PID alone is not an identity (PIDs are reused), so every process legible records is a
:class:`ProcRef` of ``(pid, create_time)`` and is only signalled when both still match.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psutil

from legible._paths import REGISTRY_ENV, STACK_ENV

if TYPE_CHECKING:
    from legible.contract import ProcRefDoc

__all__ = ["REGISTRY_ENV", "STACK_ENV", "ProcRef", "signal_group", "stack_processes", "terminate", "wait_gone"]


@dataclass(frozen=True)
class ProcRef:
    """A process identity that survives PID reuse.

    Attributes:
        pid: process id.
        create_time: ``psutil.Process.create_time()``, seconds since the epoch.

    """

    pid: int
    create_time: float

    @classmethod
    def of(cls, pid: int) -> ProcRef | None:
        """Return the identity of the live process ``pid``, or ``None`` if it is gone."""
        try:
            return cls(pid, psutil.Process(pid).create_time())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None

    def alive(self) -> bool:
        """True while the same process (same pid and start time) runs and is not a zombie."""
        try:
            p = psutil.Process(self.pid)
            same = abs(p.create_time() - self.create_time) < 0.05
            return bool(same and p.status() != psutil.STATUS_ZOMBIE)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return False

    def to_dict(self) -> ProcRefDoc:
        """``{"pid": int, "create_time": float}`` for state.json."""
        return {"pid": self.pid, "create_time": self.create_time}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> ProcRef | None:
        """Inverse of :meth:`to_dict`; ``None`` passes through."""
        if not d:
            return None
        return cls(int(d["pid"]), float(d["create_time"]))


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to process group ``pgid``; False if the group no longer exists."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return False


def stack_processes(key: str | None = None, registry: str | None = None) -> Iterator[psutil.Process]:
    """Yield live processes whose environment has ``LEGIBLE_STACK`` (equal to ``key`` when given).

    With ``registry``, only processes whose ``LEGIBLE_REGISTRY`` equals it. Only this user's processes are
    readable; others are skipped silently.
    """
    me = os.getpid()
    for p in psutil.process_iter(["pid"]):
        if p.pid == me:
            continue
        try:
            env = p.environ()
            value = env.get(STACK_ENV)
            if value is None or (key is not None and value != key):
                continue
            if registry is not None and env.get(REGISTRY_ENV) != registry:
                continue
            if p.status() == psutil.STATUS_ZOMBIE:
                continue
            yield p
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue


def terminate(procs: Iterable[psutil.Process], timeout: float = 3.0) -> list[int]:
    """SIGTERM each process, SIGKILL those still alive after ``timeout`` seconds; return the pids signalled."""
    procs = list(procs)
    for p in procs:
        try:
            p.send_signal(signal.SIGTERM)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:
        try:
            p.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    psutil.wait_procs(alive, timeout=1.0)
    return [p.pid for p in procs]


def wait_gone(ref: ProcRef, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``ref`` to exit; True if it did.

    ``ref`` need not be a child of this process (``legible down`` waits for a supervisor another ``legible
    up`` started): on Linux a pidfd (``pidfd_open(2)``, readable once the process has exited) wakes the
    wait at the exit itself; elsewhere the process is polled every 10 ms.
    """
    deadline = time.monotonic() + timeout
    fd = -1
    if hasattr(os, "pidfd_open"):
        try:
            fd = os.pidfd_open(ref.pid)
        except OSError:  # gone already (ESRCH), or a kernel without pidfd (ENOSYS)
            fd = -1
    try:
        if not ref.alive():  # checked after the open: the descriptor is of this very process, not a reused pid
            return True
        if fd >= 0:
            import select

            select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        else:
            while time.monotonic() < deadline and ref.alive():
                time.sleep(0.01)
    finally:
        if fd >= 0:
            os.close(fd)
    return not ref.alive()
