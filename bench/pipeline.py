"""The personalization pipeline on PostgreSQL: stage times and peak memory, and the
recommendations endpoint's latency under a fixed offered load on gunicorn.

    python bench/pipeline.py                       # everything below
    python bench/pipeline.py --only demo           # the demo shop (load_demo, 3,000 customers)
    python bench/pipeline.py --only movielens      # MovieLens-100k (target: whole pipeline < 20 s)
    python bench/pipeline.py --only synthetic      # 100,000 profiles / 2,000,000 events (< 5 min)
    python bench/pipeline.py --only http           # latency at 100 requests/s (p95 < 30 ms) and the
                                                   # highest rate sustained, on the synthetic data set
    options: --profiles N --events N --reuse (keep a loaded database) --http-seconds S --workers N
             --http-dataset synthetic|movielens|demo --worker-class sync|gthread
             --celery-workers N [--broker URL]  (the pipeline through a real Celery worker with N processes)

Each data set gets its own database (tessera_bench_pipeline_<name>); loading is timed
apart from the pipeline. The pipeline runs in this process (`pipeline_run_sync`, the same
services the Celery tasks call), so a stage's peak memory is this process's. Figures are
printed, never asserted: a loaded machine gives slower numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from ingest import CpuMeter
from setup_django import production_env

ROOT = Path(__file__).resolve().parent.parent
MOVIELENS = Path("/work/shared/data/movielens-100k")
SERVER = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
DB_PREFIX = os.environ.get("BENCH_DB_PREFIX", "tessera_bench_pipeline_")  # one per person benchmarking
HTTP_PORT = 8799


# --- set-up ---------------------------------------------------------------------------------------


def database(name: str, *, reuse: bool) -> bool:
    """Point Django at the data set's database; True when it already holds the data."""
    db = DB_PREFIX + name
    psql = ["psql", f"{SERVER}/postgres", "-tAqc"]
    exists = subprocess.run([*psql, f"SELECT 1 FROM pg_database WHERE datname = '{db}'"], check=True,  # noqa: S608
                            capture_output=True, text=True).stdout.strip() == "1"
    if exists and not reuse:
        subprocess.run([*psql, f"DROP DATABASE {db}"], check=True, capture_output=True)
        exists = False
    if not exists:
        subprocess.run([*psql, f"CREATE DATABASE {db}"], check=True, capture_output=True)
    os.environ["DATABASE_URL"] = f"{SERVER}/{db}"
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.setdefault("TESSERA_VAR_DIR", str(ROOT / "var" / "bench"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ.get("OPENBLAS_NUM_THREADS", "1")
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from cdp.models import Profile

    return exists and Profile.objects.exists()


def grant(profile_ids: list, *, rates: dict[str, float], seed: int, processes: int = 2) -> None:
    """Consent through the consent service (ledger and all), a share of people per purpose.

    Batches of 500 people (`consents_record_many`, one transaction each), in `processes`
    forked processes (each person's ledger chain is their own, so they never wait on each other).
    """
    import multiprocessing

    import numpy as np
    from django.db import connections

    rng = np.random.default_rng(seed)
    draws = {purpose: rng.random(len(profile_ids)) < rate for purpose, rate in rates.items()}
    work = [(pid, [p for p in rates if draws[p][i]]) for i, pid in enumerate(profile_ids)]
    work = [(pid, purposes) for pid, purposes in work if purposes]
    connections.close_all()  # each forked process opens its own
    for connection in connections.all(initialized_only=True):
        if connection.vendor == "postgresql" and connection.settings_dict["OPTIONS"].get("pool"):
            connection.close_pool()  # a pool's threads and sockets do not survive a fork
    parts = [work[i::processes] for i in range(processes)]
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        pool.map(_grant_part, parts)


def _grant_part(part: list) -> None:
    from consent.services.consents import ConsentChange, consents_record_many

    for start in range(0, len(part), 500):
        consents_record_many([(pid, [ConsentChange(purpose=p, granted=True) for p in purposes])
                              for pid, purposes in part[start:start + 500]], channel="api", actor="bench")


def load_movielens() -> dict:
    from cdp.models import Profile
    from cdp.services.imports import movielens_import

    started = time.perf_counter()
    report = movielens_import(path=str(MOVIELENS))
    ids = list(Profile.objects.values_list("id", flat=True))
    imported = time.perf_counter() - started
    grant(ids, rates={"analytics": 0.9, "personalization": 0.85}, seed=1)
    return {"profiles": len(ids), "events": report.summary.loaded_total, "import_s": round(imported, 1),
            "consent_s": round(time.perf_counter() - started - imported, 1)}


def load_demo(customers: int = 3000) -> dict:
    from cdp.demo.loader import demo_load
    from cdp.models import Event, Profile

    started = time.perf_counter()
    demo_load(customers=customers, seed=42)
    return {"profiles": Profile.objects.filter(status="active").count(), "events": Event.objects.count(),
            "load_s": round(time.perf_counter() - started, 1)}


def load_synthetic(profiles: int, events: int, seed: int = 7) -> dict:
    """A shop with taste: people prefer one of 20 categories; views, carts and purchases.

    Profiles and events are written with COPY (the pipeline is measured, not ingestion);
    consent goes through the consent service.
    """
    import numpy as np
    from django.db import connection
    from django.utils import timezone

    from cdp.models import Event, Item, Profile, Source
    from cdp.services.sources import source_create

    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    source = Source.objects.filter(key="shop").first() or source_create(
        key="shop", name="Shop", kind="first_party", trust=80)[0]
    categories, per_category = 20, 100
    items = [Item(id=f"sku-{c:02d}-{i:03d}", title=f"Item {i} of category {c}", category=f"category-{c:02d}",
                  description=f"A product in category {c}", attributes={"brand": f"brand-{i % 7}"})
             for c in range(categories) for i in range(per_category)]
    Item.objects.bulk_create(items, batch_size=2000)
    item_ids = np.asarray([item.id for item in items])
    price = np.round(rng.lognormal(3.0, 0.8, len(items)), 2)
    now = timezone.now()
    ids = sorted(uuid.uuid4() for _ in range(profiles))
    with connection.cursor() as cursor, cursor.cursor.copy(
            f"COPY {Profile._meta.db_table} (id, status, version, created_at, updated_at) FROM STDIN") as copy:
        for pid in ids:
            copy.write_row((pid, "active", 1, now, now))
    activity = rng.lognormal(0, 0.9, profiles)
    counts = rng.poisson(activity / activity.sum() * events)
    taste = rng.integers(0, categories, profiles)
    owner = np.repeat(np.arange(profiles), counts)
    n = len(owner)
    in_taste = rng.random(n) < 0.8
    category = np.where(in_taste, taste[owner], rng.integers(0, categories, n))
    rank = np.minimum(rng.zipf(1.6, n) - 1, per_category - 1)
    item = category * per_category + rank
    kind = rng.choice(np.array(["view", "add_to_cart", "purchase"]), n, p=[0.65, 0.15, 0.20])
    last_active = rng.uniform(0, 365, profiles)
    age = last_active[owner] + rng.exponential(60, n)
    at = [now - timezone.timedelta(days=float(d)) for d in age]
    quantity = rng.integers(1, 4, n)
    columns = "id, profile_id, origin_profile_id, source_id, type, name, item_id, quantity, price, occurred_at, " \
              "received_at"
    with connection.cursor() as cursor, cursor.cursor.copy(
            f"COPY {Event._meta.db_table} ({columns}) FROM STDIN") as copy:
        for i in range(n):
            pid = ids[owner[i]]
            purchase = kind[i] == "purchase"
            copy.write_row((uuid.uuid4(), pid, pid, source.id, kind[i], "", item_ids[item[i]],
                            int(quantity[i]) if purchase else None, float(price[item[i]]) if purchase else None,
                            at[i], now))
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Event._meta.db_table}; ANALYZE {Profile._meta.db_table}")
    loaded = time.perf_counter() - started
    grant(ids, rates={"analytics": 0.9, "personalization": 0.8}, seed=seed)
    return {"profiles": profiles, "events": n, "copy_s": round(loaded, 1),
            "consent_s": round(time.perf_counter() - started - loaded, 1)}


# --- the pipeline ---------------------------------------------------------------------------------


class RssSampler(threading.Thread):
    """Peak resident memory between marks, sampled every 20 ms from /proc."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak = 0
        self.stop = False

    @staticmethod
    def rss_mb() -> float:
        return _rss_mb("self")

    def run(self) -> None:
        while not self.stop:
            self.peak = max(self.peak, self.rss_mb())
            time.sleep(0.02)

    def mark(self) -> float:
        peak, self.peak = self.peak, self.rss_mb()
        return max(peak, self.peak)


def run_pipeline(label: str, chunk_size: int) -> dict:
    from personalization.services.pipeline import pipeline_run_create, pipeline_run_plan, pipeline_run_sync

    sampler = RssSampler()
    sampler.start()
    stages: list[tuple[str, float, float]] = []
    started = time.perf_counter()
    run = pipeline_run_create(trigger="bench", params={"chunk_size": chunk_size})
    pipeline_run_plan(run_id=run.id)
    stages.append(("plan", time.perf_counter() - started, sampler.mark()))
    run = pipeline_run_sync(run_id=run.id, on_stage=lambda stage, seconds: stages.append(
        (stage, seconds, sampler.mark())))
    total = time.perf_counter() - started
    sampler.stop = True
    print(f"\n{label}: pipeline run {run.id} {run.status} in {total:.1f} s")
    print(f"  {'stage':<18}{'seconds':>9}{'peak RSS MB':>13}")
    for stage, seconds, peak in stages:
        print(f"  {stage:<18}{seconds:>9.2f}{peak:>13.0f}")
    print(f"  {'finish':<18}{total - sum(s for _, s, _ in stages):>9.2f}")
    _print_predictions_share(sum(seconds for stage, seconds, _ in stages if stage == "predictions"), total,
                             sum(seconds for stage, seconds, _ in stages if stage == "recommendations"))
    print(f"  counts: {json.dumps({k: v for k, v in run.counts.items() if k != 'dp_releases'})}")
    return {"total_s": round(total, 1), "stages": {s: round(t, 2) for s, t, _ in stages},
            "peak_rss_mb": {s: round(p) for s, _, p in stages}, "run": run.id}


def _print_predictions_share(predictions: float, total: float, recommendations: float) -> None:
    """The predictions stage against the whole run (issue 19's target: < 10%), and against the
    run without the recommendations stage, whose time swings most with the machine's load."""
    print(f"  predictions stage: {predictions:.2f} s, {predictions / total:.1%} of the run (target < 10%); "
          f"{predictions / max(total - recommendations, 1e-9):.1%} of the run without recommendations")


def dataset_main(name: str, args) -> None:
    loaded = database(name, reuse=args.reuse)
    if not loaded:
        loaders = {"movielens": load_movielens, "demo": load_demo,
                   "synthetic": lambda: load_synthetic(args.profiles, args.events)}
        facts = loaders[name]()
        print(f"{name}: loaded {json.dumps(facts)}")
    else:
        print(f"{name}: reusing the loaded database")
    if args.celery_workers:
        run_pipeline_in_workers(name, chunk_size=args.chunk_size, concurrency=args.celery_workers,
                                broker=args.broker)
    else:
        run_pipeline(name, chunk_size=args.chunk_size)


def run_pipeline_in_workers(label: str, *, chunk_size: int, concurrency: int, broker: str) -> None:
    """As production runs it: `run_pipeline` through the broker, the chunks fanned out over a
    real Celery worker with `concurrency` processes. Stage times come from the run's own
    timings; memory is the peak resident size of the largest worker process."""
    from personalization.models import PipelineRun

    env = {**os.environ, "CELERY_BROKER_URL": broker, "OPENBLAS_NUM_THREADS": "1", "LOG_LEVEL": "WARNING"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "cdp", "worker", "--pool", "prefork", "--concurrency",
         str(concurrency), "-l", "warning", "--without-gossip", "--without-mingle", "-n", f"bench-{os.getpid()}@%h"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sampler = TreeRssSampler(worker.pid)
    sampler.start()
    try:
        started = time.perf_counter()
        command = subprocess.run(
            [sys.executable, "manage.py", "run_pipeline", "--timeout", "120", "--chunk-size", str(chunk_size)],
            cwd=ROOT, env=env, capture_output=True, text=True)
        total = time.perf_counter() - started
    finally:
        sampler.stop = True
        worker.terminate()
        worker.wait(timeout=60)
    if command.returncode != 0:
        raise SystemExit(f"run_pipeline failed: {command.stderr.strip()[-2000:]}")
    run = PipelineRun.objects.get(id=int(command.stdout.strip().splitlines()[-1]))
    print(f"\n{label}: pipeline run {run.id} {run.status} in {total:.1f} s through Celery "
          f"({concurrency} worker processes); peak RSS of a worker process {sampler.peak:.0f} MB")
    print(f"  {'stage':<18}{'seconds':>9}")
    order = ["features", "segments_fit", "segments_assign", "recommender_fit", "recommendations", "predictions",
             "releases"]
    for stage, seconds in sorted(run.timings.items(), key=lambda t: order.index(t[0]) if t[0] in order else 99):
        print(f"  {stage:<18}{seconds:>9.2f}")
    _print_predictions_share(run.timings.get("predictions", 0.0), total, run.timings.get("recommendations", 0.0))
    print(f"  counts: {json.dumps({k: v for k, v in run.counts.items() if k != 'dp_releases'})}")


class TreeRssSampler(threading.Thread):
    """Peak resident memory of any one process in a process tree, sampled every 100 ms."""

    def __init__(self, root_pid: int):
        super().__init__(daemon=True)
        self.root_pid, self.peak, self.stop = root_pid, 0.0, False

    def run(self) -> None:
        while not self.stop:
            for pid in self._tree():
                self.peak = max(self.peak, _rss_mb(pid))
            time.sleep(0.1)

    def _tree(self) -> list[int]:
        pids, frontier = [self.root_pid], [self.root_pid]
        while frontier:
            pid = frontier.pop()
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            pids += [int(c) for c in children]
            frontier += [int(c) for c in children]
        return pids


def _rss_mb(pid: int | str) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


# --- the endpoint under load ----------------------------------------------------------------------


def http_main(args) -> None:
    """Offered-load test: requests are sent on a fixed schedule whether or not earlier ones
    came back, and latency counts from the scheduled time (no coordinated omission)."""
    if not database(args.http_dataset, reuse=True):
        raise SystemExit(f"Load the {args.http_dataset} data set first: "
                         f"python bench/pipeline.py --only {args.http_dataset}")
    from cdp.api.services.api_keys import api_key_create
    from personalization.models import Recommendation, RunStatus

    profile_ids = list(Recommendation.objects.filter(run__status=RunStatus.SUCCEEDED)
                       .values_list("profile_id", flat=True).distinct()[:5000])
    if not profile_ids:
        raise SystemExit("No recommendations in the synthetic database: run its pipeline first.")
    _, key = api_key_create(name="bench", scopes=["recommendations:read"])
    # As production runs it: DEBUG off, keys from the environment (the ones that wrote the data).
    keys = json.loads((Path(os.environ["TESSERA_VAR_DIR"]) / "dev-keys.json").read_text())
    env = {**os.environ, **production_env(keys), "TESSERA_API_RATE": "1000000/s", "LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "cdp.wsgi:application", "--bind", f"127.0.0.1:{HTTP_PORT}",
         "--workers", str(args.workers), "--worker-class", args.worker_class,
         "--threads", "4" if args.worker_class == "gthread" else "1", "--log-level", "warning",
         "--access-logfile", "/dev/null"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_http()
        paths = [f"/api/v1/profiles/{pid}/recommendations" for pid in profile_ids]
        _offered(paths, key, rate=20, seconds=3)  # warm-up: connections, caches, imports
        threads = " × 4 threads" if args.worker_class == "gthread" else ""
        print(f"\nrecommendations endpoint on the {args.http_dataset} data set, gunicorn {args.workers} "
              f"{args.worker_class} workers{threads}, {len(paths)} distinct profiles, "
              f"load average {os.getloadavg()[0]:.1f}")
        print(f"  {'offered/s':>9}{'achieved/s':>11}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'errors':>8}")
        with CpuMeter(server.pid) as cpu:
            result = _offered(paths, key, rate=100, seconds=args.http_seconds)
        _print_row(result)
        requests = result["total"]
        print(f"  CPU per request at 100/s: gunicorn {cpu.used['workers'] / requests * 1000:.2f} ms, "
              f"PostgreSQL {cpu.used['backends'] / requests * 1000:.2f} ms, "
              f"client {cpu.used['client'] / requests * 1000:.2f} ms")
        best = None
        for rate in (150, 200, 300, 400, 500, 700, 900):
            result = _offered(paths, key, rate=rate, seconds=max(10, args.http_seconds // 3))
            _print_row(result)
            if _sustained(result):
                best = rate
            else:
                break
        print(f"  highest rate sustained (≥99% ok, achieved ≥95% of offered, p95 < 100 ms): {best or '< 150'}/s")
    finally:
        server.terminate()
        server.wait(timeout=20)


def _wait_http() -> None:
    import http.client

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", HTTP_PORT, timeout=2)
            connection.request("GET", "/healthz", headers={"X-Forwarded-Proto": "https"})
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("gunicorn did not answer /healthz within 60 s")


def _offered(paths: list[str], key: str, *, rate: int, seconds: int, senders: int = 64) -> dict:
    import http.client
    import queue

    total = rate * seconds
    jobs: queue.Queue = queue.Queue()
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    headers = {"Authorization": f"Bearer {key}", "X-Forwarded-Proto": "https"}  # as behind the TLS proxy

    def sender() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", HTTP_PORT, timeout=10)
        while True:
            job = jobs.get()
            if job is None:
                return
            due, path = job
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            try:
                connection.request("GET", path, headers=headers)
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", HTTP_PORT, timeout=10)
            done = time.perf_counter()
            with lock:
                latencies.append(done - due)
                errors[0] += not ok

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(senders)]
    for thread in threads:
        thread.start()
    start = time.perf_counter() + 0.2
    for i in range(total):
        jobs.put((start + i / rate, paths[i % len(paths)]))
    for _ in threads:
        jobs.put(None)
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {"offered": rate, "achieved": total / elapsed, "p50": pct(0.50), "p95": pct(0.95), "p99": pct(0.99),
            "errors": errors[0], "total": total}


def _print_row(r: dict) -> None:
    print(f"  {r['offered']:>9}{r['achieved']:>11.1f}{r['p50']:>8.1f}{r['p95']:>8.1f}{r['p99']:>8.1f}"
          f"{r['errors']:>8}")


def _sustained(r: dict) -> bool:
    return r["errors"] <= 0.01 * r["total"] and r["achieved"] >= 0.95 * r["offered"] and r["p95"] < 100


# --- entry point ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["demo", "movielens", "synthetic", "http"])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--chunk-size", type=int, default=2000)
    parser.add_argument("--reuse", action="store_true", help="Keep a database that already holds the data.")
    parser.add_argument("--http-seconds", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2).")
    parser.add_argument("--celery-workers", type=int, default=0,
                        help="Run the pipeline through the broker on a Celery worker with this many processes "
                             "(default 0: in this process).")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/12", help="Broker for --celery-workers.")
    parser.add_argument("--worker-class", choices=["sync", "gthread"], default="sync",
                        help="gunicorn worker class: sync as the Docker image runs it (default), or gthread × 4.")
    parser.add_argument("--http-dataset", choices=["synthetic", "movielens", "demo"], default="synthetic",
                        help="Whose recommendations the endpoint test reads (default synthetic).")
    parser.add_argument("--child", choices=["demo", "movielens", "synthetic", "http"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        http_main(args) if args.child == "http" else dataset_main(args.child, args)
        return
    # One process per data set: Django reads DATABASE_URL once, at start-up.
    for name in ([args.only] if args.only else ["demo", "movielens", "synthetic", "http"]):
        argv = ["--profiles", str(args.profiles), "--events", str(args.events), "--chunk-size", str(args.chunk_size),
                "--http-seconds", str(args.http_seconds), "--workers", str(args.workers),
                "--http-dataset", args.http_dataset, "--worker-class", args.worker_class,
                "--celery-workers", str(args.celery_workers), "--broker", args.broker]
        if args.reuse or (name == "http" and not args.only):
            argv.append("--reuse")
        subprocess.run([sys.executable, __file__, "--child", name, *argv], check=True)


if __name__ == "__main__":
    main()
