"""Event-to-fresh-recommendation latency and Segment ingestion throughput with and without refresh.

    python bench/realtime.py [--people 1000] [--items 200] [--messages 3000] [--batch 20]

On a fresh PostgreSQL database (tasks in-process, no broker, DEBUG=false): loads a shop of
known people with a history each who all allow personalization, runs the pipeline once
(the real recommender), then pushes Segment `track` messages (views, carts and
`Order Completed` purchases of known users) through the Segment ingestion service in
batches of --batch messages from distinct people, as a Segment batch call would carry
them. With refresh on, each batch's people are rescored after its commit; a message's
latency is from the moment its batch is handed to ingestion to the commit of its
person's refreshed list (in-process the refresh runs right after the batch commits).
The same stream (other message ids) is then ingested with the refresh listener off,
and the throughputs are printed side by side. The machine may be shared: the load
average is printed; run it more than once.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from setup_django import fresh_postgres  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def shop(people: int, items: int, rng: random.Random):
    from cdp.services.events import events_ingest
    from cdp.services.items import items_upsert
    from cdp.services.resolution import profiles_ingest
    from cdp.services.sources import source_create
    from consent.services import consent_set

    source, _ = source_create(key="shop", name="Shop", kind="first_party", trust=80)
    categories = [f"cat{c}" for c in range(5)]
    catalogue = [f"sku-{i}" for i in range(items)]
    items_upsert(items=[{"id": sku, "title": f"Thing {i}", "category": categories[i % 5],
                         "description": f"A {categories[i % 5]} thing", "attributes": {}}
                        for i, sku in enumerate(catalogue)])
    ids = [r.profile_id for r in profiles_ingest(source=source, records=[
        {"external_id": f"p{i}", "identifiers": {"user_id": f"u{i}"}} for i in range(people)])]
    events = []
    for i, pid in enumerate(ids):
        taste = [sku for j, sku in enumerate(catalogue) if j % 5 == i % 5]
        for n in range(rng.randint(3, 12)):
            events.append({"profile_id": str(pid), "type": rng.choice(["view", "view", "purchase"]),
                           "item_id": rng.choice(taste), "occurred_at": f"2026-0{1 + n % 9}-1{n % 9}T10:00:00Z",
                           "message_id": f"h{i}-{n}"})
    for start in range(0, len(events), 2000):
        events_ingest(source=source, events=events[start:start + 2000])
    for pid in ids:
        consent_set(profile_id=pid, purpose="personalization", granted=True)
    return source, catalogue


def stream(people: int, catalogue: list[str], messages: int, batch: int, tag: str, rng: random.Random):
    """Batches of track messages, each batch from distinct known people."""
    batches = []
    for start in range(0, messages, batch):
        users = rng.sample(range(people), min(batch, people))
        batch_messages = []
        for n, user in enumerate(users):
            sku = rng.choice(catalogue)
            kind = rng.random()
            if kind < 0.2:
                body = {"event": "Order Completed", "properties": {"order_id": f"{tag}{start}-{n}",
                                                                  "products": [{"product_id": sku, "price": 10}]}}
            else:
                body = {"event": "Product Viewed" if kind < 0.8 else "Product Added",
                        "properties": {"product_id": sku}}
            batch_messages.append({"type": "track", "userId": f"u{user}", "messageId": f"{tag}-{start}-{n}",
                                   "timestamp": "2026-12-01T10:00:00Z", **body})
        batches.append(batch_messages)
    return batches


def ingest(source, batches) -> tuple[float, list[float]]:
    from cdp.segment.services import segment_messages_ingest

    latencies = []
    started = time.perf_counter()
    for batch_messages in batches:
        handed = time.perf_counter()
        segment_messages_ingest(source=source, messages=batch_messages)
        latencies.extend([time.perf_counter() - handed] * len(batch_messages))
    return time.perf_counter() - started, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=20)
    args = parser.parse_args()
    os.environ["TESSERA_REALTIME_IN_PROCESS"] = "true"  # this bench measures the in-process refresh
    fresh_postgres("tessera_bench_realtime", production=True)
    from cdp.core.event_hooks import events_listen, events_unlisten
    from personalization.models import Recommendation
    from personalization.services import pipeline, realtime

    rng = random.Random(20)
    load = os.getloadavg()
    setup = time.perf_counter()
    source, catalogue = shop(args.people, args.items, rng)
    run = pipeline.pipeline_run_create(params={"chunk_size": 2000, "k": 3})
    pipeline.pipeline_run_sync(run_id=run.id)
    print(f"shop: {args.people} people, {args.items} items, pipeline run {run.id} "
          f"({Recommendation.objects.count()} recommendations), set up in {time.perf_counter() - setup:.1f} s")

    with_refresh = stream(args.people, catalogue, args.messages, args.batch, uuid.uuid4().hex[:6], rng)
    seconds_on, latencies = ingest(source, with_refresh)
    events_unlisten(realtime.events_refresh_schedule)
    without = stream(args.people, catalogue, args.messages, args.batch, uuid.uuid4().hex[:6], rng)
    seconds_off, _ = ingest(source, without)
    events_listen(realtime.events_refresh_schedule)

    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; after: "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())} ({os.cpu_count()} cores)")
    print(f"event -> fresh recommendations ({args.messages} messages, batches of {args.batch}): "
          f"p50 {percentile(latencies, 0.5) * 1000:.0f} ms, p95 {percentile(latencies, 0.95) * 1000:.0f} ms, "
          f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms (target p99 < 1000 ms)")
    rate_on, rate_off = args.messages / seconds_on, args.messages / seconds_off
    print(f"ingestion: {rate_on:,.0f} messages/s with refresh, {rate_off:,.0f} without "
          f"({rate_on / rate_off:.0%} of it; the issue's target is at least 90%)")


if __name__ == "__main__":
    main()
