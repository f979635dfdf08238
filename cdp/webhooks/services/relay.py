"""The relay: new changes become deliveries, and due deliveries are queued.

The relay is one consumer of the change feed: it reads outbox rows in feed order after
its own stored position (OutboxConsumer "webhooks"), so it never misses a row committed
late, and it never locks outbox rows (the feed's stamper does). It runs when a commit
wrote outbox rows (a wake-up, see apps.py) and every TESSERA_WEBHOOK_RELAY_INTERVAL_SECONDS
from beat, which also retries deliveries whose backoff has passed. Running it twice at
once is safe: the consumer row serializes fan-out, and a delivery exists once per
(subscription, change).

Reads outbox rows (ids and purposes only) and subscriptions; logs counts only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from cdp.core.broker import task_named
from cdp.core.changes import changes_high_water, changes_stamp
from cdp.core.models import OutboxConsumer, OutboxMessage
from cdp.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookSubscription

logger = logging.getLogger(__name__)

CONSUMER = "webhooks"
BATCH_SIZE = 500
MAX_BATCHES = 20  # per run; the next wake-up or sweep continues
ENQUEUE_LIMIT = 1000
WEBHOOK_DELIVER_TASK = "webhooks.webhook_deliver"  # cdp.webhooks.tasks.webhook_deliver
# A delivery queued this long ago whose task never ran (lost message) is queued again.
ENQUEUE_GRACE = timedelta(minutes=2)


@dataclass(frozen=True)
class RelayResult:
    changes_read: int
    deliveries_created: int
    deliveries_queued: int


def webhooks_relay(*, now: datetime | None = None, batch_size: int = BATCH_SIZE) -> RelayResult:
    """Fan out changes committed since the last run, then queue every due delivery."""
    read = created = 0
    # With no subscription there is nothing to fan out: stamping is left to the change
    # feed's readers (changes_list stamps before it reads), and the fan-out below only
    # moves past what they stamped. An ingestion batch then costs the relay two reads.
    listening = WebhookSubscription.objects.filter(deleted_at__isnull=True).exists()
    for _ in range(MAX_BATCHES):
        if listening:
            changes_stamp()
        batch_read, batch_created = deliveries_fan_out(batch_size=batch_size, now=now)
        read, created = read + batch_read, created + batch_created
        if batch_read < batch_size:
            break
    queued = deliveries_queue_due(now=now)
    if read or queued:
        logger.info("webhooks_relayed", extra={"changes": read, "deliveries": created, "queued": queued})
    return RelayResult(read, created, queued)


def relay_has_work() -> bool:
    """Whether a relay run could do anything now: someone listens (a pending delivery
    always belongs to a live subscription: deleting one cancels its deliveries).

    Checked before waking the relay after a commit: with nobody listening, a run would
    only move its position past changes nobody will hear of, which beat's periodic sweep
    does anyway (and a new subscription never hears of changes older than itself).
    """
    return WebhookSubscription.objects.filter(deleted_at__isnull=True).exists()


def deliveries_fan_out(*, batch_size: int = BATCH_SIZE, now: datetime | None = None) -> tuple[int, int]:
    """One batch of stamped changes after the relay's position becomes deliveries due at
    `now`; returns (changes read, deliveries created)."""
    now = now or timezone.now()
    OutboxConsumer.objects.get_or_create(name=CONSUMER)
    with transaction.atomic():
        consumer = OutboxConsumer.objects.select_for_update().get(name=CONSUMER)
        # Only changes stamped before the subscriptions are read: a subscription too new
        # to be seen below is newer than every change up to `top`.
        top = changes_high_water()
        subscriptions = list(WebhookSubscription.objects.filter(deleted_at__isnull=True)
                             .only("id", "events", "created_at"))
        if not subscriptions:
            # Nobody to tell: move past every stamped change without reading them (an
            # ingestion batch writes one change per profile it touches).
            skipped = max(0, top - consumer.position)
            if skipped:
                consumer.position = top
                consumer.save(update_fields=["position", "updated_at"])
            return skipped, 0
        # Stamped positions become visible as a gap-free prefix, so reading past our
        # position in one statement never jumps over a row that shows up later.
        messages = list(OutboxMessage.objects.filter(position__gt=consumer.position, position__lte=top)
                        .only("id", "topic", "created_at", "position").order_by("position")[:batch_size])
        if not messages:
            return 0, 0
        deliveries = [
            WebhookDelivery(subscription_id=s.id, message_id=m.id, next_attempt_at=now)
            for m in messages for s in subscriptions
            # A subscription hears of changes made after it existed, not of history.
            if m.topic in s.events and s.created_at <= m.created_at
        ]
        WebhookDelivery.objects.bulk_create(deliveries, ignore_conflicts=True)
        consumer.position = messages[-1].position
        consumer.save(update_fields=["position", "updated_at"])
    return len(messages), len(deliveries)


def deliveries_queue_due(*, now: datetime | None = None, limit: int = ENQUEUE_LIMIT) -> int:
    """Queue a delivery task for each pending delivery whose time has come."""
    now = now or timezone.now()
    with transaction.atomic():
        due = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
            .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=now - ENQUEUE_GRACE))
            .order_by("next_attempt_at").values_list("id", flat=True)[:limit]
        )
        WebhookDelivery.objects.filter(id__in=due).update(enqueued_at=now)
    # After the commit above, so a worker that picks a task up sees the delivery's state.
    for delivery_id in due:
        task_named(WEBHOOK_DELIVER_TASK).delay(str(delivery_id))
    return len(due)
