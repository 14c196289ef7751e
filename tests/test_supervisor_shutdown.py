"""The supervisor's shutdown rules (``stop_all``, ``stop_services``) with a fake clock, a recording signal
sender and a scripted "group gone" check: no real processes, no real signals, no waiting.

A service's process group "goes" when the script says so: at a set time after SIGTERM, or never (it ignores
SIGTERM and only a SIGKILL ends it). The real-process shutdown is covered end to end in test_stack.py.
"""

from __future__ import annotations

import os
import signal

from legible.plan import StackPlan
from legible.services.base import Probe, ServicePlan
from legible.supervisor import ServiceRun, Supervisor, _die_with_parent, stop_services

FAKE_PID = 10**7  # above any pid_max: a signal that escaped the fake sender could not reach a real process


class FakeProc:
    def __init__(self, pid: int) -> None:
        self.pid = pid

    def poll(self) -> int | None:
        return None


def _svc(name: str, role: str, stop_timeout: float) -> ServicePlan:
    return ServicePlan(
        name=name,
        role=role,
        argv=[name],
        cwd="/",
        env={},
        probe=Probe("tcp", "1"),
        ready_timeout=5.0,
        depends_on=[],
        log="",
        stop_timeout=stop_timeout,
    )


class World:
    """A fake clock plus processes that exit ``exits_after`` seconds after SIGTERM (``None``: never)."""

    def __init__(self, exits_after: dict[str, float | None]) -> None:
        self.now = 1000.0
        self.exits_after = exits_after
        self.sent: list[tuple[float, str, str]] = []  # (time, service, SIGTERM|SIGKILL)
        self.termed_at: dict[str, float] = {}
        self.killed: set[str] = set()
        self.by_pid: dict[int, str] = {}

    def run(self, sp: ServicePlan) -> ServiceRun:
        pid = FAKE_PID + len(self.by_pid)
        self.by_pid[pid] = sp.name
        return ServiceRun(sp, status="ready", proc=FakeProc(pid))

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s

    def send(self, pgid: int, sig: int) -> bool:
        name = self.by_pid[pgid]
        self.sent.append((self.now, name, signal.Signals(sig).name))
        if sig == signal.SIGTERM:
            self.termed_at[name] = self.now
        else:
            self.killed.add(name)
        return True

    def gone(self, run: ServiceRun) -> bool:
        name = run.plan.name
        if name in self.killed:
            return True
        after = self.exits_after[name]
        return name in self.termed_at and after is not None and self.now - self.termed_at[name] >= after


def test_sigterm_goes_to_every_group_at_once_and_sigkill_only_to_those_alive_after_their_own_timeout() -> None:
    w = World({"polite": 0.2, "stubborn": None, "slow": None})
    runs = [w.run(_svc("polite", "app", 3.0)), w.run(_svc("stubborn", "app", 3.0)), w.run(_svc("slow", "app", 1.0))]

    killed = stop_services(runs, clock=w.clock, send=w.send, gone=w.gone, sleep=w.sleep)

    terms = [(t, n) for t, n, s in w.sent if s == "SIGTERM"]
    assert [n for _, n in terms] == ["polite", "stubborn", "slow"]
    assert {t for t, _ in terms} == {1000.0}  # all three before any wait
    kills = {n: t - 1000.0 for t, n, s in w.sent if s == "SIGKILL"}
    assert set(kills) == {"stubborn", "slow"}  # the polite one exited in time: never SIGKILLed
    assert 1.0 <= kills["slow"] < 1.1 and 3.0 <= kills["stubborn"] < 3.1  # each after its own stop_timeout
    assert killed == {"slow": 1.0, "stubborn": 3.0}
    assert runs[1].killed_after_s == 3.0 and runs[0].killed_after_s is None
    assert all(r.proc is None for r in runs)


def test_an_explicit_timeout_overrides_every_stop_timeout() -> None:
    w = World({"a": None})
    run = w.run(_svc("a", "app", 30.0))
    assert stop_services([run], 0.5, clock=w.clock, send=w.send, gone=w.gone, sleep=w.sleep) == {"a": 0.5}


def test_a_service_without_a_process_gets_no_signal() -> None:
    w = World({"a": 0.0})
    run = ServiceRun(_svc("a", "app", 3.0), status="failed")
    assert stop_services([run], clock=w.clock, send=w.send, gone=w.gone, sleep=w.sleep) == {}
    assert w.sent == []


def test_stop_all_goes_tier_by_tier_and_records_who_needed_sigkill_in_the_state() -> None:
    w = World({"victoria-metrics": 0.1, "collector": 0.3, "app": None, "chromium": 0.05, "worker": 0.0})
    plans = [
        _svc("victoria-metrics", "store", 5.0),
        _svc("collector", "collector", 3.0),
        _svc("app", "app", 3.0),
        _svc("worker", "app", 3.0),
        _svc("chromium", "browser", 0.5),
    ]
    sup = Supervisor(StackPlan("k", "/w", 20000, {}, plans, {}, {}, "h"), None, clock=w.clock)
    for sp in plans:
        sup.services[sp.name] = w.run(sp)

    killed = sup.stop_all(send=w.send, gone=w.gone, sleep=w.sleep)

    order = [(n, s) for _, n, s in w.sent]
    tier1 = {("app", "SIGTERM"), ("worker", "SIGTERM"), ("chromium", "SIGTERM"), ("app", "SIGKILL")}
    assert set(order[:4]) == tier1  # browser and app services first, together
    assert order[4:] == [("collector", "SIGTERM"), ("victoria-metrics", "SIGTERM")]
    # the collector is signalled only once the app (killed at its 3 s timeout) is gone, the store after it
    t_collector = next(t for t, n, _ in w.sent if n == "collector")
    t_store = next(t for t, n, _ in w.sent if n == "victoria-metrics")
    assert t_collector - 1000.0 >= 3.0 and t_store - t_collector >= 0.3
    assert killed == sup.killed == {"app": 3.0}
    state = sup.state()["services"]
    assert state["app"]["killed_after_s"] == 3.0 and state["collector"]["killed_after_s"] is None
    assert {s["status"] for s in state.values()} == {"stopped"}


def test_a_child_whose_spawner_is_gone_before_its_prctl_exits_before_exec() -> None:
    """``PR_SET_PDEATHSIG`` armed after the spawner died sends nothing (prctl(2)): the child must see it itself.

    A real fork: the spawner's ``preexec_fn`` runs in its child (parent = the spawner: armed, goes on) and in a
    grandchild, whose parent is not the spawner, as a child reparented after a ``kill -9`` of its spawner
    between ``fork`` and the ``prctl`` would be: it exits with status 1 at once.
    """
    arm = _die_with_parent()
    pid = os.fork()
    if pid == 0:
        try:
            arm()
            inner = os.fork()
            if inner == 0:
                arm()
                os._exit(0)
            os._exit(10 + os.waitstatus_to_exitcode(os.waitpid(inner, 0)[1]))
        except BaseException:
            os._exit(99)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 11
