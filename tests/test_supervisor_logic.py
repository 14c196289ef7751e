"""The supervisor's rules, driven by a fake clock, fake processes and a scripted probe (no real processes).

The end-to-end behaviour with real processes is in test_stack.py; here each rule is pinned down exactly.
"""

from __future__ import annotations

from legible.plan import StackPlan
from legible.services.base import Probe, ServicePlan
from legible.supervisor import BACKOFF_FIRST_S, LIVENESS_EVERY_S, LIVENESS_FAILURES, Supervisor

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
        probe=kw.pop("probe", Probe("tcp", "1")),
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
        self.sick: dict[str, str] = {}  # service -> what its liveness probe answers ("" or absent: alive)
        self.live_probes: list[tuple[float, str]] = []
        self.killed: list[tuple[str, float]] = []
        plan = StackPlan("k", "/w", 20000, {}, services, {}, {}, "h")
        self.sup = Supervisor(
            plan,
            None,
            spawn=self.spawn,
            probe=lambda sp, off: sp.name in self.ready,
            clock=lambda: self.now,
            live=self.live,
            kill=self.kill,
        )

    def live(self, sp: ServicePlan) -> str:
        self.live_probes.append((self.now, sp.name))
        return self.sick.get(sp.name, "")

    def kill(self, run, timeout: float) -> None:
        self.killed.append((run.plan.name, timeout))
        run.proc.code = -15
        run.proc = None

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


HTTP = Probe("http", "http://127.0.0.1:1/health")


def _ready(h: Harness) -> None:
    for name in h.sup.services:
        h.ready.add(name)
    h.tick()
    h.tick()
    assert h.sup.status == "ready"


def test_a_ready_http_service_failing_liveness_3_times_is_unhealthy_then_restarted_through_backoff() -> None:
    h = Harness([_svc("collector", "collector", probe=HTTP, stop_timeout=30.0), _svc("app", "app")])
    _ready(h)
    h.tick(LIVENESS_EVERY_S)
    assert [n for _, n in h.live_probes] == ["collector"]  # tcp-probed services are not re-probed
    h.sick["collector"] = "HTTP 503: unhealthy: store write failed: Out of Memory Error"
    for i in range(LIVENESS_FAILURES - 1):
        h.tick(LIVENESS_EVERY_S)
        assert h.status("collector") == "ready", i  # not yet: one bad answer is not enough
    h.tick(LIVENESS_EVERY_S)
    run = h.sup.services["collector"]
    assert run.status == "unhealthy" and h.sup.status == "degraded"
    assert run.error == "collector unhealthy: HTTP 503: unhealthy: store write failed: Out of Memory Error"
    assert h.sup.state()["services"]["collector"]["error"] == run.error
    assert h.killed == []  # state.json shows `unhealthy` for one tick before the restart
    h.tick()
    assert h.killed == [("collector", 30.0)]  # its own stop_timeout, so it can flush
    assert run.status == "backoff" and run.restarts == 1 and "Out of Memory" in run.error
    h.sick.clear()
    h.ready.discard("collector")
    while run.status == "backoff":
        h.tick(0.05)
    assert run.status == "starting" and [n for _, n in h.spawned].count("collector") == 2
    h.ready.add("collector")
    h.tick()
    assert run.status == "ready" and h.sup.status == "ready"


def test_liveness_failures_must_be_in_a_row() -> None:
    h = Harness([_svc("collector", "collector", probe=HTTP)])
    _ready(h)
    for _ in range(5):
        h.sick["collector"] = "no answer"
        for _ in range(LIVENESS_FAILURES - 1):
            h.tick(LIVENESS_EVERY_S)
        h.sick.clear()
        h.tick(LIVENESS_EVERY_S)
    assert h.status("collector") == "ready" and h.killed == []
    assert len(h.live_probes) == 5 * LIVENESS_FAILURES


def test_liveness_probes_are_spaced_by_the_interval() -> None:
    h = Harness([_svc("collector", "collector", probe=HTTP)])
    _ready(h)
    dt = 0.1
    ready_at = h.sup.services["collector"].ready_at
    while h.now < ready_at + 3 * LIVENESS_EVERY_S + dt / 2:
        h.tick(dt)
    times = [ready_at] + [t for t, _ in h.live_probes]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert len(gaps) == 3 and all(abs(g - LIVENESS_EVERY_S) < dt * 1.01 for g in gaps), gaps


# -- restarts and deploys (legible restart, watch) -------------------------------------------------------
class DeployHarness(Harness):
    """A harness whose supervisor records deploys and whose stop is observable."""

    def __init__(self, services: list[ServicePlan]) -> None:
        super().__init__(services)
        self.stopped: list[str] = []
        self.records: list[dict] = []
        self.sup.stop = self.stop
        self.sup.on_deploy = lambda rec: self.records.append(dict(rec))
        self.sup.wall = lambda: 1000.0 + self.now

    def stop(self, runs: list) -> None:
        for r in runs:
            self.stopped.append(r.plan.name)
            r.proc = None

    def boot(self) -> None:
        self.sup.begin_deploy(self.sup.user_services(), "up")
        self.ready |= set(self.sup.services)
        for _ in range(6):
            self.tick()
        assert self.sup.status == "ready"


def _stack(*extra: ServicePlan) -> DeployHarness:
    return DeployHarness(
        [
            _svc("victoria-metrics", "store"),
            _svc("app", "app", ["victoria-metrics"]),
            *extra,
            _svc("chromium", "browser"),
        ]
    )


def test_restart_stops_and_starts_only_the_user_services_as_a_new_deploy() -> None:
    h = _stack()
    h.boot()
    assert [r["number"] for r in h.records] == [1, 1] and h.records[-1]["status"] == "ready"
    h.ready.discard("app")
    rec = h.sup.restart(None)
    assert h.stopped == ["app"]  # never the stores or the browser
    assert rec["number"] == 2 and rec["trigger"] == "restart" and rec["services"] == ["app"]
    assert h.status("app") == "starting" and h.sup.services["app"].first_ready_ms is None
    assert [n for _, n in h.spawned].count("app") == 2 and [n for _, n in h.spawned].count("chromium") == 1
    h.now += 0.2
    h.ready.add("app")
    h.tick()
    assert h.sup.status == "ready"
    assert h.records[-1]["number"] == 2 and h.records[-1]["status"] == "ready"
    assert round(h.records[-1]["ready_ms"]) == round(h.sup.services["app"].first_ready_ms or 0) == 210
    assert h.sup.state()["deploy"]["number"] == 2


def test_restart_of_the_app_restarts_its_dependents_in_dependency_order() -> None:
    h = _stack(_svc("worker", "app", ["app"]), _svc("mailer", "app", ["worker"]), _svc("db", "app"))
    h.boot()
    h.ready -= {"app", "worker", "mailer"}
    rec = h.sup.restart(["app"])
    assert rec["services"] == ["app", "worker", "mailer"]  # db does not depend on app: it keeps running
    assert sorted(h.stopped) == ["app", "mailer", "worker"]
    assert h.status("worker") == "pending" and h.status("mailer") == "pending" and h.status("db") == "ready"
    h.ready.add("app")
    h.tick()
    assert h.status("app") == "ready" and h.status("worker") == "starting" and h.status("mailer") == "pending"
    h.ready |= {"worker", "mailer"}
    for _ in range(3):
        h.tick()
    assert h.records[-1]["status"] == "ready" and set(h.records[-1]["ready"]) == {"app", "worker", "mailer"}


def test_an_app_that_fails_on_restart_is_down_and_the_stack_runs_on() -> None:
    h = _stack(_svc("worker", "app", ["app"]))
    h.boot()
    h.ready -= {"app", "worker"}
    h.sup.restart(None)
    h.procs["app"].code = 1
    h.tick()
    assert (
        h.status("app") == "failed" and "exited with code 1 while deploy 2 was starting" in h.sup.services["app"].error
    )
    assert h.status("worker") == "failed" and h.sup.services["worker"].error == "not started: app did not start"
    assert h.sup.status == "degraded"  # not failed: the observability services keep running
    assert h.status("victoria-metrics") == "ready" and h.status("chromium") == "ready"
    assert h.records[-1]["status"] == "failed" and h.records[-1]["failed_service"] == "app"
    n = len(h.spawned)
    h.tick(5.0)
    assert len(h.spawned) == n  # no backoff loop on a deploy that did not start
    h.sup.restart(None)  # the fix: a new deploy
    h.ready |= {"app", "worker"}
    for _ in range(3):
        h.tick()
    assert h.sup.status == "ready" and h.records[-1]["number"] == 3 and h.records[-1]["status"] == "ready"


def test_a_restart_not_ready_in_time_fails_the_deploy_naming_the_probe() -> None:
    h = _stack()
    h.boot()
    h.ready.discard("app")
    h.sup.restart(None)
    h.tick(5.5)
    assert h.status("app") == "failed" and h.records[-1]["status"] == "failed"
    assert h.records[-1]["error"] == "app was not ready after 5 s (tcp probe on 127.0.0.1:1)"


def test_restart_refuses_observability_services_unknown_names_and_a_starting_stack() -> None:
    import pytest

    from legible.supervisor import RestartRefused

    h = _stack()
    with pytest.raises(RestartRefused, match="still starting"):
        h.sup.restart(None)
    h.boot()
    with pytest.raises(RestartRefused, match="part of the observability stack"):
        h.sup.restart(["chromium"])
    with pytest.raises(RestartRefused, match="no service 'nope'"):
        h.sup.restart(["nope"])
    h.ready.discard("app")
    h.sup.restart(None)
    with pytest.raises(RestartRefused, match="deploy 2 is still starting"):
        h.sup.restart(None)
    assert h.stopped == ["app"]


def test_a_late_git_snapshot_completes_the_deploy_record_and_a_stale_one_is_ignored() -> None:
    from legible.deploys import GitSnapshot

    h = _stack()
    asked: list[int] = []
    h.sup.snapshot = lambda number: asked.append(number)  # delivered later, as the real supervisor's thread does
    h.boot()
    assert asked == [1] and h.records[-1]["status"] == "ready" and h.records[-1]["commit"] is None
    h.sup.apply_snapshot(1, GitSnapshot("c0ffee", True, "abcd", {"app.py": "1234"}))
    assert h.records[-1]["number"] == 1 and h.records[-1]["status"] == "ready"
    assert (h.records[-1]["commit"], h.records[-1]["dirty"], h.records[-1]["files"]) == (
        "c0ffee",
        True,
        {"app.py": "1234"},
    )
    h.sup.restart(None)
    n = len(h.records)
    h.sup.apply_snapshot(1, GitSnapshot("old", False, "", {}))  # deploy 1 is over: not rewritten
    assert len(h.records) == n and h.sup.deploy is not None and h.sup.deploy["commit"] is None
