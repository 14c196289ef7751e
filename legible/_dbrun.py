"""``python -m legible._dbrun postgres|redis ...``: prepare a database server's files, then exec it.

The supervisor spawns this (see :mod:`legible.services.databases`) and probes the servers with
:func:`pg_ready` and :func:`redis_ready`; this module imports nothing heavy, since the supervisor loads it.
It creates the private data and socket directories, on the first start of Postgres runs ``initdb`` and
creates the service's database (with ``pg_stat_statements``) in single-user mode, then replaces itself with
the server (``os.execv``), so the supervisor's process is the server's and its signals (SIGTERM: shut
down) reach it directly.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from legible._files import private_dir

#: The Postgres role legible's clusters are created with (``initdb -U``).
PG_USER = "postgres"


def find_pg_bindir() -> Path | None:
    """Return the directory of ``postgres``/``initdb``/``pg_isready``: PATH, else Debian's newest version."""
    on_path = shutil.which("initdb")
    if on_path:  # Debian links some tools into PATH (/usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb)
        real = Path(on_path).resolve().parent
        if all((real / t).is_file() for t in ("postgres", "pg_isready")):
            return real
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[4] or 0))
    return Path(found[-1]).parent if found else None


def postmaster_ready(data_dir: Path) -> bool:
    """True when ``postmaster.pid``'s status line (the 8th) says ``ready`` (Postgres' ``PM_STATUS_READY``)."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
    except OSError:
        return False
    return len(lines) >= 8 and lines[7].strip() == "ready"


def pg_ready(port: int, bindir: Path | None = None, data_dir: Path | None = None) -> bool:
    """True when the Postgres server on ``127.0.0.1:port`` accepts connections (``pg_isready`` exit 0).

    With ``data_dir``, ``pg_isready`` runs only once the server wrote ``ready`` in ``postmaster.pid``: a
    connection during startup is refused with a ``FATAL: the database system is starting up`` line in the
    server's log, which a readiness probe must not leave behind (it would count as a fatal log line).
    Never raises; returns within about 1 s.
    """
    if data_dir is not None and not postmaster_ready(data_dir):
        return False
    bindir = bindir or find_pg_bindir()
    if bindir is None:
        return False
    try:
        out = subprocess.run(
            [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port), "-t", "1", "-U", PG_USER],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=2,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0


def redis_ready(port: int) -> bool:
    """True when the Redis server on ``127.0.0.1:port`` answers ``PING`` with ``+PONG`` (not ``-LOADING``)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _as_non_root(argv: list[str]) -> list[str]:
    """``argv`` to run as a non-root uid: Postgres refuses euid 0 (see :mod:`legible.services.databases`)."""
    if os.geteuid() != 0:
        return argv
    unshare = shutil.which("unshare")
    if unshare is None:
        print("error: postgres refuses to run as root and `unshare` (util-linux) is missing", file=sys.stderr)
        raise SystemExit(3)
    return [unshare, "--user", *argv]


def _single_user(bindir: Path, data: Path, database: str, sql: str) -> None:
    """Run ``sql`` (one statement per line) in Postgres' single-user mode against ``database``."""
    subprocess.run(
        _as_non_root([str(bindir / "postgres"), "--single", "-D", str(data), "-E", database]),
        input=sql.encode(),
        stdout=subprocess.DEVNULL,
        check=True,
    )


def postgres(args: argparse.Namespace) -> None:
    """Run ``initdb`` on the first start, then exec ``postgres`` on ``127.0.0.1:<port>``."""
    bindir, data = Path(args.bindir), Path(args.data)
    private_dir(data.parent)
    private_dir(Path(args.socket_dir))
    if not (data / "PG_VERSION").is_file():
        if data.exists():  # a half-made cluster from an interrupted first start
            shutil.rmtree(data)
        print(f"legible: initdb {data}", flush=True)
        subprocess.run(
            _as_non_root(
                [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"]
            ),
            stdout=subprocess.DEVNULL,
            check=True,
        )
        db = '"' + args.database.replace('"', '""') + '"'
        _single_user(bindir, data, "template1", f"CREATE DATABASE {db};\n")
        _single_user(bindir, data, args.database, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;\n")
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": args.port,
        "unix_socket_directories": args.socket_dir,
        "unix_socket_permissions": "0700",
        "log_line_prefix": "%m [%p] ",
        "log_min_duration_statement": args.slow_ms,
        "shared_preload_libraries": "pg_stat_statements",
        # a development database: a crash of the machine may lose it, a crash (kill -9) of Postgres may not:
        # commits are written to the kernel before they are acknowledged (synchronous_commit stays on)
        "fsync": "off",
        "full_page_writes": "off",
        "dynamic_shared_memory_type": "mmap",  # files in the data dir, nothing left in /dev/shm after a kill
    }
    argv = [str(bindir / "postgres"), "-D", str(data)]
    for k, v in settings.items():
        argv += ["-c", f"{k}={v}"]
    argv = _as_non_root(argv)
    os.execv(argv[0], argv)  # noqa: S606 - argv built above from the plan, no shell


def redis(args: argparse.Namespace) -> None:
    """Exec ``redis-server`` on ``127.0.0.1:<port>`` with its socket and snapshot in private directories."""
    private_dir(Path(args.data))
    private_dir(Path(args.socket_dir))
    argv = [
        args.binary,
        "--port",
        args.port,
        "--bind",
        "127.0.0.1",
        "--protected-mode",
        "yes",
        "--unixsocket",
        str(Path(args.socket_dir) / "redis.sock"),
        "--unixsocketperm",
        "700",
        "--dir",
        args.data,
        "--daemonize",
        "no",
        "--logfile",
        "",
        "--save",
        "60 1",
        "--appendonly",
        "no",
    ]
    os.execv(argv[0], argv)  # noqa: S606 - argv built above from the plan, no shell


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments the plan gives and run the chosen kind."""
    p = argparse.ArgumentParser(prog="legible._dbrun")
    sub = p.add_subparsers(dest="kind", required=True)
    pg = sub.add_parser("postgres")
    pg.add_argument("--bindir", required=True)
    pg.add_argument("--database", required=True)
    pg.add_argument("--slow-ms", default="50")
    rd = sub.add_parser("redis")
    rd.add_argument("--binary", required=True)
    for s in (pg, rd):
        s.add_argument("--data", required=True)
        s.add_argument("--socket-dir", required=True)
        s.add_argument("--port", required=True)
    args = p.parse_args(argv)
    os.umask(0o077)
    if args.kind == "postgres":
        postgres(args)
    else:
        redis(args)


if __name__ == "__main__":
    main()
