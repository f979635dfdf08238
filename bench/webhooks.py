"""Webhook relay throughput: a backlog of changes drained to a local receiver.

Writes `--changes` profile changes (default 100,000) while the relay sleeps, then runs the
relay as production does in-process (fan-out, queueing, deliveries; the same services a
Celery worker runs) until every delivery has succeeded, POSTing to a receiver on
127.0.0.1 that answers 200 at once. Prints changes/s and the drain time for a batching
subscription (`--batch-size`, default 100) and, for reference, for one change a POST on a
smaller backlog (`--single-changes`). Target (issue 17): 100,000 changes in under 2 minutes.
The reference before batching: ~9 deliveries/s with one Celery worker (issue 17).

    python bench/webhooks.py [--changes 100000] [--batch-size 100] [--single-changes 2000]

PostgreSQL as in setup_django (BENCH_PG_URL, BENCH_DB_SUFFIX).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from setup_django import backend_cpu_seconds, fresh_postgres  # noqa: E402


class Receiver:
    """Counts the changes it accepts (one JSON object, or {"events": [...]})."""

    def __init__(self):
        self.changes = 0
        self.posts = 0
        self.first_at = None  # perf_counter() of the first POST
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with receiver.lock:
                    receiver.first_at = receiver.first_at or time.perf_counter()
                    receiver.posts += 1
                    receiver.changes += len(body["events"]) if "events" in body else 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def backlog(count: int) -> None:
    """`count` profile.updated changes, written while the relay is not woken."""
    from django.db import transaction

    from cdp.core import outbox

    listeners, outbox._listeners[:] = list(outbox._listeners), []
    try:
        for start in range(0, count, 5000):
            with transaction.atomic():
                outbox.outbox_put_many([("profile.updated", {"profile_id": str(uuid.uuid4())})
                                        for _ in range(min(5000, count - start))])
    finally:
        outbox._listeners[:] = listeners


def drain(*, changes: int, batch_size: int) -> dict:
    from django.utils import timezone

    from cdp.webhooks.models import DeliveryStatus, WebhookDelivery
    from cdp.webhooks.services.relay import webhooks_relay
    from cdp.webhooks.services.subscriptions import webhook_create

    receiver = Receiver()
    subscription = webhook_create(url=receiver.url, events=["profile.updated"], batch_size=batch_size).subscription
    backlog(changes)
    started, cpu, server = time.perf_counter(), time.process_time(), backend_cpu_seconds()
    while True:
        webhooks_relay()
        pending = WebhookDelivery.objects.filter(subscription=subscription, status=DeliveryStatus.PENDING).count()
        done = WebhookDelivery.objects.filter(subscription=subscription).count() >= changes
        if sys.stderr.isatty():
            print(f"\r  {receiver.changes:,}/{changes:,} delivered", end="", file=sys.stderr, flush=True)
        if done and not pending:
            break
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    server = (backend_cpu_seconds() or 0) - (server or 0)
    print(file=sys.stderr)
    receiver.server.shutdown()
    subscription.deleted_at = timezone.now()  # the next run's receiver is another one
    subscription.save(update_fields=["deleted_at"])
    return {"changes": receiver.changes, "posts": receiver.posts, "seconds": elapsed,
            "first": receiver.first_at - started, "cpu": cpu, "server_cpu": server}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--single-changes", type=int, default=2000)
    args = parser.parse_args()
    os.environ["TESSERA_WEBHOOK_ALLOW_PRIVATE_NETWORKS"] = "true"  # the receiver is on 127.0.0.1
    fresh_postgres("tessera_bench_webhooks")
    runs = [("batched", args.changes, args.batch_size), ("one a POST", args.single_changes, 1)]
    for label, changes, batch_size in runs:
        if not changes:
            continue
        result = drain(changes=changes, batch_size=batch_size)
        print(f"{label:<12} batch_size {batch_size:>4}: {result['changes']:>8,} changes in {result['posts']:>7,} "
              f"POSTs, {result['seconds']:>6.1f} s ({result['changes'] / result['seconds']:>7,.0f} changes/s; "
              f"first delivery after {result['first']:.2f} s); CPU {result['cpu']:.1f} s relay + receiver, "
              f"{result['server_cpu']:.1f} s PostgreSQL; load average {os.getloadavg()[0]:.1f}")
    print("target: 100,000 changes drained in < 120 s; before batching ~9 deliveries/s (one Celery worker)")


if __name__ == "__main__":
    main()
