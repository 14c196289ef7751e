"""Port leases: concurrent grants never collide, dead owners are reclaimed, busy ports are skipped."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from legible._procs import ProcRef
from legible.lease import BLOCK_SIZE, LeaseRegistry

GRANT = """
import os, sys, time
from legible.lease import LeaseRegistry
from legible._procs import ProcRef
go = float(sys.argv[2])
while time.time() < go:
    pass
lease = LeaseRegistry().grant(sys.argv[1], "/w/" + sys.argv[1], ProcRef.of(os.getppid()))
print(lease.base)
"""


def test_concurrent_grants_from_many_processes_get_distinct_blocks(tmp_path: Path) -> None:
    import time

    go = time.time() + 1.5  # all processes spin until the same instant, then grant
    procs = [
        subprocess.Popen([sys.executable, "-c", GRANT, f"wt{i}", str(go)], stdout=subprocess.PIPE, text=True)
        for i in range(8)
    ]
    bases = [int(p.communicate(timeout=30)[0]) for p in procs]
    assert len(set(bases)) == 8, bases
    ports = [b + i for b in bases for i in range(BLOCK_SIZE)]
    assert len(set(ports)) == len(ports)
    assert {lease.key for lease in LeaseRegistry().all()} == {f"wt{i}" for i in range(8)}


def test_same_key_with_live_owner_gets_the_same_lease_and_dead_owner_is_reclaimed() -> None:
    reg = LeaseRegistry()
    me = ProcRef.of(os.getpid())
    assert me is not None
    first = reg.grant("a", "/a", me)
    assert reg.grant("a", "/a", me).base == first.base
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_ref = ProcRef.of(dead.pid) or ProcRef(dead.pid, 0.0)
    dead.wait()
    reg.grant("b", "/b", dead_ref)
    assert reg.get("b") is not None
    reg.grant("c", "/c", me)  # any grant reclaims leases whose owner is gone
    assert reg.get("b") is None
    assert reg.release("a", me) and reg.get("a") is None


def test_a_block_with_a_busy_port_is_skipped() -> None:
    reg = LeaseRegistry()
    me = ProcRef.of(os.getpid())
    assert me is not None
    natural = reg.grant("probe", "/p", me).base
    reg.release("probe")
    with socket.socket() as s:  # a foreign listener inside the block we would get
        s.bind(("127.0.0.1", natural + 3))
        s.listen()
        lease = reg.grant("probe", "/p", me)
    assert lease.base != natural
    assert not (lease.base <= natural + 3 < lease.base + BLOCK_SIZE)


def test_prefer_reuses_a_dead_stacks_block_and_avoid_skips_one() -> None:
    reg = LeaseRegistry()
    me = ProcRef.of(os.getpid())
    assert me is not None
    natural = reg.grant("k", "/k", me).base
    reg.release("k")
    other = reg.grant("other", "/o", me).base
    reg.release("other")
    assert reg.grant("k", "/k", me, prefer=other).base == other  # the block the dead stack held
    reg.release("k")
    moved = reg.grant("k", "/k", me, avoid=frozenset({natural})).base
    assert moved != natural
