"""Real-time personalization under sustained Segment traffic: event-to-fresh-list latency
and the ingestion throughput with and without the refresh, side by side.

    python bench/realtime.py [--people 10000] [--items 500] [--rate 1000] [--seconds 30]
                             [--batch 50] [--clients 4] [--workers 2] [--realtime-workers 1]
                             [--mode broker|in-process] [--messages 20000] [--reuse]

On a fresh PostgreSQL database (DEBUG=false): a shop of --people known people with a
history each who all allow analytics and personalization, one pipeline run (the real
recommender and segmentation). Then Tessera runs behind gunicorn on 127.0.0.1 (loopback
only), and this process, as the client:

1. **latency**: sends Segment `/v1/batch` calls (views, carts and `Order Completed`
   purchases of random known people) at --rate messages/s for --seconds, each message
   stamped with the time it is sent. A poller reads the refreshed lists (rank 1, every
   100 ms): a list's `as_of` is the send time of the newest message it reflects, so
   (first seen − as_of) is that message's event-to-fresh-list latency, up to the poll
   interval late. With `--mode broker` the refresh runs on a Celery worker of the
   `realtime` queue (Redis db BENCH_REDIS_DB, default 4); with `--mode in-process` in
   the gunicorn workers after each response (TESSERA_REALTIME_IN_PROCESS).
2. **throughput**: --messages messages as fast as --clients posters can, with the
   refresh on, then (gunicorn restarted with TESSERA_REALTIME_REFRESH=false, the same
   broker) the same number again: messages/s side by side, the gunicorn workers' CPU a
   message in both and the realtime worker's; with a broker also a run with the refresh
   on but the worker stopped: what noting the people and queuing the drains costs the
   ingestion itself, without the worker's CPU competing on the same cores (in
   production it runs on others).

Loops are bounded (a message count, a deadline for the last refresh). The machine may be
shared: the load average is printed; run it more than once.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import CpuMeter, _free_port, _push, _start_gunicorn, _wait_ready  # noqa: E402
from setup_django import ROOT, fresh_postgres  # noqa: E402

DB = "tessera_bench_realtime"
POLL_SECONDS = 0.1


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def shop(people: int, items: int, rng: random.Random) -> str:
    """Known people with a history, all allowing analytics and personalization; the write key."""
    from cdp.services.events import events_ingest
    from cdp.services.items import items_upsert
    from cdp.services.resolution import profiles_ingest
    from cdp.services.sources import source_create
    from consent.services import consent_set

    source, write_key = source_create(key="shop", name="Shop", kind="first_party", trust=80)
    categories = [f"cat{c}" for c in range(5)]
    catalogue = [f"sku-{i}" for i in range(items)]
    items_upsert(items=[{"id": sku, "title": f"Thing {i}", "category": categories[i % 5],
                         "description": f"A {categories[i % 5]} thing", "attributes": {}}
                        for i, sku in enumerate(catalogue)])
    ids = []
    for start in range(0, people, 2000):
        records = [{"external_id": f"p{i}", "identifiers": {"user_id": f"u{i}"}}
                   for i in range(start, min(people, start + 2000))]
        ids += [r.profile_id for r in profiles_ingest(source=source, records=records)]
    events = []
    for i, pid in enumerate(ids):
        taste = [sku for j, sku in enumerate(catalogue) if j % 5 == i % 5]
        for n in range(rng.randint(3, 12)):
            kind = rng.choice(["view", "view", "purchase"])
            events.append({"profile_id": str(pid), "type": kind, "item_id": rng.choice(taste),
                           "occurred_at": f"2026-0{1 + n % 9}-1{n % 9}T10:00:00Z", "message_id": f"h{i}-{n}",
                           **({"price": "20.00"} if kind == "purchase" else {})})
    for start in range(0, len(events), 5000):
        events_ingest(source=source, events=events[start:start + 5000])
    for pid in ids:
        consent_set(profile_id=pid, purpose="analytics", granted=True)
        consent_set(profile_id=pid, purpose="personalization", granted=True)
    return write_key


def message(people: int, items: int, rng: random.Random, tag: str, n: int, sent: str) -> dict:
    user, sku, kind = rng.randrange(people), f"sku-{rng.randrange(items)}", rng.random()
    if kind < 0.2:
        body = {"event": "Order Completed", "properties": {"order_id": f"{tag}-{n}",
                                                          "products": [{"product_id": sku, "price": 10}]}}
    else:
        body = {"event": "Product Viewed" if kind < 0.8 else "Product Added", "properties": {"product_id": sku}}
    return {"type": "track", "userId": f"u{user}", "messageId": f"{tag}-{n}", "timestamp": sent, **body}


class Poller:
    """Refreshed lists as they become visible: (profile id, as_of, created_at) → first seen."""

    def __init__(self, since: datetime):
        self.since, self.seen, self.stop = since, {}, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def _run(self) -> None:
        from django.db import connection

        newest = self.since
        try:
            while not self.stop.is_set():
                with connection.cursor() as cursor:
                    cursor.execute("SELECT profile_id, as_of, created_at FROM personalization_recommendation "
                                   "WHERE rank = 1 AND created_at > %s", [newest])
                    rows = cursor.fetchall()
                now = time.time()
                for row in rows:
                    self.seen.setdefault(row, now)
                    newest = max(newest, row[2])
                self.stop.wait(POLL_SECONDS)
        finally:
            connection.close()

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        self.thread.join()

    def latencies(self, start: float) -> list[float]:
        return [seen - as_of.timestamp() for (_, as_of, _), seen in self.seen.items()
                if as_of is not None and as_of.timestamp() >= start]


def paced(port: int, write_key: str, args, rng: random.Random) -> tuple[float, int]:
    """--rate messages/s for --seconds from --clients posters; (achieved rate, messages)."""
    import http.client

    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    batches = int(args.rate * args.seconds / args.batch)
    tag, lock, counter, failures = uuid.uuid4().hex[:8], threading.Lock(), iter(range(batches)), []
    started = time.perf_counter()

    def poster() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        while True:
            with lock:
                index = next(counter, None)
                if index is None:
                    return
                local = random.Random(rng.random())
            due = started + index * args.batch / args.rate
            time.sleep(max(0.0, due - time.perf_counter()))
            sent = datetime.now(UTC).isoformat()
            body = json.dumps({"batch": [message(args.people, args.items, local, tag, index * args.batch + n, sent)
                                         for n in range(args.batch)]}).encode()
            connection.request("POST", "/v1/batch", body=body, headers={
                "Authorization": auth, "Content-Type": "application/json", "X-Forwarded-Proto": "https"})
            response = connection.getresponse()
            payload = response.read()
            if response.status != 200:
                failures.append(f"{response.status} {payload[:200]!r}")

    threads = [threading.Thread(target=poster) for _ in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(f"{len(failures)} requests failed, first: {failures[0]}")
    return batches * args.batch / (time.perf_counter() - started), batches * args.batch


def bodies(count: int, args, rng: random.Random) -> list[bytes]:
    tag, sent = uuid.uuid4().hex[:8], datetime.now(UTC).isoformat()
    return [json.dumps({"batch": [message(args.people, args.items, rng, tag, start + n, sent)
                                  for n in range(min(args.batch, count - start))]}).encode()
            for start in range(0, count, args.batch)]


def pending_wait(seconds: float) -> float:
    """Until no refresh is waiting (bounded); how long it took."""
    from personalization.models import RefreshPending

    started = time.perf_counter()
    while RefreshPending.objects.exists() and time.perf_counter() - started < seconds:
        time.sleep(0.1)
    return time.perf_counter() - started


def worker_start(broker: str, count: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "celery", "-A", "cdp", "worker", "-Q", "realtime", "-c", str(count),
               "-l", "warning", "--without-gossip", "--without-mingle", "-n", f"bench-realtime-{os.getpid()}@%h"]
    worker = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "CELERY_BROKER_URL": broker,
                                                      "OPENBLAS_NUM_THREADS": "1"})
    time.sleep(8)  # start-up: Django, the task modules
    return worker


def stop(process: subprocess.Popen | None) -> None:
    if process is not None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--rate", type=int, default=1000, help="messages/s sent in the latency phase")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--batch", type=int, default=50, help="messages per /v1/batch call")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--realtime-workers", type=int, default=1, help="Celery worker processes (--mode broker)")
    parser.add_argument("--mode", choices=("broker", "in-process"), default="broker")
    parser.add_argument("--messages", type=int, default=20_000, help="per throughput run (0: skip)")
    parser.add_argument("--reuse", action="store_true", help="keep the database of the previous run")
    args = parser.parse_args()
    broker = f"redis://127.0.0.1:6379/{os.environ.get('BENCH_REDIS_DB', '4')}"
    rng = random.Random(20)
    setup = time.perf_counter()
    if args.reuse:
        from setup_django import production_env

        name = DB + os.environ.get("BENCH_DB_SUFFIX", "")  # as fresh_postgres named it
        os.environ.update({"DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{name}",
                           "DJANGO_SETTINGS_MODULE": "cdp.settings", "LOG_LEVEL": "WARNING"})
        os.environ.pop("CELERY_BROKER_URL", None)
        os.environ.update(production_env(os.environ))
        saved = json.loads(Path(ROOT / "var" / "bench" / "realtime-keys.json").read_text())
        write_key = saved.pop("_WRITE_KEY")
        os.environ.update(saved)
        import django

        sys.path.insert(0, str(ROOT))
        django.setup()
        from cdp.models import Source

        assert Source.objects.filter(key="shop").exists()
    else:
        fresh_postgres(DB, production=True)
        from personalization.services import pipeline

        write_key = shop(args.people, args.items, rng)
        run = pipeline.pipeline_run_create(params={"chunk_size": 2000, "k": 4})
        pipeline.pipeline_run_sync(run_id=run.id)
        keys = Path(ROOT / "var" / "bench" / "realtime-keys.json")
        keys.parent.mkdir(parents=True, exist_ok=True)
        names = ("SECRET_KEY", "TESSERA_MASTER_KEYS", "TESSERA_INDEX_KEY", "TESSERA_LEDGER_KEY")
        keys.write_text(json.dumps({name: os.environ[name] for name in names} | {"_WRITE_KEY": write_key}))
    from personalization.models import Recommendation, RefreshPending, SegmentMembership

    RefreshPending.objects.all().delete()  # a previous run's paused phase leaves its people noted

    print(f"shop: {args.people:,} people, {args.items} items, {Recommendation.objects.count():,} recommendations, "
          f"{SegmentMembership.objects.count():,} segment memberships; set up in {time.perf_counter() - setup:.0f} s")
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} at start ({os.cpu_count()} CPUs, shared)")

    on_env = {"CELERY_BROKER_URL": broker} if args.mode == "broker" else {"TESSERA_REALTIME_IN_PROCESS": "true"}
    if args.mode == "broker":
        subprocess.run(["redis-cli", "-n", broker.rsplit("/", 1)[1], "flushdb"], check=True, capture_output=True)
    os.environ.update(on_env)
    port, worker = _free_port(), None
    server = _start_gunicorn(port, args.workers, 1, None)
    try:
        _wait_ready(port)
        worker = worker_start(broker, args.realtime_workers) if args.mode == "broker" else None
        start = time.time()
        with Poller(datetime.now(UTC)) as poller:
            rate, sent = paced(port, write_key, args, rng)
            drained = pending_wait(120)
            time.sleep(3 * POLL_SECONDS)
        latencies = poller.latencies(start)
        print(f"latency ({args.mode}): {sent:,} messages offered at {args.rate:,}/s in batches of {args.batch}, "
              f"sent at {rate:,.0f}/s; last refresh {drained:.1f} s after the last message")
        if latencies:
            print(f"  event -> fresh list: p50 {percentile(latencies, 0.5) * 1000:,.0f} ms, "
                  f"p95 {percentile(latencies, 0.95) * 1000:,.0f} ms, "
                  f"p99 {percentile(latencies, 0.99) * 1000:,.0f} ms, "
                  f"max {max(latencies) * 1000:,.0f} ms over {len(latencies):,} refreshed lists "
                  f"(target p99 < 1,000 ms; up to {POLL_SECONDS * 1000:.0f} ms of it is the poll interval)")
        if args.messages:
            payload = bodies(args.messages, args, rng)
            auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
            headers = {"Authorization": auth, "Content-Type": "application/json"}
            with CpuMeter(server.pid) as web, CpuMeter(worker.pid if worker else server.pid) as refresh:
                rate_on, _, _ = _push(port, "/v1/batch", payload, headers, args.clients, idempotent=False,
                                      count=args.messages)
                pending_wait(300)
            rate_paused, per = None, args.messages / 1e6
            worker_cpu = f"; realtime worker {refresh.used['workers'] / per:,.0f} µs"
            if worker:
                # The ingestion's own share: the people are noted and drains queued, but no
                # worker takes them (its CPU out of the way).
                stop(worker)
                worker = None
                with CpuMeter(server.pid) as web_paused:
                    rate_paused, _, _ = _push(port, "/v1/batch", bodies(args.messages, args, rng), headers,
                                              args.clients, idempotent=False, count=args.messages)
            # The same server and broker, with the events' refresh switched off.
            stop(server)
            os.environ["TESSERA_REALTIME_REFRESH"] = "false"
            server = _start_gunicorn(port, args.workers, 1, None)
            _wait_ready(port)
            with CpuMeter(server.pid) as web_off:
                rate_off, _, _ = _push(port, "/v1/batch", bodies(args.messages, args, rng), headers, args.clients,
                                       idempotent=False, count=args.messages)
            os.environ.pop("TESSERA_REALTIME_REFRESH")
            print(f"throughput: {rate_on:,.0f} messages/s with the refresh ({args.mode}), {rate_off:,.0f} without "
                  f"({rate_on / rate_off:.0%}; target >= 90%), {args.messages:,} messages each")
            on_cpu, off_cpu = web.used["workers"] / per, web_off.used["workers"] / per
            worker_cpu = worker_cpu if args.mode == "broker" else ""
            print(f"  gunicorn CPU a message: {on_cpu:,.0f} µs with, {off_cpu:,.0f} µs without "
                  f"({on_cpu / off_cpu - 1:+.0%}){worker_cpu}")
            if rate_paused:
                paused_cpu = web_paused.used["workers"] / per
                print(f"  the ingestion's own share (refresh on, worker stopped): {rate_paused:,.0f} messages/s "
                      f"({rate_paused / rate_off:.0%} of without), gunicorn CPU {paused_cpu:,.0f} µs a message "
                      f"({paused_cpu / off_cpu - 1:+.0%})")
    finally:
        stop(worker)
        stop(server)
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} at end")


if __name__ == "__main__":
    main()
