"""Deliveries start promptly whatever the backlog: a new subscription never waits behind
history older than itself, nor behind another subscription's queue; batched deliveries
carry several changes per POST (opt-in per subscription)."""

from __future__ import annotations

import json
import uuid

import pytest

from cdp.core.changes import changes_stamp
from cdp.core.outbox import outbox_put
from cdp.webhooks import signing
from cdp.webhooks.models import DeliveryStatus, WebhookDelivery
from cdp.webhooks.services import relay
from cdp.webhooks.services.relay import deliveries_fan_out, deliveries_queue_due, webhooks_relay
from cdp.webhooks.services.subscriptions import webhook_create

pytestmark = pytest.mark.django_db


def change(topic="profile.updated"):
    return outbox_put(topic=topic, payload={"profile_id": str(uuid.uuid4())})


def test_a_new_subscription_does_not_wait_behind_older_history(receiver, subscribe, monkeypatch):
    monkeypatch.setattr(relay, "MAX_BATCHES", 2)
    for _ in range(40):  # written while nobody listened, never read by the relay
        change()
    subscribe(receiver.url, events=["profile.updated"])
    fresh = change()
    webhooks_relay(batch_size=5)  # reads at most 10 changes a run
    assert receiver.accepted_event_ids() == [str(fresh.event_id)]


def test_a_new_subscription_does_not_wait_behind_another_ones_queue(make_receiver, subscribe):
    busy, fresh_receiver = make_receiver(status=503), make_receiver()
    subscribe(busy.url, events=["profile.updated"])
    for _ in range(30):
        change()
    changes_stamp()
    deliveries_fan_out()  # 30 deliveries due for the busy receiver
    subscribe(fresh_receiver.url, events=["profile.updated"])
    fresh = change()
    changes_stamp()
    deliveries_fan_out()
    deliveries_queue_due(limit=10)  # fewer than the busy receiver's backlog
    assert fresh_receiver.accepted_event_ids() == [str(fresh.event_id)]


def test_a_batching_subscription_gets_several_changes_per_post(receiver):
    subscription = webhook_create(url=receiver.url, events=["profile.updated"], batch_size=10)
    sent = [change() for _ in range(25)]
    webhooks_relay()
    bodies = [json.loads(r.body) for r in receiver.requests]
    assert [len(b["events"]) for b in bodies] == [10, 10, 5]
    assert [e["id"] for b in bodies for e in b["events"]] == [str(m.event_id) for m in sent]
    assert bodies[0]["events"][0] == {"id": str(sent[0].event_id), "type": "profile.updated",
                                      "occurred_at": sent[0].created_at.isoformat(), "data": sent[0].payload}
    first = receiver.requests[0]
    assert first.headers["Tessera-Event-Type"] == "batch" and first.headers["Tessera-Batch-Size"] == "10"
    timestamp = int(first.headers["Tessera-Signature"].split(",")[0][2:])
    assert first.headers["Tessera-Signature"] == signing.signature_header(
        [subscription.secret], timestamp=timestamp, body=first.body)
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SUCCEEDED}


def test_a_failed_batch_is_retried_whole_and_delivered_once(receiver, fast_retries):
    webhook_create(url=receiver.url, events=["profile.updated"], batch_size=50)
    receiver.status = [500, 200]
    sent = [change() for _ in range(3)]
    webhooks_relay()
    webhooks_relay()
    accepted = [e["id"] for r in receiver.requests if r.status == 200 for e in json.loads(r.body)["events"]]
    assert accepted == [str(m.event_id) for m in sent]
    assert list(WebhookDelivery.objects.values_list("attempts", flat=True).distinct()) == [2]
    webhooks_relay()
    assert len(receiver.requests) == 2
