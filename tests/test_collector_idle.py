"""Idle wake-ups of the collector (issue 12): the tailer sleeps on inotify, the writer until rows arrive.

Each test can fail: the tailer's safety-net poll is set a minute away, so only an inotify wake-up (or
stop()'s pipe) gets the line through before the deadline of ``wait_until``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from legible.collector import _tail
from legible.collector._tail import Tailer
from legible.collector._writer import FLUSH_EVERY_S, GATHER_S, OFFSETS_LAG_S, Writer
from tests.conftest import wait_until


def _bodies(batches: list[list[tuple[object, ...]]]) -> list[object]:
    return [row[6] for batch in list(batches) for row in batch]


@pytest.fixture
def slow_net(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only inotify can wake an idle tailer in time: its safety-net poll is a minute away."""
    monkeypatch.setattr(_tail, "SLOW_POLL_S", 60.0)


def _idle_tailer(tmp_path: Path, first: bytes) -> tuple[Path, list[list[tuple[object, ...]]], Tailer]:
    """A started Tailer on ``tmp_path/logs/app.log`` holding ``first`` (one line), once it read it and went idle.

    Returns ``(logs directory, the batches its sink got, the tailer)``; the caller stops the tailer.
    """
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_bytes(first)
    batches: list[list[tuple[object, ...]]] = []
    tailer = Tailer(logs, {}, lambda rows, marks: batches.append(rows))
    tailer.start()
    try:
        wait_until(lambda: _bodies(batches) == [first.decode().rstrip("\n")], what="the first line")
        wait_until(lambda: all(f.settled for f in tailer._files.values()), what="the record's idle time is up")
    except BaseException:
        tailer.stop(timeout=10)
        raise
    return logs, batches, tailer


def test_an_idle_tailer_sleeps_and_inotify_wakes_it_for_a_line_after_a_quiet_period(
    tmp_path: Path, slow_net: None
) -> None:
    """Issue 12: no poll every 50 ms while nothing is written, yet a line appended later is read at once."""
    logs, batches, tailer = _idle_tailer(tmp_path, b"first\n")
    log = logs / "app.log"
    try:
        before = tailer.passes
        time.sleep(1.0)  # the quiet period measured: a polling tailer makes 20 passes in it
        assert tailer.passes - before <= 2
        with log.open("ab") as fh:  # appended by another descriptor, as the supervisor's child writes
            fh.write(b"after a quiet period\n")
        wait_until(lambda: _bodies(batches) == ["first", "after a quiet period"], what="the late line")
    finally:
        tailer.stop(timeout=10)
    assert tailer._thread is not None and not tailer._thread.is_alive()


def test_an_idle_tailer_follows_rotation_and_truncation(tmp_path: Path, slow_net: None) -> None:
    """A file renamed away and created again, and one truncated in place, wake the idle tailer (no slow poll)."""
    logs, batches, tailer = _idle_tailer(tmp_path, b"one\n")
    log = logs / "app.log"
    try:
        log.rename(logs / "app.log.1")
        log.write_bytes(b"two after rotation\n")
        wait_until(lambda: _bodies(batches) == ["one", "two after rotation"], what="the rotated file's line")
        wait_until(lambda: all(f.settled for f in tailer._files.values()), what="idle again")
        with log.open("r+b") as fh:  # truncated in place, then a shorter line
            fh.truncate(0)
        with log.open("ab") as fh:
            fh.write(b"three\n")
        wait_until(lambda: _bodies(batches)[-1:] == ["three"], what="the line after truncation")
        wait_until(lambda: all(f.settled for f in tailer._files.values()), what="idle a third time")
        (logs / "worker.log").write_bytes(b"a new service\n")  # a new file: IN_CREATE makes the pass scan
        wait_until(lambda: "a new service" in _bodies(batches), what="the new file's line")
    finally:
        tailer.stop(timeout=10)
    assert _bodies(batches) == ["one", "two after rotation", "three", "a new service"]


def test_stop_wakes_an_idle_tailer_and_hands_over_a_line_without_newline(tmp_path: Path, slow_net: None) -> None:
    logs, batches, tailer = _idle_tailer(tmp_path, b"done\n")
    with (logs / "app.log").open("ab") as fh:
        fh.write(b"no newline yet")
    tailer.stop(timeout=10)
    assert tailer._thread is not None and not tailer._thread.is_alive()
    assert _bodies(batches) == ["done", "no newline yet"]


def test_writer_flush_deadline_holds_after_a_quiet_period_and_under_a_stream(tmp_path: Path) -> None:
    """The timer: GATHER_S after the first row of a trickle, never later than FLUSH_EVERY_S after a row."""
    w = Writer(tmp_path / "x.duckdb")
    try:
        assert w._due() is None  # nothing queued: the flush thread sleeps
        w._last_flush = time.monotonic() - 60  # a quiet minute
        assert w.add("logs", [], {"/a.log": (1, 10)})  # offsets without rows: they change no query's answer
        assert w._due() == pytest.approx(w._offsets_at + OFFSETS_LAG_S)  # type: ignore[operator]
        row = (1, 1, "app", "info", 9, "INFO", "late line", None, None, None, None, None, "stdout")
        assert w.add("logs", [row])
        due, first = w._due(), w._first_at
        assert due is not None and first is not None and due == pytest.approx(first + GATHER_S)
        w.flush()
        assert w._due() is None
        assert [tuple(r) for r in w.query("SELECT body FROM logs", None, 10, 5)[1]] == [("late line",)]
        assert w.add("logs", [row])  # a stream: the next batch waits for the period, within the deadline
        due, first = w._due(), w._first_at
        assert due is not None and first is not None
        assert first + GATHER_S <= due <= first + FLUSH_EVERY_S
    finally:
        w.close()
