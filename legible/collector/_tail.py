"""Follow the supervisor's ``<logs-dir>/<service>.log`` files and turn new lines into log rows.

Every file ending in ``.log`` except ``collector.log`` is followed; the service is the file's stem; new
files are picked up on the next directory scan. A changed inode (the file was replaced) restarts at 0
after draining the old handle; a size below our offset (truncation) restarts at 0. The offset persisted
with each batch (``tail_offsets``) is the end of the last complete record, committed in the same
transaction as the rows, so a restart neither loses nor repeats lines. Lines are bounded: a line longer
than :data:`~legible.collector._lines.MAX_LINE` is cut with a marker while the rest is skipped without
buffering it. A pass over a file reads up to :data:`PASS_CHUNKS` chunks (fewer once it has
:data:`PASS_ROWS` rows) and hands their rows to the sink in one call, so a fast writer's lines are stored
in large batches.

Waking (issue 12): while a pass reads data, the next one follows at once; otherwise the thread sleeps on an
inotify watch of the directory (:mod:`inotify_simple`, inotify(7): ``IN_MODIFY``, ``IN_CREATE``,
``IN_MOVED_TO``, ``IN_ATTRIB`` of an entry) until a change, or until a pending record's :data:`IDLE_S` is up,
so a line appended after a long quiet period is read at once, and an idle stack costs no wake-ups; it still polls every
:data:`SLOW_POLL_S` seconds as a net for what inotify cannot see (a network filesystem written from another
machine, an event queue overflow). Rotation (a new file renamed or created in
place: ``IN_MOVED_TO``/``IN_CREATE``) and truncation (``IN_MODIFY``) wake it too. Without inotify (no module,
no watches left: ``fs.inotify.max_user_watches``/``max_user_instances``), it polls every :data:`POLL_S` seconds
as before. :meth:`Tailer.stop` wakes the thread through a pipe, so the last lines are read before it returns.
"""

from __future__ import annotations

import os
import select
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from legible.collector._lines import MAX_LINE, LogRow, Record, RecordAssembler, log_row

#: Read this many bytes at a time.
CHUNK = 1 << 20
#: A pass reads up to this many chunks of a file, stopping early once it has :data:`PASS_ROWS` rows or the
#: file has no more data, and hands the rows to the writer together: when lines arrive faster than the
#: writer commits, they make one flush. Batches of about 22,000 rows instead of one chunk's 11,000 (90-byte
#: lines) cost about 7 % less collector CPU per line: each flush pays a fixed cost (DuckDB plans the insert
#: and its six regexes, about 5 ms) and per-row costs that fall up to about 20,000 rows a batch (40,000
#: measured no better). Memory: a pass holds at most two chunks of text and no more rows than
#: ``max(PASS_ROWS, one chunk's)``, about 20 MB more at the peak of a burst than one chunk (issue 12).
PASS_CHUNKS = 2
PASS_ROWS = 20_000
#: A pending record or a line without newline is complete after this many seconds without new data.
IDLE_S = 0.3
SCAN_EVERY_S = 0.5
#: Seconds between passes while data arrives or a record waits out :data:`IDLE_S` (and always without inotify).
POLL_S = 0.05
#: Seconds between passes of an idle tailer woken by inotify (the net for changes inotify does not report).
SLOW_POLL_S = 1.0
IGNORED = {"collector.log"}


def record_row(service: str, rec: Record) -> LogRow:
    """Return the ``logs`` row (without ``seq``/``template``) of one file record, source ``stdout``."""
    return log_row(service, rec.parsed, rec.observed_ns)


@dataclass
class _File:
    path: Path
    service: str
    fh: Any
    inode: int
    pos: int  # offset of the next byte to read
    asm: RecordAssembler
    buf: bytes = b""
    skipped: int = 0  # bytes dropped from the current over-long line
    last_data: float = 0.0
    settled: bool = True  # no data since the last idle completion (nothing waits out IDLE_S)


class Tailer:
    """Follow the log files of one directory and hand records to ``sink``.

    Args:
        logs_dir: the supervisor's logs directory.
        offsets: ``{path: (inode, offset)}`` as persisted in ``tail_offsets``.
        sink: ``sink(rows, offsets)`` stores rows together with the new ``{path: (inode, offset)}``; it
            may block (back-pressure) and returns when the rows are accepted.
        clock: returns epoch nanoseconds (a seam for tests).

    """

    def __init__(
        self,
        logs_dir: Path,
        offsets: dict[str, tuple[int, int]],
        sink: Callable[[list[LogRow], dict[str, tuple[int, int]]], None],
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.logs_dir = logs_dir
        self._saved = dict(offsets)
        self._sink = sink
        self._clock = clock
        self._files: dict[str, _File] = {}
        self._last_scan = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake: tuple[int, int] | None = None  # (read, write) pipe: stop() writes a byte to end a wait
        self._inotify: Any = None  # inotify_simple.INotify watching logs_dir, once it exists
        self._no_inotify = False  # inotify is unavailable: poll every POLL_S
        #: Passes made so far (a seam for tests: an idle tailer makes about one a SLOW_POLL_S).
        self.passes = 0

    def start(self) -> None:
        """Run :meth:`run` in a daemon thread."""
        self._wake = os.pipe()
        self._thread = threading.Thread(target=self.run, name="tailer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the thread; pending records are handed to the sink before it returns."""
        self._stop.set()
        if self._wake is not None:
            try:
                os.write(self._wake[1], b"x")
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        """Poll until stopped: scan the directory, read what is new; when idle, sleep until inotify says so."""
        if self._wake is None:
            self._wake = os.pipe()
        try:
            while not self._stop.is_set():
                try:
                    busy = self.poll()
                except Exception as e:  # never let one bad file stop tailing
                    print(f"collector: tail error: {type(e).__name__}: {e}", file=sys.stderr)
                    busy = False
                if not busy:
                    self._wait()
            try:
                self.poll(final=True)
            except Exception as e:
                print(f"collector: tail error at stop: {type(e).__name__}: {e}", file=sys.stderr)
        finally:
            for f in self._files.values():
                f.fh.close()
            if self._inotify is not None:
                self._inotify.close()
                self._inotify = None

    def _watch(self) -> bool:
        """Set up the inotify watch of ``logs_dir`` if it is not yet; True when it is in place."""
        if self._inotify is not None:
            return True
        if self._no_inotify:
            return False
        try:
            from inotify_simple import INotify, flags

            ino = INotify()
        except (ImportError, OSError):  # no inotify on this system, or no instance left
            self._no_inotify = True
            return False
        try:
            # inotify(7) events of an entry that wake an idle tailer: data written (truncation by truncate(1)
            # reports IN_MODIFY too), a file created or renamed in (rotation), attributes changed (a touched
            # replacement)
            ino.add_watch(str(self.logs_dir), flags.MODIFY | flags.ATTRIB | flags.MOVED_TO | flags.CREATE)
        except FileNotFoundError:  # not created yet: poll until it is
            ino.close()
            return False
        except OSError:  # no watch left (ENOSPC) or another refusal: poll as before
            ino.close()
            self._no_inotify = True
            return False
        self._inotify = ino
        self._last_scan = 0.0  # files created before the watch: scan now
        return True

    def _idle_due(self) -> float:
        """Seconds until a file's pending record or partial line is complete (:data:`IDLE_S` without data), else inf."""
        mono = time.monotonic()
        left = [f.last_data + IDLE_S - mono for f in self._files.values() if not f.settled]
        return max(min(left), 0.0) + 0.005 if left else float("inf")

    def _wait(self) -> None:
        """Sleep until the next pass: until inotify reports a change (or a record's idle time is up), else POLL_S."""
        assert self._wake is not None
        fds = [self._wake[0]]
        timeout = POLL_S
        if self._watch():
            fds.append(self._inotify.fileno())
            timeout = min(SLOW_POLL_S, self._idle_due())
        try:
            ready, _, _ = select.select(fds, [], [], timeout)
        except InterruptedError:
            return
        if self._inotify is not None and self._inotify.fileno() in ready:
            from inotify_simple import flags  # imported by _watch already

            try:
                events = self._inotify.read(timeout=0)
            except OSError:
                events = []
            for ev in events:
                if ev.mask & (flags.Q_OVERFLOW | flags.CREATE | flags.MOVED_TO):
                    self._last_scan = 0.0  # a new or replaced file (or events lost): scan in this pass
                if ev.mask & flags.IGNORED:  # the directory itself went away: watch it again once it is back
                    self._inotify.close()
                    self._inotify = None
                    break

    def _scan(self) -> None:
        try:
            entries = list(os.scandir(self.logs_dir))
        except FileNotFoundError:
            return
        for e in entries:
            if not e.name.endswith(".log") or e.name in IGNORED or not e.is_file():
                continue
            key = str(Path(e.path))
            if key in self._files:
                continue
            try:
                fh = open(e.path, "rb")  # noqa: SIM115 - kept open while following
                st = os.fstat(fh.fileno())
            except OSError:
                continue
            pos = 0
            saved = self._saved.get(key)
            if saved and saved[0] == st.st_ino and saved[1] <= st.st_size:
                pos = saved[1]
            fh.seek(pos)
            self._files[key] = _File(Path(e.path), e.name[:-4], fh, st.st_ino, pos, RecordAssembler(pos))

    def poll(self, final: bool = False) -> bool:
        """Read each file (up to :data:`PASS_CHUNKS` chunks); return True when anything was read (call again soon)."""
        self.passes += 1
        now = time.monotonic()
        if now - self._last_scan >= SCAN_EVERY_S or final:
            self._last_scan = now
            self._scan()
        busy = False
        for key, f in list(self._files.items()):
            rows: list[LogRow] = []
            got = self._read(f, rows, final)
            busy = busy or got
            for _ in range(PASS_CHUNKS - 1):
                if not got or len(rows) >= PASS_ROWS:
                    break
                got = self._read(f, rows, final)
            mark = (f.inode, f.asm.safe_offset)
            if rows or self._saved.get(key) != mark:
                self._sink(rows, {key: mark})
                self._saved[key] = mark
        return busy

    def _reopen_if_needed(self, f: _File, rows: list[LogRow]) -> None:
        try:
            st = os.stat(f.path)
        except FileNotFoundError:
            return
        if st.st_ino != f.inode:  # replaced (rotation): drain the old handle, then follow the new file
            self._consume(f, f.fh.read(), rows, self._clock())
            for rec in f.asm.flush():
                rows.append(record_row(f.service, rec))
            f.fh.close()
            f.fh = open(f.path, "rb")  # noqa: SIM115
            f.inode = os.fstat(f.fh.fileno()).st_ino
            f.pos, f.buf, f.skipped = 0, b"", 0
            f.asm = RecordAssembler(0)
        elif st.st_size < f.pos:  # truncated in place
            for rec in f.asm.flush():
                rows.append(record_row(f.service, rec))
            f.fh.seek(0)
            f.pos, f.buf, f.skipped = 0, b"", 0
            f.asm = RecordAssembler(0)

    def _read(self, f: _File, rows: list[LogRow], final: bool) -> bool:
        self._reopen_if_needed(f, rows)
        data = f.fh.read(CHUNK)
        now_ns = self._clock()
        mono = time.monotonic()
        if data:
            self._consume(f, data, rows, now_ns)
            f.last_data = time.monotonic()  # idle counts from when the data was handled, not read
            f.settled = False
        elif final or mono - f.last_data >= IDLE_S:
            f.settled = True
            if f.buf or f.skipped:  # a line without its newline: complete after the idle time
                end = f.pos
                self._line(f, f.buf, end, rows, now_ns)
                f.buf = b""
            for rec in f.asm.flush():
                rows.append(record_row(f.service, rec))
        return bool(data)

    def _consume(self, f: _File, data: bytes, rows: list[LogRow], now_ns: int) -> None:
        f.pos += len(data)
        combined = f.buf + data if f.buf else data
        f.buf = b""
        # file offset of combined[0]; skipped bytes of an over-long line sit between buf and data
        off = f.pos - len(combined) - f.skipped
        cut = combined.rfind(b"\n") + 1
        if cut and not f.skipped and combined.isascii():
            # The common case: whole ASCII lines. One decode for the chunk (an ASCII character is one byte,
            # so offsets are string lengths), and no per-line call unless a line needs the slow path.
            feed, service = f.asm.feed, f.service
            text = combined[: cut - 1].decode("ascii")
            cr = "\r" in text
            whole = text.split("\n")
            if not cr and max(map(len, whole)) <= MAX_LINE:  # no line to cut or strip: one call for them all
                f.asm.feed_rows(whole, off, now_ns, service, rows)
                whole = []
            for line in whole:
                off += len(line) + 1
                if len(line) > MAX_LINE or (cr and line.endswith("\r")):
                    self._line(f, line.encode("ascii"), off, rows, now_ns)
                    continue
                for rec in feed(line, off, now_ns):
                    rows.append(record_row(service, rec))
            lines = [combined[cut:]]
        else:
            lines = combined.split(b"\n")
        tail = lines.pop()
        for raw in lines:
            off += len(raw) + 1 + f.skipped
            self._line(f, raw, off, rows, now_ns)
        if len(tail) > MAX_LINE + 1:  # bound memory: keep a prefix of an endless line, count the rest
            f.skipped += len(tail) - (MAX_LINE + 1)
            tail = tail[: MAX_LINE + 1]
        f.buf = tail

    def _line(self, f: _File, raw: bytes, end: int, rows: list[LogRow], now_ns: int) -> None:
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        extra = f.skipped
        f.skipped = 0
        if len(raw) > MAX_LINE or extra:
            total = len(raw) + extra
            text = raw[:MAX_LINE].decode("utf-8", "replace") + f"…[cut {total - min(len(raw), MAX_LINE)} bytes]"
        else:
            text = raw.decode("utf-8", "replace")
        for rec in f.asm.feed(text, end, now_ns):
            rows.append(record_row(f.service, rec))
