"""How long `legible journey run` waits for the backend's spans: a real store file, a fake clock.

``backend_spans`` polls the store until the trace's spans are all in, or until it knows none will come; the
fake clock (advanced by its ``sleep``) shows which rule ended the wait without any real waiting.
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pytest

from legible.browser.journey import NO_SPANS_GRACE_S, SETTLE_S, SPAN_WAIT_S, backend_spans
from legible.store import migrate, store_path
from tests._query_fixtures import T_ERR, build_store, git_repo

UNKNOWN = "0123456789abcdef0123456789abcdef"


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """One realistic store (read only by these tests): its ``.legible`` and the ``now`` its times lead to."""
    root = git_repo(tmp_path_factory.mktemp("journey") / "wt")
    return root / ".legible", int(build_store(root)["now"])


def _wait(state: Path, trace: str, ended_ns: int) -> tuple[dict, float]:
    clock = FakeClock()
    doc = backend_spans(state, None, trace, ended_ns=ended_ns, clock=clock, sleep=clock.sleep)
    return doc, clock.now - 50.0


def test_spans_of_the_trace_end_the_wait_once_their_count_holds(store: tuple[Path, int]) -> None:
    state, now = store
    doc, waited = _wait(state, T_ERR, ended_ns=now)
    assert doc["spans"] >= 2 and doc["slowest"][0]["service"] == "app" and doc["none_because"] == ""
    assert SETTLE_S <= waited < SPAN_WAIT_S


def test_app_spans_from_after_the_journey_without_its_trace_end_the_wait_at_once(store: tuple[Path, int]) -> None:
    state, now = store
    doc, waited = _wait(state, UNKNOWN, ended_ns=now - 3600 * 10**9)
    assert doc["spans"] == 0 and doc["none_because"] == "the app's spans from after the journey hold none of its trace"
    assert waited < SETTLE_S


def test_an_app_that_sends_no_spans_ends_the_wait_after_a_short_grace(tmp_path: Path) -> None:
    state = git_repo(tmp_path / "wt") / ".legible"
    path = store_path(state)
    path.parent.mkdir(parents=True)
    con = duckdb.connect(str(path))
    migrate(con)
    con.close()
    doc, waited = _wait(state, UNKNOWN, ended_ns=time.time_ns())
    assert doc["spans"] == 0 and "the app has sent no spans" in doc["none_because"]
    assert NO_SPANS_GRACE_S <= waited < SPAN_WAIT_S


def test_an_instrumented_app_that_is_silent_since_the_journey_waits_up_to_the_deadline(store: tuple[Path, int]) -> None:
    state, now = store
    doc, waited = _wait(state, UNKNOWN, ended_ns=now + 3600 * 10**9)
    assert doc["spans"] == 0 and doc["none_because"] == f"no span of this trace arrived in {SPAN_WAIT_S:g} s"
    assert waited >= SPAN_WAIT_S
