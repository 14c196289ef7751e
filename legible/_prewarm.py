"""A collector process started before its plan exists: ``python -m legible._prewarm legible.collector``.

The collector is the slowest service to start (its imports: pyarrow, duckdb, grpc, about 0.5 s of CPU), and
it could only be spawned once ``legible up`` had read the config, leased ports and built the plan. The
supervisor started early by ``legible up`` (see :mod:`legible.supervisor`; issue 12) starts this process
at once, in the collector's own session and with the stack's ``LEGIBLE_STACK``/``LEGIBLE_REGISTRY`` already
in its environment (``legible gc`` finds it by them from the first instant). It imports the collector's
modules, then waits for one JSON line on stdin, the start the plan describes::

    {"argv": ["python", "-m", "legible.collector", "--http-port=...", ...], "env": {...}, "cwd": "...",
     "log": ".../logs/collector.log"}

and becomes that collector: its working directory, environment, stdout and stderr (the log, appended to)
are set, and ``legible.collector.__main__.main`` runs with the arguments after ``-m legible.collector``.
At end of file (the stack did not start) it exits 0 having done nothing. The supervisor gives it
``PR_SET_PDEATHSIG`` like any service, so it never outlives the supervisor.
"""

from __future__ import annotations

import json
import os
import sys

#: The argv prefix of a collector this process can become (``sys.executable -m legible.collector``).
MODULE = "legible.collector"


def main() -> int:
    """Import the collector, wait for its start on stdin, run it; return its exit code (0 at end of file)."""
    if sys.argv[1:] != [MODULE]:
        print(f"usage: python -m legible._prewarm {MODULE}", file=sys.stderr)
        return 2
    import legible.collector  # noqa: F401 - the heavy part (its server, store writer, receivers), imported early
    import legible.collector.__main__ as collector_main

    line = sys.stdin.readline()
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
    argv = list(spec["argv"])
    sys.argv = [MODULE, *argv[3:]]
    return collector_main.main(argv[3:])


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # as `python -m legible.collector` does
