"""The supervisor's rules, driven by a fake clock, fake processes and a scripted probe (no real processes).

The end-to-end behaviour with real processes is in test_stack.py; here each rule is pinned down exactly.
"""

from __future__ import annotations

from legible.plan import StackPlan
from legible.services.base import Probe, ServicePlan
from legible.supervisor import BACKOFF_FIRST_S, Supervisor

FAKE_PID = 10**7  # above any pid_max, so a stray signal can never reach a real process


class FakeProc:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.code: int | None = None

    def poll(self) -> int | None:
        return self.code


def _svc(name: str, role: str, deps: list[str] | None = None, **kw) -> ServicePlan:
    return ServicePlan(
        name=name,
        role=role,
        argv=[name],
        cwd="/",
        env={},
        probe=Probe("tcp", "1"),
        ready_timeout=kw.pop("ready_timeout", 5.0),
        depends_on=deps or [],
        log="",
        **kw,
    )


class Harness:
    def __init__(self, services: list[ServicePlan]) -> None:
        self.now = 100.0
        self.ready: set[str] = set()
        self.procs: dict[str, FakeProc] = {}
        self.spawned: list[tuple[float, str]] = []
        plan = StackPlan("k", "/w", 20000, {}, services, {}, {}, "h")
        self.sup = Supervisor(
            plan, None, spawn=self.spawn, probe=lambda sp, off: sp.name in self.ready, clock=lambda: self.now
        )

    def spawn(self, sp: ServicePlan) -> FakeProc:
        p = FakeProc(FAKE_PID + len(self.spawned))
        self.procs[sp.name] = p
        self.spawned.append((self.now, sp.name))
        return p

    def tick(self, dt: float = 0.01) -> None:
        self.now += dt
        self.sup.step()

    def status(self, name: str) -> str:
        return self.sup.services[name].status


def test_services_start_in_dependency_order_and_record_time_to_ready_in_ms() -> None:
    h = Harness([_svc("victoria-metrics", "store"), _svc("app", "app", ["victoria-metrics"])])
    h.tick()
    assert [n for _, n in h.spawned] == ["victoria-metrics"]  # app waits for its dependency
    h.now += 0.05
    h.ready.add("victoria-metrics")
    h.tick()  # the dependency is ready: the app is spawned in the same tick
    assert [n for _, n in h.spawned] == ["victoria-metrics", "app"]
    app_spawned = h.spawned[-1][0]
    h.now += 0.4
    h.ready.add("app")
    h.tick()
    assert h.sup.status == "ready"
    assert round(h.sup.services["app"].first_ready_ms or 0) == round((h.now - app_spawned) * 1000) == 410
    assert round(h.sup.services["victoria-metrics"].ready_ms or 0) == 60


def test_a_service_that_exits_while_the_stack_starts_fails_the_start_without_restarts() -> None:
    h = Harness([_svc("app", "app")])
    h.tick()
    h.procs["app"].code = 3
    h.tick()
    assert h.sup.status == "failed"
    assert h.sup.error == "app exited with code 3 while the stack was starting"
    assert h.sup.error_service == "app"
    assert len(h.spawned) == 1


def test_not_ready_in_time_fails_the_start_naming_the_probe() -> None:
    h = Harness([_svc("app", "app", ready_timeout=2.0)])
    h.tick()
    h.tick(2.5)
    assert h.sup.status == "failed"
    assert h.sup.error == "app was not ready after 2 s (tcp probe on 127.0.0.1:1)"


def test_a_crash_after_ready_restarts_with_doubling_backoff_up_to_the_cap() -> None:
    h = Harness([_svc("app", "app", max_restarts=3)])
    h.ready.add("app")
    h.tick()
    h.tick()
    assert h.sup.status == "ready"
    delays = []
    for _ in range(3):
        h.procs["app"].code = -9
        h.tick()
        assert h.status("app") == "backoff" and h.sup.status == "degraded"
        crashed_at = h.now
        while h.status("app") == "backoff":
            h.tick(0.01)
        delays.append(round(h.spawned[-1][0] - crashed_at, 2))
        h.tick()
        assert h.status("app") == "ready" and h.sup.status == "ready"
    assert delays == [BACKOFF_FIRST_S, BACKOFF_FIRST_S * 2, BACKOFF_FIRST_S * 4]
    assert h.sup.services["app"].restarts == 3
    h.procs["app"].code = 1
    h.tick()
    assert h.status("app") == "failed"
    assert "gave up after 3 restarts" in h.sup.services["app"].error
    assert h.sup.status == "degraded"


def test_a_service_with_restart_false_fails_on_crash() -> None:
    h = Harness([_svc("app", "app", restart=False)])
    h.ready.add("app")
    h.tick()
    h.tick()
    h.procs["app"].code = 0
    h.tick()
    assert h.status("app") == "failed" and h.sup.services["app"].restarts == 0


def test_state_document_has_schema_and_per_service_fields() -> None:
    h = Harness([_svc("app", "app")])
    h.ready.add("app")
    h.tick()
    h.tick()
    state = h.sup.state()
    assert state["schema"] == "legible.state/v1"
    assert state["services"]["app"]["status"] == "ready"
    assert set(state["services"]["app"]) >= {"pid", "ready_ms", "first_ready_ms", "restarts", "exit_code", "log"}
