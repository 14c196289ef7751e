"""Built-in database service kinds: ``kind = "postgres"`` and ``kind = "redis"`` in ``[services.<name>]``.

Each worktree gets its own server, on a leased loopback port (an extra-service slot of the lease), with its
data under ``.legible/data/<name>/`` (kept by ``legible down``, removed by ``--purge``) and a Unix socket
in a private directory (:func:`socket_dir`). The app (and every other command service) depends on them
implicitly and gets the standard client variables (:func:`client_env`).

Postgres (Debian's ``postgresql`` package, 15): the first start runs ``initdb`` (trust authentication: only
this user can reach the loopback port's socket directory and the port is on ``127.0.0.1``), creates the
database named after the service and the ``pg_stat_statements`` extension in it, then ``postgres`` runs
with ``listen_addresses = '127.0.0.1'``, ``log_line_prefix = '%m [%p] '`` and
``log_min_duration_statement`` (slow statements are logged at level ``LOG`` with ``duration: ... ms``,
which the collector raises to ``warn``). Postgres refuses to run as root; as root it runs inside a new
user namespace without mappings (``unshare --user``), where its effective uid is the overflow uid
(``nobody``) while the kernel still checks files against the real uid, so the data directory stays owned
by and private to the invoking user and no other account gets any access.

Redis (Debian's ``redis-server``, 7): ``--bind 127.0.0.1``, the socket ``redis.sock`` (mode 0700) and its
RDB snapshot in the data directory.

Readiness is by protocol: ``pg_isready`` (PostgreSQL's own client, ``libpq``'s ``PQping``) and Redis
``PING`` answered by ``+PONG`` (RESP, https://redis.io/docs/latest/develop/reference/protocol-spec/).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from legible._dbrun import PG_USER, find_pg_bindir, pg_ready, redis_ready
from legible._errors import PrerequisiteMissing
from legible.services.base import Component, Probe, ServicePlan

if TYPE_CHECKING:
    from legible.config import ServiceConfig
    from legible.services.context import PlanContext

__all__ = [
    "DB_KINDS",
    "PG_USER",
    "Postgres",
    "Redis",
    "client_env",
    "find_pg_bindir",
    "pg_ready",
    "redis_ready",
    "socket_dir",
]

#: Statements slower than this (ms) are logged by Postgres (``log_min_duration_statement``).
SLOW_STATEMENT_MS = 50
PG_INSTALL = "legible doctor --install  (or: sudo apt-get install postgresql)"
REDIS_INSTALL = "legible doctor --install  (or: sudo apt-get install redis-server)"
#: Longest Unix socket path Linux accepts (``sun_path`` is 108 bytes with the terminating NUL).
_MAX_SOCK = 107
#: Longest socket file name placed in :func:`socket_dir`: Postgres' ``.s.PGSQL.<port>`` (5-digit port).
_SOCK_NAME = ".s.PGSQL.65535"


def socket_dir(state_dir: Path, key: str, service: str) -> Path:
    """Where a database service puts its Unix socket: ``.legible/run/<service>``, or a short ``/tmp`` dir.

    The fallback, ``/tmp/legible-<uid>-<hash of the worktree key>-<service>``, is used when the socket path
    would not fit ``sun_path`` (107 bytes); like the ``.legible`` one it is private (0700), created by the
    service at start and removed by ``legible down``.
    """
    p = Path(state_dir) / "run" / service
    if len(str(p)) + 1 + len(_SOCK_NAME) <= _MAX_SOCK:
        return p
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return Path("/tmp") / f"legible-{os.getuid()}-{digest}-{service}"  # noqa: S108 - see above


def remove_socket_dirs(state_dir: Path, key: str) -> None:
    """Remove the socket directories (:func:`socket_dir`) of the database services in ``plan.json``.

    Called by ``legible down``: the servers remove their own socket files when they stop; this removes the
    directories, and what a killed server left. Without a readable plan there is nothing to remove.
    """
    try:
        plan = json.loads((Path(state_dir) / "plan.json").read_text())
        names = [s["name"] for s in plan["services"] if s["probe"]["kind"] in ("postgres", "redis")]
    except (OSError, ValueError, KeyError, TypeError):
        return
    for name in names:
        shutil.rmtree(socket_dir(state_dir, key, name), ignore_errors=True)


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Postgres:
    """The ``postgres`` service kind (role ``store``: started before the app, stopped after it)."""

    name = "postgres"

    def detect(self) -> Component:
        """Find ``postgres`` and ask it for ``--version``."""
        bindir = find_pg_bindir()
        version = ""
        if bindir is not None:
            out = subprocess.run(
                [str(bindir / "postgres"), "--version"], capture_output=True, text=True, timeout=10, check=False
            )
            version = out.stdout.strip()
        return Component(self.name, bindir / "postgres" if bindir else None, version, PG_INSTALL, required=False)

    def plan_service(self, ctx: PlanContext, name: str, svc: ServiceConfig) -> ServicePlan:
        """Plan the Postgres server of ``[services.<name>]``.

        Raises:
            PrerequisiteMissing: PostgreSQL is not installed.

        """
        bindir = find_pg_bindir()
        if bindir is None:
            raise PrerequisiteMissing(f"{name}: postgres is not installed", hint=f"run: {PG_INSTALL}")
        args = ["--bindir", str(bindir), "--database", name, "--slow-ms", str(SLOW_STATEMENT_MS)]
        return _server_plan(
            ctx,
            name,
            svc,
            "postgres",
            args,
            probe=Probe("postgres", str(ctx.worktree.data_dir / name)),  # its data dir; the port is ``port``
            ready_timeout=max(svc.ready_timeout, 60.0),  # the first start runs initdb (seconds)
            stop_timeout=10.0,  # SIGTERM is Postgres' "smart" shutdown; fast enough with no clients left
        )


def _server_plan(
    ctx: PlanContext,
    name: str,
    svc: ServiceConfig,
    kind: str,
    args: list[str],
    *,
    probe: Probe,
    ready_timeout: float,
    stop_timeout: float,
) -> ServicePlan:
    """The plan of database server ``name`` (role ``store``) on its leased port (timeouts in seconds).

    It runs ``python -m legible._dbrun KIND`` with the data directory, socket directory and port every kind
    takes, then ``args``, the kind's own flags.
    """
    port = ctx.ports[name]
    argv = [
        sys.executable,
        "-m",
        "legible._dbrun",
        kind,
        *("--data", str(ctx.worktree.data_dir / name)),
        *("--socket-dir", str(socket_dir(ctx.worktree.state_dir, ctx.worktree.key, name))),
        *("--port", str(port)),
        *args,
    ]
    return ServicePlan(
        name=name,
        role="store",
        argv=argv,
        cwd=str(ctx.worktree.root),
        env={**ctx.env_for(name, port, svc.env), **svc.env},
        probe=probe,
        ready_timeout=ready_timeout,
        port=port,
        log=str(ctx.worktree.logs_dir / f"{name}.log"),
        restart=svc.restart,
        max_restarts=svc.max_restarts,
        stop_timeout=stop_timeout,
    )


class Redis:
    """The ``redis`` service kind (role ``store``)."""

    name = "redis"

    def detect(self) -> Component:
        """Find ``redis-server`` and ask it for ``--version``."""
        path = shutil.which("redis-server")
        version = ""
        if path:
            out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10, check=False)
            version = out.stdout.strip()
        return Component(self.name, Path(path) if path else None, version, REDIS_INSTALL, required=False)

    def plan_service(self, ctx: PlanContext, name: str, svc: ServiceConfig) -> ServicePlan:
        """Plan the Redis server of ``[services.<name>]``.

        Raises:
            PrerequisiteMissing: ``redis-server`` is not installed.

        """
        binary = shutil.which("redis-server")
        if binary is None:
            raise PrerequisiteMissing(f"{name}: redis-server is not installed", hint=f"run: {REDIS_INSTALL}")
        return _server_plan(
            ctx,
            name,
            svc,
            "redis",
            ["--binary", binary],
            probe=Probe("redis", str(ctx.ports[name])),
            ready_timeout=svc.ready_timeout,
            stop_timeout=5.0,
        )


#: The built-in kinds of ``[services.<name>] kind``.
DB_KINDS: dict[str, Postgres | Redis] = {"postgres": Postgres(), "redis": Redis()}


def client_env(ctx: PlanContext) -> dict[str, str]:
    """The client variables the app and other command services get for the stack's database services.

    For the first ``postgres`` service (by name): ``DATABASE_URL`` (``postgresql://postgres@127.0.0.1:<port>/
    <name>``, libpq's URI form, the name percent-encoded), ``PGHOST=127.0.0.1``, ``PGPORT``, ``PGUSER``,
    ``PGDATABASE``; for the first ``redis`` service: ``REDIS_URL`` (``redis://127.0.0.1:<port>/0``). Every
    database service also gets ``<NAME>_URL`` (``DB_URL`` for ``[services.db]``).
    """
    env: dict[str, str] = {}
    for name, svc in sorted(ctx.config.services.items()):
        port = ctx.ports.get(name)
        if svc.kind is None or port is None:
            continue
        key = name.upper().replace("-", "_") + "_URL"
        if svc.kind == "postgres":
            url = f"postgresql://{PG_USER}@127.0.0.1:{port}/{quote(name, safe='')}"
            env[key] = url
            if "DATABASE_URL" not in env:
                env.update(DATABASE_URL=url, PGHOST="127.0.0.1", PGPORT=str(port), PGUSER=PG_USER, PGDATABASE=name)
        else:
            url = f"redis://127.0.0.1:{port}/0"
            env[key] = url
            env.setdefault("REDIS_URL", url)
    return env


def reset_statements(database: str) -> list[str]:
    """SQL that empties ``database`` back to a fresh one (run connected to ``template1``).

    Identifiers are double-quoted (``"db"``, quotes doubled), never pasted bare.
    """
    ident = _quote_ident(database)
    return [f"DROP DATABASE IF EXISTS {ident} WITH (FORCE)", f"CREATE DATABASE {ident}"]


RESET_SCHEMA = "legible.reset/v1"


def reset(start: Path | None = None, services: list[str] | None = None) -> dict[str, Any]:
    """Empty database services of the running stack (``legible reset [SERVICE]...``).

    Postgres: the service's database is dropped (``WITH (FORCE)``: open connections are closed) and created
    again with ``pg_stat_statements``, through ``psql`` on ``127.0.0.1``; Redis: ``FLUSHALL``. The app's
    setup steps run again at its next start (``legible restart``), which brings the data back to
    after-setup state.

    Args:
        start: a directory inside the worktree (default: the current one).
        services: database service names (default: all of them).

    Returns:
        ``legible.reset/v1``: ``{"schema", "key", "reset": [{"service", "kind", "took_ms"}]}``.

    Raises:
        NotRunning: no stack runs here.
        UsageError: a name that is not a database service of the stack.
        NotReady: the server did not accept the reset (its error in the message).

    """
    import time

    from legible._errors import NotReady, NotRunning, UsageError
    from legible.worktree import find_worktree

    wt = find_worktree(start)
    try:
        state = json.loads((wt.state_dir / "state.json").read_text())
        plan = json.loads((wt.state_dir / "plan.json").read_text())
    except (OSError, ValueError):
        state, plan = {}, {}
    if state.get("status") not in ("ready", "degraded"):
        raise NotRunning(f"no stack is running for {wt.key}", hint="run `legible up --wait` first")
    dbs = {s["name"]: s for s in plan["services"] if s["probe"]["kind"] in ("postgres", "redis")}
    for n in services or []:
        if n not in dbs:
            known = ", ".join(sorted(dbs)) or "none"
            raise UsageError(f"reset: {n!r} is not a database service", hint=f"database services: {known}")
    out = []
    for name in services or sorted(dbs):
        sp = dbs[name]
        port = int(sp["port"])
        t0 = time.monotonic()
        if sp["probe"]["kind"] == "postgres":
            bindir = find_pg_bindir()
            if bindir is None:
                raise NotReady(f"{name}: psql not found", hint=f"run: {PG_INSTALL}")
            ident = _quote_ident(name)
            steps = [("template1", sql) for sql in reset_statements(name)]
            steps.append((name, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
            for db, sql in steps:
                res = subprocess.run(
                    [str(bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(port)]
                    + ["-U", PG_USER, "-d", db, "-c", sql],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=False,
                )
                if res.returncode != 0:
                    why = (res.stderr.strip().splitlines() or ["psql failed"])[-1]
                    raise NotReady(f"{name}: reset of database {ident} failed: {why}", hint=f"see {sp['log']}")
            kind = "postgres"
        else:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(b"FLUSHALL\r\n")
                    answer = s.recv(256)
            except OSError as exc:
                raise NotReady(f"{name}: redis did not answer: {exc}", hint=f"see {sp['log']}") from None
            if not answer.startswith(b"+OK"):
                raise NotReady(f"{name}: FLUSHALL failed: {answer.decode(errors='replace').strip()}", hint="")
            kind = "redis"
        out.append({"service": name, "kind": kind, "took_ms": round((time.monotonic() - t0) * 1000, 1)})
    return {"schema": RESET_SCHEMA, "key": wt.key, "reset": out}
