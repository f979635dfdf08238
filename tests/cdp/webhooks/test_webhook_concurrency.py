"""Two workers at once never send one delivery twice (PostgreSQL, real transactions)."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import connection

from cdp.core.changes import changes_stamp
from cdp.core.outbox import outbox_put
from cdp.webhooks.models import DeliveryStatus, WebhookDelivery
from cdp.webhooks.services.delivery import webhook_deliver
from cdp.webhooks.services.relay import deliveries_fan_out, webhooks_relay

pytestmark = pytest.mark.postgres


def run_together(target, times: int) -> list:
    barrier, results, errors = threading.Barrier(times), [], []

    def run():
        try:
            barrier.wait(10)
            results.append(target())
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    return results


def test_concurrent_workers_send_a_delivery_once(postgres, transactional_db, receiver, subscribe, monkeypatch):
    monkeypatch.setattr("cdp.core.outbox._listeners", [])  # no wake-up: this test drives the relay
    subscribe(receiver.url, events=["profile.erased"])
    outbox_put(topic="profile.erased", payload={"profile_id": str(uuid.uuid4())})
    changes_stamp()
    deliveries_fan_out()
    delivery = WebhookDelivery.objects.get()
    results = run_together(lambda: webhook_deliver(delivery_id=delivery.id), times=4)
    assert sum(1 for r in results if r is not None) == 1
    assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 1


def test_concurrent_relays_create_and_send_each_delivery_once(postgres, transactional_db, receiver, subscribe,
                                                            monkeypatch):
    monkeypatch.setattr("cdp.core.outbox._listeners", [])
    subscribe(receiver.url, events=["profile.erased"])
    for _ in range(20):
        outbox_put(topic="profile.erased", payload={"profile_id": str(uuid.uuid4())})
    run_together(webhooks_relay, times=4)
    assert WebhookDelivery.objects.count() == 20
    assert sorted(receiver.accepted_event_ids()) == sorted(set(receiver.accepted_event_ids()))
    assert len(receiver.requests) == 20
