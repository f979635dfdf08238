"""Figures for the capacity model (README, Scaling out), on PostgreSQL.

    python bench/scale.py storage [--tree PATH] [--profiles N] [--events N]
    python bench/scale.py retention [--tree PATH] [--events N] [--months M]
    python bench/scale.py workers [--profiles N] [--events N] [--broker URL]

`storage`: events through the service (events_ingest, 1,000 a batch, every event with a
message id, as Segment sends them) and profile records (profiles_ingest): rate, CPU of
this process and of its PostgreSQL backend, WAL (pg_current_wal_lsn() differences from
a checkpoint) and on-disk bytes (table and indexes) per record; then the pipeline's
event scan (features_aggregate over every profile in chunks of 1,000, as the features
stage reads them) with the events spread over 12 months of `received_at`.
`retention`: N events over M months generated in the database (INSERT ... SELECT over
generate_series), then the retention purge of the older half, timed.
`workers`: the pipeline through Redis on 1, then 2 separate Celery worker processes,
each with its own name (-n), as on separate hosts.

`--tree /work/wt-orig` runs the same measurement on another checkout (the code before
the change) in a subprocess, for a side-by-side; database names differ per tree.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()


def _setup(tree: Path, name: str) -> None:
    sys.path.insert(0, str(tree / "bench"))
    os.chdir(tree)
    from setup_django import fresh_postgres

    fresh_postgres(f"tessera_bench_scale_{name}_{'new' if tree == HERE.parent.parent else 'old'}")


def _partitioned() -> bool:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE relname = 'cdp_event'")
        return cursor.fetchone()[0] == "p"


def _months_ready(months: int) -> None:
    """On the partitioned schema, the past months' partitions, as a deployment that has run
    that long has them (beat makes each month's ahead of time)."""
    if not _partitioned():
        return
    from django.utils import timezone

    from cdp.core.partitions import month_start, partition_create

    start = month_start(timezone.now())
    for _ in range(months):
        start = month_start(start.replace(day=1) - timezone.timedelta(days=1))
        partition_create("cdp_event", "received_at", start)


def _table_bytes() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        # A plain table is no partition tree: pg_partition_tree gives nothing for it.
        cursor.execute("SELECT greatest(pg_total_relation_size('cdp_event'), (SELECT coalesce(sum("
                       "pg_total_relation_size(relid)), 0) FROM pg_partition_tree('cdp_event')))")
        return int(cursor.fetchone()[0])


def _profile_bytes() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                       "WHERE c.relkind = 'r' AND c.relname LIKE 'cdp\\_%%' AND c.relname NOT LIKE 'cdp\\_event%%'")
        return int(cursor.fetchone()[0])


class Meter:
    """Wall time, this process's CPU, its PostgreSQL backend's CPU and the WAL written."""

    def __enter__(self):
        from setup_django import backend_cpu_seconds, wal_position

        self.wal = wal_position()
        self.backend = backend_cpu_seconds() or 0.0
        self.cpu, self.wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        from setup_django import backend_cpu_seconds, wal_bytes_since

        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu
        self.backend = (backend_cpu_seconds() or 0.0) - self.backend
        self.wal_bytes = wal_bytes_since(self.wal)

    def line(self, what: str, count: int, extra: str = "") -> str:
        return (f"{what}: {count:,} in {self.wall:.1f} s = {count / self.wall:,.0f}/s; CPU a record "
                f"{self.cpu / count * 1e6:,.0f} µs Python + {self.backend / count * 1e6:,.0f} µs PostgreSQL; "
                f"WAL {self.wal_bytes / count:,.0f} B a record{extra}")


def storage(args) -> None:
    from django.db import connection

    from cdp.services.events import events_ingest
    from cdp.services.resolution import profiles_ingest
    from cdp.services.sources import source_create

    source = source_create(key="shop", name="Shop", kind="first_party", trust=80)[0]
    profile_bytes = _profile_bytes()
    with Meter() as meter:
        for start in range(0, args.profiles, 1000):
            profiles_ingest(source=source, records=[
                {"external_id": f"p{n}", "identifiers": {"email": f"p{n}@example.org"}, "attributes": {"tier": n % 5}}
                for n in range(start, min(start + 1000, args.profiles))])
    grown = _profile_bytes() - profile_bytes
    print(meter.line("profile records", args.profiles, f"; {grown / args.profiles:,.0f} B on disk a profile"))

    _months_ready(12)
    event_bytes = _table_bytes()
    with Meter() as meter:
        for start in range(0, args.events, 1000):
            events_ingest(source=source, events=[
                {"profile": {"email": f"p{n % args.profiles}@example.org"}, "type": "view" if n % 5 else "purchase",
                 "item_id": f"sku-{n % 977}", "message_id": f"m-{n}",
                 **({} if n % 5 else {"price": "19.90", "quantity": 1})}
                for n in range(start, min(start + 1000, args.events))])
    grown = _table_bytes() - event_bytes
    print(meter.line("events", args.events, f"; {grown / args.events:,.0f} B on disk an event (table + indexes)"))

    # Spread received_at over 12 months, as a year of ingestion leaves it (rows move
    # between partitions), then read events by profile as the features stage does.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE cdp_event SET received_at = received_at - (abs(hashtext(id::text)) % 360) "
                       "* interval '1 day'")
        cursor.execute("ANALYZE cdp_event")
        cursor.execute("SELECT greatest(1, (SELECT count(*) FROM pg_partition_tree('cdp_event') WHERE isleaf))")
        leaves = cursor.fetchone()[0]
    scan(leaves)


def scan(leaves: int) -> None:
    from cdp.models import Profile
    from personalization.services.features import features_aggregate

    ids = list(Profile.objects.order_by("id").values_list("id", flat=True))
    best = None
    for _ in range(3):
        started, rows = time.perf_counter(), 0
        for start in range(0, len(ids), 1000):
            rows += len(features_aggregate(profile_ids=ids[start:start + 1000]))
        elapsed = time.perf_counter() - started
        best = elapsed if best is None else min(best, elapsed)
    print(f"pipeline event scan (features_aggregate, {len(ids):,} profiles in chunks of 1,000, events over "
          f"{leaves} table(s)): best of 3 {best:.2f} s, {rows:,} profiles aggregated")


def retention(args) -> None:
    from django.db import connection
    from django.utils import timezone
    from setup_django import wal_bytes_since, wal_position

    from cdp.services.sources import source_create
    from consent.services.retention import retention_purge, retention_rule_set

    _months_ready(args.months)
    source_id = source_create(key="shop", name="Shop", kind="first_party", trust=80)[0].id
    with connection.cursor() as cursor:
        started = time.perf_counter()
        # Events spread evenly over the months (newest now), 2,000 people.
        cursor.execute(
            "INSERT INTO cdp_event (id, profile_id, origin_profile_id, source_id, type, name, item_id, occurred_at, "
            "received_at, message_id) SELECT gen_random_uuid(), p, p, %s, 'view', '', 'sku-' || (n %% 977), t, t, "
            "'m-' || n FROM (SELECT n, ('00000000-0000-4000-8000-' || lpad(to_hex(n %% 2000), 12, '0'))::uuid AS p, "
            "now() - (n::float / %s * %s * 30) * interval '1 day' AS t FROM generate_series(1, %s) n) g",
            [source_id, args.events, args.months, args.events])
        cursor.execute("ANALYZE cdp_event")
    print(f"generated {args.events:,} events over {args.months} months in {time.perf_counter() - started:.0f} s")
    days = args.months * 30 // 2
    retention_rule_set(kind="events", days=days, actor="bench")
    wal = wal_position()
    started = time.perf_counter()
    counts = retention_purge(now=timezone.now())
    elapsed = time.perf_counter() - started
    print(f"retention purge of events older than {days} days: {counts['events']:,} events in {elapsed:.1f} s, "
          f"{wal_bytes_since(wal) / 1e6:,.1f} MB of WAL "
          f"({'partitioned: whole months dropped, the rest deleted' if _partitioned() else 'one table: rows deleted'})")
    with connection.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute("VACUUM cdp_event")  # what autovacuum does after a DELETE (next to nothing after a DROP)
        print(f"VACUUM after it: {time.perf_counter() - started:.1f} s")


def workers(args) -> None:
    """The pipeline through Redis with 1, then 2 named worker processes (solo pool each)."""
    sys.path.insert(0, str(HERE.parent))
    from pipeline import load_synthetic
    from setup_django import wal_bytes_since, wal_position

    from personalization.models import PipelineRun

    loaded = load_synthetic(args.profiles, args.events)
    print(f"loaded {loaded}")
    env = {**os.environ, "CELERY_BROKER_URL": args.broker, "OPENBLAS_NUM_THREADS": "1", "LOG_LEVEL": "WARNING"}
    for count in (1, 2):
        processes = [subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "cdp", "worker", "--pool", "solo", "-Q", "pipeline,maintenance",
             "-n", f"pipeline{n}-{os.getpid()}@%h", "-l", "warning", "--without-gossip", "--without-mingle"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for n in range(count)]
        try:
            wal = wal_position()
            started = time.perf_counter()
            command = subprocess.run([sys.executable, "manage.py", "run_pipeline", "--timeout", "300",
                                      "--chunk-size", "500"], env=env, capture_output=True, text=True)
            total = time.perf_counter() - started
            wal_bytes = wal_bytes_since(wal)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=60)
        if command.returncode:
            raise SystemExit(f"run_pipeline failed: {command.stderr.strip()[-2000:]}")
        run = PipelineRun.objects.get(id=int(command.stdout.strip().splitlines()[-1]))
        stages = ", ".join(f"{stage} {seconds:.1f}" for stage, seconds in run.timings.items())
        print(f"pipeline on {count} worker process(es): {run.status} in {total:.1f} s (stages: {stages}); "
              f"WAL {wal_bytes / args.profiles:,.0f} B a profile; load average {os.getloadavg()[0]:.1f}")


def _on_private_cluster(arguments: list[str]) -> int:
    """Run this script with `arguments` against a throwaway cluster on a private port
    (full-page writes on, as in production; fsync off: it changes no WAL volume)."""
    import shutil
    import tempfile

    sys.path.insert(0, str(HERE.parent.parent / "tests" / "faults"))
    from harness import PostgresCluster

    directory = Path(tempfile.mkdtemp(prefix="tessera-bench-scale-"))
    os.chmod(directory, 0o755)  # noqa: S103 (the postgres user reads it; nothing secret in it)
    cluster = PostgresCluster(directory)
    cluster._run(["pg_ctl", "-D", str(cluster.data), "-l", str(directory / "postgres.log"), "-w", "-o",
                  f"-p {cluster.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={directory} "
                  "-c fsync=off", "start"])
    try:
        server = f"postgres://postgres@127.0.0.1:{cluster.port}"
        return subprocess.call([sys.executable, str(HERE), *arguments], env={**os.environ, "BENCH_PG_URL": server})
    finally:
        cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["storage", "retention", "workers"])
    parser.add_argument("--tree", type=Path, default=HERE.parent.parent)
    parser.add_argument("--profiles", type=int, default=5000)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--in-tree", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--private-cluster", action="store_true",
                        help="Measure on a private PostgreSQL cluster (initdb in a temporary directory): WAL is "
                             "counted per cluster, so other databases' work on a shared server would be counted too.")
    args = parser.parse_args()
    tree = args.tree.resolve()
    if args.private_cluster:
        sys.exit(_on_private_cluster([a for a in sys.argv[1:] if a != "--private-cluster"]))
    if tree != HERE.parent.parent and not args.in_tree:
        # The other checkout's code, measured by this script in a process of its own.
        sys.exit(subprocess.call([sys.executable, str(HERE), *sys.argv[1:], "--in-tree"], cwd=tree,
                                 env={**os.environ, "PYTHONPATH": str(tree)}))
    print(f"{args.what} on {tree} (load average {os.getloadavg()[0]:.1f})")
    _setup(tree, args.what)
    {"storage": storage, "retention": retention, "workers": workers}[args.what](args)


if __name__ == "__main__":
    main()
