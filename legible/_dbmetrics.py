"""``legible_db_*`` metrics of the stack's database services, read at each scrape of the supervisor.

A ``prometheus_client`` custom collector (https://prometheus.github.io/client_python/collector/custom/)
registered on the supervisor's registry when the plan has ``postgres`` or ``redis`` services; VictoriaMetrics
scrapes it every ``scrape_interval``. Per service (label ``service``, and ``system`` = ``postgresql`` or
``redis``):

* ``legible_db_statements_total``: statements executed (Postgres: ``sum(calls)`` of ``pg_stat_statements``
  in the service's database; Redis: ``total_commands_processed`` of ``INFO stats``);
* ``legible_db_statement_seconds_total``: their total execution time, in seconds (Postgres only);
* ``legible_db_statement_max_seconds``: the slowest single execution since the statistics were reset, in
  seconds (Postgres only);
* ``legible_db_connections``: open client connections (``pg_stat_activity`` of the database; Redis
  ``connected_clients``).

One ``psql`` run (Postgres) or one ``INFO`` (Redis) per service and scrape, each bounded to about 1 s; a
server that does not answer contributes no samples that scrape (no made-up zeros).
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from legible._dbrun import PG_USER, find_pg_bindir, postmaster_ready

_PG_QUERY = (
    "SELECT coalesce(sum(calls), 0), coalesce(sum(total_exec_time), 0), coalesce(max(max_exec_time), 0),"
    " (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid())"
    " FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def pg_stats(port: int, database: str) -> tuple[float, float, float, float] | None:
    """``(calls, total_ms, max_ms, connections)`` of ``database`` on ``127.0.0.1:port``, or ``None``."""
    bindir = find_pg_bindir()
    if bindir is None:
        return None
    argv = [str(bindir / "psql"), "-X", "-tA", "-F", ",", "-h", "127.0.0.1", "-p", str(port), "-U", PG_USER]
    try:
        out = subprocess.run(
            [*argv, "-d", database, "-c", _PG_QUERY],
            capture_output=True,
            text=True,
            timeout=1.5,
            env={"PGCONNECT_TIMEOUT": "1", "PATH": "/usr/bin:/bin"},
            check=False,
        )
        calls, total, worst, conns = (float(x) for x in out.stdout.strip().split(","))
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    return calls, total, worst, conns


def redis_stats(port: int) -> dict[str, str] | None:
    """The ``INFO`` fields of the Redis server on ``127.0.0.1:port`` (``{"total_commands_processed": ...}``)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(b"INFO\r\n")
            data = b""
            while not data.endswith(b"\r\n\r\n") and len(data) < 1 << 20:  # RESP bulk string: $len\r\n...\r\n
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
                head, _, body = data.partition(b"\r\n")
                if head.startswith(b"$") and len(body) >= int(head[1:]) + 2:
                    break
    except (OSError, ValueError):
        return None
    fields = {}
    for line in data.decode("utf-8", "replace").splitlines()[1:]:
        k, sep, v = line.partition(":")
        if sep:
            fields[k] = v.strip()
    return fields or None


class DbCollector(Collector):
    """Collects ``legible_db_*`` (see the module docstring) for ``services``.

    Args:
        services: ``[(service, kind, port, probe target)]`` with kind ``postgres`` (the target is its data
            directory; its database is named after the service) or ``redis``.
    """

    def __init__(self, services: list[tuple[str, str, int, str]]) -> None:
        self.services = services

    def collect(self) -> Iterator[Any]:
        """Query each server once and yield the metric families."""
        labels = ["service", "system"]
        calls = CounterMetricFamily("legible_db_statements", "Statements (commands) executed.", labels=labels)
        secs = CounterMetricFamily(
            "legible_db_statement_seconds", "Total execution time of statements, in seconds.", labels=labels
        )
        worst = GaugeMetricFamily(
            "legible_db_statement_max_seconds", "Slowest single statement execution, in seconds.", labels=labels
        )
        conns = GaugeMetricFamily("legible_db_connections", "Open client connections.", labels=labels)
        for name, kind, port, target in self.services:
            if kind == "postgres":
                # not before it is ready: a connection during startup leaves a FATAL line in its log
                pg = pg_stats(port, name) if postmaster_ready(Path(target)) else None
                if pg is None:
                    continue
                lv = [name, "postgresql"]
                calls.add_metric(lv, pg[0])
                secs.add_metric(lv, pg[1] / 1000)
                worst.add_metric(lv, pg[2] / 1000)
                conns.add_metric(lv, pg[3])
            else:
                info = redis_stats(port)
                if info is None:
                    continue
                lv = [name, "redis"]
                try:
                    calls.add_metric(lv, float(info["total_commands_processed"]))
                    conns.add_metric(lv, float(info["connected_clients"]))
                except (KeyError, ValueError):
                    continue
        yield from (calls, secs, worst, conns)
