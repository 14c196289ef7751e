"""The collector: one process per stack that receives, parses and stores the app's signals.

Run it as ``python -m legible.collector --http-port P --grpc-port G --db PATH --logs-dir DIR
--vm-url http://127.0.0.1:V --worktree KEY --token-file PATH [--max-db-mb 512] [--memory-limit 128MB]
[--query-timeout 30]`` (see :mod:`legible.collector.__main__`);
the supervisor does, from the plan of :class:`legible.services.collector.CollectorService`.

* OTLP/HTTP and OTLP/gRPC receivers for traces, logs and metrics (:mod:`legible.collector._server`,
  decoding in :mod:`legible.collector._otlp`).
* Tailing of ``logs/<service>.log`` with JSON/logfmt/plain-text parsing and multi-line records
  (:mod:`legible.collector._tail`, :mod:`legible.collector._lines`).
* Batched writes of logs and spans to the worktree's DuckDB store (:mod:`legible.collector._writer`,
  schema in :mod:`legible.store`), and ``POST /query`` (bearer token) so others can read it while this
  process holds it; ``GET /status`` for what it received and refused, ``GET /health`` 503 when it cannot
  write.
* Derived metrics pushed to VictoriaMetrics (:mod:`legible.collector._metrics`).
"""

from legible.collector._server import MAX_BODY, Collector, serve

__all__ = ["MAX_BODY", "Collector", "serve"]
