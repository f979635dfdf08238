"""Identity resolution throughput on PostgreSQL.

Resolves 100,000 generated records (default) in batches of 1,000 through
`profiles_ingest` — encryption, blind indexes, resolution, lineage — where 20% of the
records name people seen before the way real data does (another source, an email case
variant, a reformatted phone, or a second identifier that links two known profiles).
Prints records/s, merges and conflicts. Runs as production does (DEBUG=false, see
setup_django); `--profile` also prints where the time goes (cProfile, by own time and
by cumulative time).

    python bench/resolve.py [--records 100000] [--batch 1000] [--profile]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from setup_django import backend_cpu_seconds, fresh_postgres, peak_rss_mb, wal_bytes_since, wal_position  # noqa: E402,E501


def generate(count: int, seed: int = 7):
    """Yield (source_key, record) pairs: 80% new people, 20% overlapping earlier ones."""
    rng = random.Random(seed)
    people: list[tuple[str, str]] = []
    for n in range(count):
        if people and rng.random() < 0.20:
            email, phone = rng.choice(people)
            style = rng.random()
            if style < 0.4:
                identifiers = {"email": f"  {email.upper()} "}
            elif style < 0.7:
                identifiers = {"phone": f"+44 20 {phone[5:9]} {phone[9:]}"}
            else:
                other_email, _ = rng.choice(people)
                identifiers = {"email": email, "phone": phone, "anonymous_id": f"dev-{n}"}
                if rng.random() < 0.5:
                    identifiers["email"] = other_email  # links two known people: a merge
            source = rng.choice(["crm", "web"])
        else:
            email = f"person{n}@example.com"
            phone = f"+44207{n % 10_000_000:07d}"
            people.append((email, phone))
            identifiers = {"email": email, "phone": phone} if rng.random() < 0.6 else {"email": email}
            if rng.random() < 0.3:
                identifiers["crm_id"] = f"C{n}"
            source = "shop" if "crm_id" not in identifiers else "crm"
        yield source, {"external_id": f"r{n}", "identifiers": identifiers,
                       "attributes": {"first_name": f"Name{n}", "city": rng.choice(["York", "Leeds", "Hull"]),
                                      "country": "GB"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the run")
    parser.add_argument("--debug", action="store_true", help="DEBUG=true (development mode) instead")
    args = parser.parse_args()
    fresh_postgres("tessera_bench_resolve", production=not args.debug)
    from cdp.models import Merge, MergeConflict, Profile
    from cdp.services.resolution import profiles_ingest
    from cdp.services.sources import source_create

    sources = {key: source_create(key=key, name=key, kind="first_party", trust=trust)[0]
               for key, trust in (("crm", 90), ("shop", 60), ("web", 30))}
    batches: dict[str, list] = {key: [] for key in sources}
    statuses: dict[str, int] = {}
    load_before = os.getloadavg()[0]
    server_cpu_before = backend_cpu_seconds()
    wal_before = wal_position()
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started, cpu_started = time.perf_counter(), time.process_time()
    for source_key, record in generate(args.records):
        batch = batches[source_key]
        batch.append(record)
        if len(batch) >= args.batch:
            for result in profiles_ingest(source=sources[source_key], records=batch):
                statuses[result.status] = statuses.get(result.status, 0) + 1
            batch.clear()
    for source_key, batch in batches.items():
        if batch:
            for result in profiles_ingest(source=sources[source_key], records=batch):
                statuses[result.status] = statuses.get(result.status, 0) + 1
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    server_cpu_after = backend_cpu_seconds()
    wal = wal_bytes_since(wal_before)
    if profiler is not None:
        import pstats

        profiler.disable()
        stats = pstats.Stats(profiler, stream=sys.stdout)
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(45)
    print(f"records            {args.records:>10,}")
    print(f"elapsed            {elapsed:>10.1f} s")
    print(f"records/s          {args.records / elapsed:>10,.0f}")
    # CPU per record is what the machine's load does not change much: wall time on a
    # shared machine includes waiting for a core.
    print(f"CPU per record     {cpu / args.records * 1e6:>10,.0f} µs Python", end="")
    if server_cpu_before is not None and server_cpu_after is not None:
        server = (server_cpu_after - server_cpu_before) / args.records * 1e6
        print(f" + {server:,.0f} µs PostgreSQL = {cpu / args.records * 1e6 + server:,.0f} µs", end="")
    print()
    print(f"WAL per record     {wal / args.records:>10,.0f} bytes (rows, index entries and the first image of "
          f"each page changed, from a checkpoint)")
    print(f"statuses           {dict(sorted(statuses.items()))}")
    print(f"live profiles      {Profile.objects.filter(status='active').count():>10,}")
    print(f"merges             {Merge.objects.count():>10,}")
    print(f"conflicts          {MergeConflict.objects.count():>10,}")
    print(f"peak RSS           {peak_rss_mb():>10.0f} MB")
    print(f"load average       {load_before:>10.2f} before, {os.getloadavg()[0]:.2f} after "
          f"({os.cpu_count()} CPUs; other processes share them)")


if __name__ == "__main__":
    main()
