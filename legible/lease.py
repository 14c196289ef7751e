"""Machine-wide port leases: each stack holds one block of loopback ports, granted under a file lock.

The registry is ``leases.json`` in :func:`legible._paths.state_home`, guarded by ``leases.json.lock``
(``filelock``). Granting is check-and-record under that lock, so two ``legible up`` started at the same
instant in different worktrees never get the same block. A block's first choice is derived from the
worktree key (so a worktree tends to keep its ports across runs); on collision the next free block is taken.
A block is free when no live lease holds it and every port in it can be bound on 127.0.0.1 right now.
A lease whose owner process is gone is reclaimed by the next grant (and by ``legible gc``).

Ports come from ``[10000, min(ip_local_port_range low, 32768))`` so they never collide with the kernel's
ephemeral ports (``/proc/sys/net/ipv4/ip_local_port_range``, see ip-sysctl.rst in the Linux docs).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from legible._errors import LeaseConflict
from legible._paths import state_home
from legible._procs import ProcRef

if TYPE_CHECKING:
    from filelock import FileLock

    from legible.contract import LeaseDoc, LeasesDoc

#: Ports per block. Slots are named in :data:`SLOTS`; the rest serve extra services.
BLOCK_SIZE = 16
#: Fixed slot of each built-in port inside a block.
SLOTS: dict[str, int] = {
    "app": 0,
    "victoria-metrics": 1,
    "otlp-http": 2,
    "otlp-grpc": 3,
    "supervisor": 4,
    "chromium": 5,
    "vector": 6,
    "grafana": 7,
    "vmagent": 8,
}
#: First slot for extra services declared with ``port = true``.
FIRST_EXTRA_SLOT = 9
PORT_LOW = 10000


def _port_high() -> int:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return max(PORT_LOW + BLOCK_SIZE * 64, min(low, 32768))


@dataclass
class Lease:
    """One stack's block of ports.

    Attributes:
        key: worktree key.
        worktree: worktree root path.
        base: first port of the block; the block is ``[base, base + BLOCK_SIZE)``.
        owner: the process that holds the lease (the supervisor once started), as ``{"pid", "create_time"}``.
        granted_at: seconds since the epoch.

    """

    key: str
    worktree: str
    base: int
    owner: Mapping[str, Any] = field(default_factory=dict)
    granted_at: float = 0.0

    def port(self, slot: str | int) -> int:
        """Return the port of a named slot (see :data:`SLOTS`) or of a slot number."""
        idx = SLOTS[slot] if isinstance(slot, str) else slot
        if not 0 <= idx < BLOCK_SIZE:
            raise ValueError(f"slot {slot} is outside the block of {BLOCK_SIZE}")
        return self.base + idx

    def owner_alive(self) -> bool:
        """True while the owner process still runs."""
        ref = ProcRef.from_dict(self.owner)
        return ref is not None and ref.alive()


class LeaseRegistry:
    """The machine-wide lease table.

    Args:
        path: the ``leases.json`` file; default under :func:`legible._paths.state_home`.
        lock_timeout: seconds to wait for the lock before :class:`LeaseConflict`.

    """

    def __init__(self, path: Path | None = None, lock_timeout: float = 10.0) -> None:
        self.path = path or state_home() / "leases.json"
        self.lock_timeout = lock_timeout
        self.high = _port_high()

    @cached_property
    def lock(self) -> FileLock:
        """The registry's file lock (``leases.json.lock``), made at first use.

        filelock is imported only then (about 20 ms): a supervisor started early by ``legible up`` spawns
        the stack's first services before it first takes the lock (issue 12).
        """
        from filelock import FileLock

        return FileLock(str(self.path) + ".lock", timeout=self.lock_timeout)

    def _load(self) -> dict[str, Lease]:
        try:
            raw: dict[str, Any] = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (json.JSONDecodeError, OSError):
            return {}  # a corrupt registry is rebuilt; live stacks re-register on their next grant
        return {k: Lease(**v) for k, v in raw.get("leases", {}).items()}

    def _save(self, leases: dict[str, Lease]) -> None:
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        doc: LeasesDoc = {
            "schema": "legible.leases/v1",
            "leases": {k: cast("LeaseDoc", asdict(v)) for k, v in leases.items()},
        }
        tmp.write_text(json.dumps(doc, indent=1))
        os.replace(tmp, self.path)

    def all(self) -> list[Lease]:
        """Every recorded lease, live or not (read under the lock)."""
        with self.lock:
            return sorted(self._load().values(), key=lambda lease: lease.base)

    def get(self, key: str) -> Lease | None:
        """The lease of worktree ``key``, or ``None``."""
        with self.lock:
            return self._load().get(key)

    def grant(
        self,
        key: str,
        worktree: str,
        owner: ProcRef,
        *,
        prefer: int | None = None,
        avoid: frozenset[int] = frozenset(),
    ) -> Lease:
        """Grant ``key`` a block of free ports owned by ``owner``; reclaims leases of dead owners first.

        If ``key`` already holds a lease whose owner is alive, that lease is returned unchanged (the
        caller sees a running stack by its owner).

        Args:
            key: worktree key.
            worktree: worktree root.
            owner: the process that holds the lease.
            prefer: a block base to try first (the block a dead stack of this worktree held).
            avoid: block bases not to grant (blocks found busy after an earlier grant).

        Raises:
            LeaseConflict: every block is leased or busy, or the lock could not be taken in time.

        """
        try:
            with self.lock:
                leases = self._load()
                for k, lease in list(leases.items()):
                    if not lease.owner_alive():
                        del leases[k]
                if key in leases:
                    return leases[key]
                taken = {lease.base for lease in leases.values()}
                nblocks = (self.high - PORT_LOW) // BLOCK_SIZE
                first = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % nblocks
                bases = [PORT_LOW + ((first + i) % nblocks) * BLOCK_SIZE for i in range(nblocks)]
                if prefer is not None and prefer in bases:
                    bases.insert(0, prefer)
                for base in bases:
                    if base in taken or base in avoid or not _block_free(base):
                        continue
                    lease = Lease(key=key, worktree=worktree, base=base, owner=owner.to_dict(), granted_at=time.time())
                    leases[key] = lease
                    self._save(leases)
                    return lease
        except TimeoutError as exc:
            raise LeaseConflict(
                f"could not lock the lease registry {self.path} in time",
                hint="another legible command holds it; retry, or remove a stale .lock file",
            ) from exc
        raise LeaseConflict(
            f"no free block of {BLOCK_SIZE} loopback ports in {PORT_LOW}-{self.high}",
            hint="run `legible gc` to reclaim stacks that are gone, or `legible down` in idle worktrees",
        )

    def transfer(self, key: str, owner: ProcRef) -> None:
        """Make ``owner`` (the supervisor) the holder of ``key``'s lease."""
        with self.lock:
            leases = self._load()
            if key in leases:
                leases[key].owner = owner.to_dict()
                self._save(leases)

    def release(self, key: str, owner: ProcRef | None = None) -> bool:
        """Drop ``key``'s lease (only if held by ``owner``, when given); True if one was dropped."""
        with self.lock:
            leases = self._load()
            lease = leases.get(key)
            if lease is None:
                return False
            if owner is not None and ProcRef.from_dict(lease.owner) != owner:
                return False
            del leases[key]
            self._save(leases)
            return True


def _block_free(base: int) -> bool:
    for port in range(base, base + BLOCK_SIZE):
        if not port_free(port):
            return False
    return True


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if a TCP listener could bind ``host:port`` now (with ``SO_REUSEADDR``, as servers do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
