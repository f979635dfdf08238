"""Delivering changes to a real local receiver: retries, exactly-once, the attempt log."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from cdp.core.changes import changes_high_water, changes_list, changes_stamp
from cdp.core.models import OutboxConsumer, OutboxMessage
from cdp.core.outbox import outbox_put
from cdp.webhooks.models import AttemptOutcome, DeliveryStatus, WebhookAttempt, WebhookDelivery
from cdp.webhooks.services.delivery import LEASE, _claim, retry_delay, webhook_deliver
from cdp.webhooks.services.relay import deliveries_fan_out, webhooks_relay
from cdp.webhooks.services.subscriptions import webhook_delete

pytestmark = pytest.mark.django_db


def change(topic="consent.changed", **payload) -> OutboxMessage:
    defaults = {"profile_id": str(uuid.uuid4())}
    if topic == "consent.changed":
        defaults.update(purpose="marketing", granted=False)
    return outbox_put(topic=topic, payload={**defaults, **payload})


def fan_out_only():
    """The relay's first half: deliveries are created but not sent."""
    changes_stamp()
    deliveries_fan_out()


def test_a_change_is_delivered_signed_with_the_contract_body(receiver, subscribe):
    subscribe(receiver.url, events=["consent.changed"])
    message = change()
    result = webhooks_relay()
    assert (result.deliveries_created, result.deliveries_queued) == (1, 1)
    [request] = receiver.requests
    assert request.headers["Tessera-Event-Id"] == str(message.event_id)
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Tessera-Signature"].startswith("t=")
    assert request.event == {"id": str(message.event_id), "type": "consent.changed",
                             "occurred_at": message.created_at.isoformat(), "data": message.payload}
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 1
    assert delivery.last_status_code == 200


def test_with_no_subscription_the_relay_moves_past_the_changes_without_reading_them(receiver, subscribe,
                                                                                  django_assert_max_num_queries):
    for _ in range(30):
        change()
    changes_stamp()
    with django_assert_max_num_queries(12):  # the same few, however many changes
        assert deliveries_fan_out(batch_size=10) == (30, 0)
    assert OutboxConsumer.objects.get(name="webhooks").position == changes_high_water()
    subscribe(receiver.url, events=["consent.changed"])
    later = change()
    webhooks_relay()
    assert receiver.accepted_event_ids() == [str(later.event_id)]


def test_with_no_subscription_the_relay_leaves_stamping_to_the_feed(receiver, subscribe):
    first = [change() for _ in range(3)]
    webhooks_relay()
    assert OutboxMessage.objects.filter(position__isnull=True).count() == 3  # nobody listens yet
    page = changes_list(cursor=None)  # the feed stamps what it reads
    assert [c["id"] for c in page.results] == [str(m.event_id) for m in first]
    subscribe(receiver.url, events=["consent.changed"])
    later = change()
    webhooks_relay()
    assert receiver.accepted_event_ids() == [str(later.event_id)]
    assert not OutboxMessage.objects.filter(position__isnull=True).exists()


def test_only_subscribed_types_made_after_the_subscription_are_delivered(receiver, subscribe):
    change()  # before the subscription: history is not replayed
    webhooks_relay()
    subscribe(receiver.url, events=["profile.erased"])
    change()  # a type it did not ask for
    erased = change("profile.erased")
    webhooks_relay()
    assert receiver.accepted_event_ids() == [str(erased.event_id)]


def test_a_receiver_that_is_down_then_back_gets_every_event_exactly_once(receiver, subscribe, fast_retries):
    subscribe(receiver.url)
    messages = [change(), change("profile.erased"), change("profile.updated")]
    receiver.status = 503
    for _ in range(3):
        webhooks_relay()
    assert len(receiver.requests) == 9 and all(r.status == 503 for r in receiver.requests)
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.PENDING}

    receiver.status = 200
    webhooks_relay()
    webhooks_relay()  # nothing left to send
    webhooks_relay()
    accepted = receiver.accepted_event_ids()
    assert sorted(accepted) == sorted(str(m.event_id) for m in messages)
    assert len(receiver.requests) == 12

    for delivery in WebhookDelivery.objects.all():
        assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 4
        log = list(delivery.attempt_log.order_by("number").values_list(
            "number", "outcome", "status_code", "error"))
        assert log == [(1, "failed", 503, ""), (2, "failed", 503, ""), (3, "failed", 503, ""),
                       (4, "succeeded", 200, "")]
        assert all(a.duration_ms is not None for a in delivery.attempt_log.all())


def test_a_refused_connection_is_retried_until_the_receiver_listens(make_receiver, subscribe, fast_retries):
    offline = make_receiver(start=False)
    subscribe(offline.url, events=["consent.changed"])
    message = change()
    webhooks_relay()
    webhooks_relay()
    attempts = list(WebhookAttempt.objects.order_by("number").values_list("outcome", "status_code", "error"))
    assert attempts == [("failed", None, "ConnectionRefusedError")] * 2

    offline.start()
    webhooks_relay()
    webhooks_relay()
    assert offline.accepted_event_ids() == [str(message.event_id)]
    assert WebhookDelivery.objects.get().status == DeliveryStatus.SUCCEEDED


def test_after_the_last_attempt_the_delivery_fails_and_is_not_sent_again(receiver, subscribe, fast_retries):
    fast_retries.TESSERA_WEBHOOK_MAX_ATTEMPTS = 3
    subscribe(receiver.url, events=["consent.changed"])
    change()
    receiver.status = 500
    for _ in range(5):
        webhooks_relay()
    assert len(receiver.requests) == 3
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.FAILED and delivery.next_attempt_at is None


def test_a_retry_waits_for_its_backoff(receiver, subscribe, settings):
    settings.TESSERA_WEBHOOK_RETRY_BASE_SECONDS = 60
    subscribe(receiver.url, events=["consent.changed"])
    change()
    receiver.status = 503
    webhooks_relay()
    delivery = WebhookDelivery.objects.get()
    wait = delivery.next_attempt_at - delivery.attempt_log.get().started_at
    assert timedelta(seconds=60) <= wait <= timedelta(seconds=67)

    receiver.status = 200
    now = timezone.now()
    assert webhooks_relay(now=now).deliveries_queued == 0  # not due yet
    assert webhook_deliver(delivery_id=delivery.id, now=now + timedelta(seconds=30)) is None
    result = webhook_deliver(delivery_id=delivery.id, now=now + timedelta(seconds=70))
    assert result.delivery_status == DeliveryStatus.SUCCEEDED and result.attempt == 2
    assert len(receiver.requests) == 2


def test_the_backoff_doubles_up_to_the_cap(settings):
    settings.TESSERA_WEBHOOK_RETRY_BASE_SECONDS = 60
    settings.TESSERA_WEBHOOK_RETRY_MAX_SECONDS = 3600
    expected = [60, 120, 240, 480, 960, 1920, 3600, 3600]
    for attempts_made, seconds in enumerate(expected, start=1):
        delay = retry_delay(attempts_made).total_seconds()
        assert seconds <= delay <= seconds * 1.1
    # With 8 attempts, the last comes about two hours after the first.
    assert sum(expected[:7]) == 7380


def test_a_delivery_being_sent_is_not_sent_twice_and_a_dead_attempt_is_logged_lost(receiver, subscribe):
    subscribe(receiver.url, events=["consent.changed"])
    change()
    fan_out_only()
    delivery = WebhookDelivery.objects.get()
    now = timezone.now()
    assert _claim(delivery.id, now=now) is not None  # a worker claimed it, then died
    assert webhook_deliver(delivery_id=delivery.id, now=now + timedelta(seconds=1)) is None
    assert receiver.requests == []

    result = webhook_deliver(delivery_id=delivery.id, now=now + LEASE + timedelta(seconds=1))
    assert result.delivery_status == DeliveryStatus.SUCCEEDED
    log = list(delivery.attempt_log.order_by("number").values_list("number", "outcome"))
    assert log == [(1, AttemptOutcome.LOST), (2, AttemptOutcome.SUCCEEDED)]
    assert len(receiver.requests) == 1


def test_a_delivered_event_is_never_sent_again(receiver, subscribe):
    subscribe(receiver.url, events=["consent.changed"])
    change()
    webhooks_relay()
    delivery = WebhookDelivery.objects.get()
    later = timezone.now() + timedelta(days=1)
    assert webhook_deliver(delivery_id=delivery.id, now=later) is None
    webhooks_relay(now=later)
    assert len(receiver.requests) == 1 and WebhookDelivery.objects.count() == 1


def test_redirects_are_not_followed(make_receiver, subscribe):
    elsewhere = make_receiver()
    redirecting = make_receiver(status=307, location=elsewhere.url)
    subscribe(redirecting.url, events=["consent.changed"])
    change()
    webhooks_relay()
    assert elsewhere.requests == []
    attempt = WebhookAttempt.objects.get()
    assert (attempt.outcome, attempt.status_code) == (AttemptOutcome.FAILED, 307)


def test_a_slow_receiver_times_out(make_receiver, subscribe, settings):
    settings.TESSERA_WEBHOOK_TIMEOUT_SECONDS = 1
    slow = make_receiver(delay=1.3)
    subscribe(slow.url, events=["consent.changed"])
    change()
    webhooks_relay()
    attempt = WebhookAttempt.objects.get()
    assert attempt.outcome == AttemptOutcome.FAILED and attempt.error == "TimeoutError"
    assert attempt.status_code is None


def test_deleting_a_subscription_cancels_what_it_had_pending(receiver, subscribe, fast_retries):
    created = subscribe(receiver.url, events=["consent.changed"])
    change()
    receiver.status = 503
    webhooks_relay()
    webhook_delete(subscription_id=created.subscription.id)
    webhooks_relay()
    assert len(receiver.requests) == 1
    assert WebhookDelivery.objects.get().status == DeliveryStatus.CANCELLED
    assert WebhookAttempt.objects.count() == 1  # the log is kept


def test_running_the_relay_twice_creates_each_delivery_once(receiver, subscribe):
    subscribe(receiver.url, events=["consent.changed"])
    change(), change()
    fan_out_only()
    fan_out_only()
    assert WebhookDelivery.objects.count() == 2
    webhooks_relay()
    assert len(receiver.requests) == 2


def test_private_addresses_are_refused_on_connection_in_production_mode(receiver, subscribe, settings):
    subscribe(receiver.url, events=["consent.changed"])  # allowed when created (development)
    settings.TESSERA_WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    change()
    webhooks_relay()
    assert receiver.requests == []
    assert WebhookAttempt.objects.get().error == "AddressNotAllowed"
