"""What one real-time drain costs a person: CPU of the refresh (features, segment,
recommendations with explanations, the writes), drained in batches as the `realtime`
worker does, next to the same people refreshed one at a time (the reference).

    python bench/realtime_drain.py [--people 3000] [--items 500] [--drained 2000] [--alone 100]
                                   [--db tessera_bench_realtime_drain] [--reuse] [--profile]

A fresh PostgreSQL database (DEBUG=false) gets bench/realtime.py's shop and one pipeline
run; `--reuse` keeps the previous one (its keys are saved under var/bench). The process
then tunes its garbage collector as a worker does (cdp.core.gc_tuning) and measures, on
the same people: this process's CPU (user + system) and the PostgreSQL backend's, per
person, for batches of REFRESH_BATCH, of 100 (a 100 ms window at 1,000 events/s) and
for single people. `--profile` prints where a
batch's time goes (cProfile, cumulative). The machine may be shared: the load average is
printed; compare the two lines of one run.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from setup_django import ROOT, backend_cpu_seconds, fresh_postgres, production_env  # noqa: E402

KEYS = ROOT / "var" / "bench" / "realtime-drain-keys.json"
KEY_NAMES = ("SECRET_KEY", "TESSERA_MASTER_KEYS", "TESSERA_INDEX_KEY", "TESSERA_LEDGER_KEY")


def setup(args) -> None:
    if not args.reuse:
        fresh_postgres(args.db, production=True)
        from realtime import shop

        from personalization.services import pipeline

        shop(args.people, args.items, random.Random(20))
        run = pipeline.pipeline_run_create(params={"chunk_size": 2000, "k": 4})
        pipeline.pipeline_run_sync(run_id=run.id)
        KEYS.parent.mkdir(parents=True, exist_ok=True)
        KEYS.write_text(json.dumps({name: os.environ[name] for name in KEY_NAMES}))
        return
    os.environ.update({"DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{args.db}",
                       "DJANGO_SETTINGS_MODULE": "cdp.settings", "LOG_LEVEL": "WARNING"})
    os.environ.setdefault("TESSERA_VAR_DIR", str(ROOT / "var" / "bench"))
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.update(json.loads(KEYS.read_text()))  # the artifact is signed with the run's keys
    os.environ.update(production_env(os.environ))
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def measured(batches: list[list]) -> tuple[float, float]:
    """(this process's, the database backend's) CPU milliseconds a person."""
    from personalization.services.realtime import recommendations_refresh

    people = sum(len(batch) for batch in batches)
    cpu, backend = time.process_time(), backend_cpu_seconds()
    for batch in batches:
        recommendations_refresh(profile_ids=batch)
    backend_used = (backend_cpu_seconds() - backend) if backend is not None else float("nan")
    return (time.process_time() - cpu) * 1000 / people, backend_used * 1000 / people


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=3000)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--drained", type=int, default=2000, help="people refreshed in batches")
    parser.add_argument("--alone", type=int, default=100, help="people refreshed one at a time (reference)")
    parser.add_argument("--db", default="tessera_bench_realtime_drain")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    setup(args)
    from django.conf import settings

    from cdp.core.gc_tuning import gc_tune
    from cdp.models import Profile
    from personalization.services.realtime import REFRESH_BATCH, recommendations_refresh

    gc_tune(settings.TESSERA_GC_GEN0_THRESHOLD)  # as the web and worker processes do
    ids = list(Profile.objects.order_by("id").values_list("id", flat=True))
    rng = random.Random(7)
    rng.shuffle(ids)
    drained, alone = ids[:args.drained], ids[args.drained:args.drained + args.alone]
    recommendations_refresh(profile_ids=ids[-50:])  # warm-up: the artifact, the query plans
    print(f"shop: {len(ids):,} people, {args.items} items; load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())} ({os.cpu_count()} CPUs, shared)")
    batched = measured([drained[i:i + REFRESH_BATCH] for i in range(0, len(drained), REFRESH_BATCH)])
    print(f"drain of {REFRESH_BATCH} people a batch ({len(drained):,} people): {batched[0]:.2f} ms CPU a person, "
          f"PostgreSQL backend {batched[1]:.2f} ms")
    # About what one 100 ms window holds at 1,000 events/s from 10,000 people.
    small = measured([drained[i:i + 100] for i in range(0, len(drained), 100)])
    print(f"drain of 100 people a batch ({len(drained):,} people): {small[0]:.2f} ms CPU a person, "
          f"PostgreSQL backend {small[1]:.2f} ms")
    single = measured([[pid] for pid in alone])
    print(f"one person at a time ({len(alone):,} people, reference): {single[0]:.2f} ms CPU a person, "
          f"PostgreSQL backend {single[1]:.2f} ms ({single[0] / batched[0]:.1f}x the batched CPU)")
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        recommendations_refresh(profile_ids=drained[:REFRESH_BATCH])
        profile.disable()
        pstats.Stats(profile).sort_stats(os.environ.get("BENCH_SORT", "cumulative")).print_stats(30)
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} at end")


if __name__ == "__main__":
    main()
