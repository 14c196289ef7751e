"""Forwarding spans and logs to a shared OTLP/HTTP endpoint through a bounded on-disk queue.

The collector hands every accepted export request (and every batch of tailed stdout/stderr lines, turned
into OTLP log records) to :meth:`Forwarder.offer`, which adds the forwarding labels to each resource
(``worktree``, ``branch``, ``commit``, ``deploy``, ``host``), serialises the ``Export*ServiceRequest`` of the
``opentelemetry-proto`` package, gzips it and writes it as one file in the queue directory
(``.legible/data/forward/<seq>-<signal>-<items>.pb``, mode 0600, written then renamed). A sender thread
posts the oldest file to ``<url>/v1/<signal>`` (OTLP/HTTP, ``application/x-protobuf``, ``Content-Encoding: gzip``,
https://opentelemetry.io/docs/specs/otlp/#otlphttp) and deletes it on a 2xx answer. On a connection error,
a timeout, 429, 502, 503 or 504 it waits (``Retry-After`` when given, else exponential backoff up to
:data:`MAX_BACKOFF_S`) and tries the same file again, so the upstream sees the data in order and nothing is
lost while it is down. Another 4xx means the upstream will never take that request: the file is removed
and its items are counted as ``rejected``.

The queue is bounded by bytes (``max_bytes``): an offer that would pass the cap is not written and its items
are counted as ``dropped``. Offers never wait for the network, so a slow or absent upstream never slows
the collector; files left by a previous run are sent first (the sequence number continues after them).
"""

from __future__ import annotations

import gzip
import os
import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs

#: Longest wait between two attempts at an unreachable upstream, in seconds.
MAX_BACKOFF_S: Final = 5.0
#: Seconds one POST may take before it counts as failed.
TIMEOUT_S: Final = 5.0
#: HTTP statuses the OTLP specification calls retryable.
RETRYABLE: Final = frozenset({429, 502, 503, 504})
#: gzip level of queued requests (they are stored and sent compressed, ``Content-Encoding: gzip``).
GZIP_LEVEL: Final = 6
_NAME = re.compile(r"^(\d{12})-(traces|logs)-(\d+)\.pb$")
_RESOURCE_FIELD = {"traces": "resource_spans", "logs": "resource_logs"}


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def label_resources(signal: str, msg: Message, labels: Mapping[str, str]) -> None:
    """Set ``labels`` as string attributes on every resource of an export request, in place.

    Args:
        signal: ``traces`` or ``logs``.
        msg: an ``ExportTraceServiceRequest`` or ``ExportLogsServiceRequest``.
        labels: attribute key to value; an attribute of the same key is replaced.

    """
    for rs in getattr(msg, _RESOURCE_FIELD[signal]):
        attrs = rs.resource.attributes
        keep = [kv for kv in attrs if kv.key not in labels]
        del attrs[:]
        attrs.extend(keep)
        attrs.extend(_kv(k, v) for k, v in labels.items())


def _id_bytes(text: Any, size: int) -> bytes:
    """A hex trace or span id as bytes; ``b""`` when absent or not ``size`` bytes of hex."""
    try:
        raw = bytes.fromhex(text) if text else b""
    except (TypeError, ValueError):
        return b""
    return raw if len(raw) == size else b""


def tail_request(rows: list[tuple[Any, ...]]) -> ExportLogsServiceRequest:
    """Turn tailed ``logs`` rows (store column order, see ``docs/store.md``) into an OTLP logs request.

    One ``ResourceLogs`` per service (``service.name``), scope ``legible.tail``; ``attributes`` holds the
    row's ``source`` (``stdout``/``stderr``) as ``log.iostream`` (OpenTelemetry semantic conventions).
    """
    by_service: dict[str, ResourceLogs] = {}
    for r in rows:
        time_ns, observed_ns, service, level, sev_num, sev_text, body = r[:7]
        trace_id, span_id, source = r[10], r[11], r[12]
        rl = by_service.get(service)
        if rl is None:
            rl = ResourceLogs()
            rl.resource.attributes.append(_kv("service.name", service))
            rl.scope_logs.append(ScopeLogs())
            rl.scope_logs[0].scope.name = "legible.tail"
            by_service[service] = rl
        rec = LogRecord(
            time_unix_nano=int(time_ns or 0),
            observed_time_unix_nano=int(observed_ns or 0),
            severity_number=int(sev_num or 0),  # type: ignore[arg-type]
            severity_text=sev_text or (str(level).upper() if level else ""),
            body=AnyValue(string_value=body or ""),
        )
        if source:
            rec.attributes.append(_kv("log.iostream", str(source)))
        rec.trace_id = _id_bytes(trace_id, 16)
        rec.span_id = _id_bytes(span_id, 8)
        rl.scope_logs[0].log_records.append(rec)
    return ExportLogsServiceRequest(resource_logs=list(by_service.values()))


class Forwarder:
    """The on-disk queue and its sender thread (see the module docstring).

    Args:
        url: the OTLP/HTTP base URL (``http://host:4318``); signals go to ``<url>/v1/<signal>``.
        queue_dir: the queue directory (created 0700).
        labels: resource attributes added to everything forwarded.
        headers: extra HTTP headers of every POST.
        max_bytes: queue cap in bytes.
        timeout: seconds per POST.
        state_dir: the worktree's ``.legible``: when given, the ``deploy`` and ``commit`` labels follow the
            newest deploy of ``deploys.jsonl`` (re-read when the file changes), so a ``legible restart``
            relabels what is forwarded after it.

    """

    def __init__(
        self,
        url: str,
        queue_dir: Path,
        labels: Mapping[str, str],
        headers: Mapping[str, str] | None = None,
        max_bytes: int = 512 * 1024 * 1024,
        timeout: float = TIMEOUT_S,
        state_dir: Path | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.dir = queue_dir
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.labels = dict(labels)
        self._state_dir = state_dir
        self._deploys_mtime = 0
        self.max_bytes = max_bytes
        self.timeout = timeout
        import requests  # here: a collector that forwards nothing never pays its import (~0.1 s of CPU, issue 12)

        self._session = requests.Session()
        self._session.trust_env = False  # no proxy or netrc from the environment: the URL is what was configured
        self._session.headers.update(
            {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip", **(headers or {})}
        )
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="forward", daemon=True)
        existing = sorted(p for p in self.dir.iterdir() if _NAME.match(p.name))
        self._seq = int(_NAME.match(existing[-1].name).group(1)) + 1 if existing else 0  # type: ignore[union-attr]
        self.queued_bytes = sum(p.stat().st_size for p in existing)
        self.queued_files = len(existing)
        #: Items sent, dropped past the cap, rejected by the upstream (4xx), by signal.
        self.sent: dict[str, int] = {"traces": 0, "logs": 0}
        self.dropped: dict[str, int] = {"traces": 0, "logs": 0}
        self.rejected: dict[str, int] = {"traces": 0, "logs": 0}
        self.sent_bytes = 0
        self.last_success_ns: int | None = None
        self.last_error = ""

    def _follow_deploys(self) -> None:
        """Refresh the ``deploy`` and ``commit`` labels when ``deploys.jsonl`` changed (one stat per offer)."""
        if self._state_dir is None:
            return
        from legible.deploys import deploys_path, load

        try:
            mtime = deploys_path(self._state_dir).stat().st_mtime_ns
        except OSError:
            return
        if mtime == self._deploys_mtime:
            return
        self._deploys_mtime = mtime
        found = load(self._state_dir)
        if found:
            self.labels["deploy"] = str(found[-1]["number"])
            if found[-1].get("commit"):
                self.labels["commit"] = str(found[-1]["commit"])

    def start(self) -> None:
        """Start the sender thread."""
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the sender; what is still queued stays on disk for the next start."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def offer(self, signal: str, msg: Message, items: int) -> bool:
        """Label ``msg`` and queue it on disk; never waits for the network.

        Args:
            signal: ``traces`` or ``logs``.
            msg: the export request (changed in place: the labels are added to its resources).
            items: spans or log records in it (for the counts).

        Returns:
            True if queued; False if the cap was reached (the items are counted in :attr:`dropped`).

        Raises:
            OSError: the queue directory cannot be written.

        """
        if items <= 0:
            return True
        self._follow_deploys()
        label_resources(signal, msg, self.labels)
        data = gzip.compress(msg.SerializeToString(), compresslevel=GZIP_LEVEL, mtime=0)
        with self._lock:
            if self.queued_bytes + len(data) > self.max_bytes:
                self.dropped[signal] += items
                return False
            name = f"{self._seq:012d}-{signal}-{items}.pb"
            self._seq += 1
            tmp = self.dir / f".{name}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, self.dir / name)
            self.queued_bytes += len(data)
            self.queued_files += 1
        self._wake.set()
        return True

    def status(self) -> dict[str, Any]:
        """``{"url", "queue_files", "queue_bytes", "max_bytes", "sent", "sent_bytes", "dropped", "rejected",
        "last_success_ns", "last_error"}`` (counts by signal since this process started).
        """  # noqa: D205, D415
        with self._lock:
            return {
                "url": self.url,
                "queue_files": self.queued_files,
                "queue_bytes": self.queued_bytes,
                "max_bytes": self.max_bytes,
                "sent": dict(self.sent),
                "sent_bytes": self.sent_bytes,
                "dropped": dict(self.dropped),
                "rejected": dict(self.rejected),
                "last_success_ns": self.last_success_ns,
                "last_error": self.last_error,
            }

    def _oldest(self) -> Path | None:
        names = sorted(n for n in os.listdir(self.dir) if _NAME.match(n))
        return self.dir / names[0] if names else None

    def _forget(self, path: Path, size: int) -> None:
        path.unlink(missing_ok=True)
        with self._lock:
            self.queued_bytes -= size
            self.queued_files -= 1

    def _run(self) -> None:
        from requests import RequestException

        backoff = 0.0
        while not self._stop.is_set():
            if backoff:
                self._stop.wait(backoff)
            path = self._oldest()
            if path is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            m = _NAME.match(path.name)
            assert m is not None
            signal, items = m.group(2), int(m.group(3))
            try:
                data = path.read_bytes()
            except OSError as e:
                self.last_error = f"cannot read {path.name}: {e}"
                backoff = MAX_BACKOFF_S
                continue
            try:
                resp = self._session.post(f"{self.url}/v1/{signal}", data=data, timeout=self.timeout)
            except RequestException as e:
                self.last_error = f"{type(e).__name__}: {str(e)[:200]}"
                backoff = min(MAX_BACKOFF_S, max(0.1, backoff * 2))
                continue
            if 200 <= resp.status_code < 300:
                self._forget(path, len(data))
                with self._lock:
                    self.sent[signal] += items
                    self.sent_bytes += len(data)
                    self.last_success_ns = time.time_ns()
                    self.last_error = ""
                backoff = 0.0
            elif resp.status_code in RETRYABLE:
                self.last_error = f"HTTP {resp.status_code} from {self.url}"
                try:
                    backoff = min(MAX_BACKOFF_S, float(resp.headers.get("Retry-After", "")))
                except ValueError:
                    backoff = min(MAX_BACKOFF_S, max(0.1, backoff * 2))
            else:
                self._forget(path, len(data))
                with self._lock:
                    self.rejected[signal] += items
                    self.last_error = f"HTTP {resp.status_code} from {self.url}: {resp.text[:200]}"
                backoff = 0.0
