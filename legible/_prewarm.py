"""A collector process started before its plan exists: ``python -m legible._prewarm legible.collector``.

The collector is the slowest service to start (its imports: grpc, protobuf, DuckDB's engine; pyarrow and the
``duckdb`` package only once its writer needs them), and it could only be spawned once ``legible up`` had read
the config, leased ports and built the plan. The supervisor started early by ``legible up`` (see
:mod:`legible.supervisor`; issue 12) starts this process at once, in the collector's own session and with
the stack's ``LEGIBLE_STACK``/``LEGIBLE_REGISTRY`` already in its environment (``legible gc`` finds it by them
from the first instant). It imports the collector's modules, then waits for one JSON line on stdin, the start
the plan describes::

    {"argv": ["python", "-m", "legible.collector", "--http-port=...", ...], "env": {...}, "cwd": "...",
     "log": ".../logs/collector.log"}

and becomes that collector: its working directory, environment, stdout and stderr (the log, appended to)
are set, and ``legible.collector.__main__.main`` runs with the arguments after ``-m legible.collector``.
At end of file (the stack did not start) it exits 0 having done nothing. The supervisor gives it
``PR_SET_PDEATHSIG`` like any service, so it never outlives the supervisor.

The imports run in a thread of lower CPU priority (:func:`import_in_background`): while ``legible up``
reads the config and builds the plan, on a machine with few cores they would otherwise take CPU from ``up``
itself, whose plan every service waits for (issue 12). Once the start arrives the thread stops after the
module under way and the rest is imported at the usual priority. The collector itself (its main thread and every
thread it starts to serve) runs at the usual priority; only the idle helper threads native libraries start
while imported (numpy's OpenBLAS worker, pyarrow's jemalloc purger) keep the lower one.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Sequence

#: The argv prefix of a collector this process can become (``sys.executable -m legible.collector``).
MODULE = "legible.collector"
#: How much lower than its process's the CPU priority of a prewarm import thread is (a ``nice`` increment).
PREWARM_NICE = 5
#: The collector's heavy imports before ready (CPU ms each, measured alone: 10, 70, 38, 17), imported one by one
#: before the collector's own modules (17 ms), so the prewarm thread can stop between two of them once the
#: collector's start arrives; ``tests/test_stack_overhead.py`` checks that the collector still imports each.
#: pyarrow and the ``duckdb`` package (about 170 ms together) are not among them: ``_duckdb`` opens the store and
#: the writer imports them once its flushes are large (``legible.collector._writer.ARROW_ROWS``, issue 12).
COLLECTOR_IMPORTS = (
    "_duckdb",
    "grpc",
    "prometheus_client",
    "opentelemetry.proto.collector.trace.v1.trace_service_pb2",
)


def import_in_background(
    modules: Sequence[str], nice: int = PREWARM_NICE, stop: threading.Event | None = None
) -> threading.Thread:
    """Import ``modules`` in a started daemon thread whose CPU priority is ``nice`` steps lower; return it.

    On Linux a thread's nice value is its own (setpriority(2), "the nice value is a per-thread attribute"):
    only this thread yields the CPU to busier processes, the rest of the process keeps its priority, and no
    privilege is needed to lower it (nor, by the same rule, to raise it back: hence ``stop``). Elsewhere
    the imports run at the usual priority. A module that fails to import is left to fail where it is used:
    the thread ignores ``ImportError``, and importing the module again from another thread waits for (or
    repeats) this thread's import, as Python's import locks do.

    Args:
        modules: dotted module names, imported in this order.
        nice: the increment of the thread's nice value (capped at 19, the lowest priority).
        stop: once set, the thread imports no further module (the one under way is finished): the process
            needs them now and imports the rest itself at its own priority, instead of waiting behind this
            thread on a machine whose other processes leave it little CPU.

    """

    def run() -> None:
        if sys.platform == "linux":
            try:
                tid = threading.get_native_id()
                os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
            except OSError:
                pass
        import importlib

        for name in modules:
            if stop is not None and stop.is_set():
                return
            try:
                importlib.import_module(name)
            except ImportError:
                pass

    thread = threading.Thread(target=run, name="legible-prewarm", daemon=True)
    thread.start()
    return thread


def main() -> int:
    """Import the collector, wait for its start on stdin, run it; return its exit code (0 at end of file)."""
    if sys.argv[1:] != [MODULE]:
        print(f"usage: python -m legible._prewarm {MODULE}", file=sys.stderr)
        return 2
    # the heavy part (its server, store writer, receivers), imported while the plan is built
    started = threading.Event()
    import_in_background([*COLLECTOR_IMPORTS, MODULE, f"{MODULE}.__main__"], stop=started)
    line = sys.stdin.readline()
    started.set()  # what is left to import is imported below, at the collector's own priority
    if not line.strip():
        return 0
    spec = json.loads(line)
    os.chdir(spec["cwd"])
    os.environ.clear()
    os.environ.update(spec["env"])
    fd = os.open(spec["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    for target, source in ((0, null), (1, fd), (2, fd)):
        os.dup2(source, target)
    os.close(fd)
    os.close(null)
    import legible.collector.__main__ as collector_main  # done by the thread, or waits for it (a failure: logged)

    argv = list(spec["argv"])
    sys.argv = [MODULE, *argv[3:]]
    return collector_main.main(argv[3:])


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # as `python -m legible.collector` does
