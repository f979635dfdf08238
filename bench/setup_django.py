"""Shared set-up for benchmarks: a fresh PostgreSQL database and Django configured for it.

    from setup_django import fresh_postgres
    fresh_postgres("tessera_bench_resolve")   # drops/creates it, migrates, django.setup()

The server defaults to the local one (postgres@127.0.0.1:5432, trust auth); override
with BENCH_PG_URL=postgres://user@host:port, and the database name's end with
BENCH_DB_SUFFIX (to run two at once). Tasks run in-process.

`fresh_postgres(name, production=True)` measures what production runs: DEBUG=false
(Django keeps no query log and wraps no cursor for it) with fresh random keys, since the
database is new anyway.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def fresh_postgres(name: str, *, production: bool = False) -> str:
    server = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
    name += os.environ.get("BENCH_DB_SUFFIX", "")  # two benchmarks at once need two databases
    url = f"{server}/{name}"
    psql = ["psql", f"{server}/postgres", "-qc"]
    subprocess.run([*psql, f"DROP DATABASE IF EXISTS {name}"], check=True, capture_output=True)
    subprocess.run([*psql, f"CREATE DATABASE {name}"], check=True, capture_output=True)
    os.environ["DATABASE_URL"] = url
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.setdefault("TESSERA_VAR_DIR", str(ROOT / "var" / "bench"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if production:
        os.environ.update(production_env(os.environ))
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return url


def production_env(environ) -> dict:
    """DEBUG=false and what production mode then requires, with fresh random keys
    (values already set in `environ` win)."""
    import base64
    import secrets

    def key() -> str:
        return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()

    wanted = {"DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(48), "ALLOWED_HOSTS": "127.0.0.1,localhost",
              "TESSERA_MASTER_KEYS": key(), "TESSERA_INDEX_KEY": key(), "TESSERA_LEDGER_KEY": key()}
    return {name: environ.get(name) or value for name, value in wanted.items()}


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a local process (e.g. a PostgreSQL backend) has used so far,
    or None when it cannot be read (another host, no /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backend_cpu_seconds() -> float | None:
    """CPU time used so far by the PostgreSQL backend serving Django's connection."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return process_cpu_seconds(cursor.fetchone()[0])


def wal_position() -> str:
    """PostgreSQL's write-ahead-log position after a checkpoint: the WAL written from there
    is a repeatable measure of the database work (rows and index entries), where its CPU
    time drifts with the machine."""
    from django.db import connection

    with connection.cursor() as cursor:
        # From a checkpoint on, as every run: the first change to each page after one
        # writes the whole page, so where checkpoints fall changes the total.
        cursor.execute("CHECKPOINT")
        cursor.execute("SELECT pg_current_wal_lsn()::text")
        return cursor.fetchone()[0]


def wal_bytes_since(position: str) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)::bigint", [position])
        return cursor.fetchone()[0]


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
