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
from itertools import zip_longest

from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from cdp.core.broker import task_named
from cdp.core.bulk import insert_rows
from cdp.core.changes import changes_high_water, changes_stamp
from cdp.core.ids import new_uuid4
from cdp.core.models import OutboxConsumer, OutboxMessage
from cdp.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookSubscription

logger = logging.getLogger(__name__)

CONSUMER = "webhooks"
BATCH_SIZE = 2000
MAX_BATCHES = 10  # per run; the next wake-up or sweep continues
ENQUEUE_LIMIT = 1000
WEBHOOK_DELIVER_TASK = "webhooks.webhook_deliver"  # cdp.webhooks.tasks.webhook_deliver
WEBHOOK_DELIVER_BATCH_TASK = "webhooks.webhook_deliver_batch"  # cdp.webhooks.tasks.webhook_deliver_batch
# A delivery queued this long ago whose task never ran (lost message) is queued again.
ENQUEUE_GRACE = timedelta(minutes=2)
BATCH_TASK_KEY = "webhooks:batch-task"


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
    queued = 0
    for batch in range(MAX_BATCHES):
        if listening:
            changes_stamp()
        batch_read, batch_created = deliveries_fan_out(batch_size=batch_size, now=now)
        read, created = read + batch_read, created + batch_created
        if batch_read < batch_size:
            break
        if batch == 0:  # a long backlog: the first deliveries start before the rest is fanned out
            queued += deliveries_queue_due(now=now)
    queued += deliveries_queue_due(now=now)
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
        # position in one statement never jumps over a row that shows up later. Changes
        # older than every subscription concern none of them: skipped in the same
        # statement, so a new subscription never waits while the relay reads history.
        earliest = min(s.created_at for s in subscriptions)
        pending = OutboxMessage.objects.filter(position__gt=consumer.position, position__lte=top)
        messages = list(pending.filter(created_at__gte=earliest).order_by("position")
                        .values_list("id", "topic", "created_at", "position")[:batch_size])
        if not messages:
            if top > consumer.position:  # only history nobody hears of: move past it
                consumer.position = top
                consumer.save(update_fields=["position", "updated_at"])
            return 0, 0
        # Plain rows (COPY on PostgreSQL): the consumer row lock above and the position
        # moving in this transaction mean no change is fanned out twice.
        deliveries = [
            (new_uuid4(), s.id, message_id, DeliveryStatus.PENDING, 0, now, now)
            for message_id, topic, created_at, _ in messages for s in subscriptions
            # A subscription hears of changes made after it existed, not of history.
            if topic in s.events and s.created_at <= created_at
        ]
        insert_rows(WebhookDelivery, ("id", "subscription_id", "message_id", "status", "attempts",
                                      "next_attempt_at", "created_at"), deliveries)
        # A short batch read everything relevant up to `top`: the rest is history.
        consumer.position = messages[-1][3] if len(messages) == batch_size else top
        consumer.save(update_fields=["position", "updated_at"])
    return len(messages), len(deliveries)


def batch_task_mark(subscription_id) -> bool:
    """Whether to queue a batch task for this subscription now: not while one is queued and
    has not started (it clears the mark), nor for ENQUEUE_GRACE after a lost one."""
    try:
        return cache.add(f"{BATCH_TASK_KEY}:{subscription_id}", 1, timeout=int(ENQUEUE_GRACE.total_seconds()))
    except Exception:  # the cache is only an optimization: a second task splits the work
        logger.warning("webhooks_batch_mark_unavailable", exc_info=True)
        return True


def batch_task_unmark(subscription_id) -> None:
    try:
        cache.delete(f"{BATCH_TASK_KEY}:{subscription_id}")
    except Exception:
        logger.warning("webhooks_batch_mark_unavailable", exc_info=True)


def deliveries_queue_due(*, now: datetime | None = None, limit: int | None = None) -> int:
    """Queue the pending deliveries whose time has come, every subscription its share.

    Shared out per subscription (up to `limit` tasks a run in all), so one receiver's
    backlog never holds up another's fresh change. A subscription that batches gets one
    task, which sends its due deliveries `batch_size` at a time. Returns the tasks queued.
    """
    now = now or timezone.now()
    limit = ENQUEUE_LIMIT if limit is None else limit
    subscriptions = list(WebhookSubscription.objects.filter(deleted_at__isnull=True).values_list("id", "batch_size"))
    if not subscriptions:
        return 0
    share = max(1, limit // len(subscriptions))
    singles: list[list] = []
    batched: list = []
    with transaction.atomic():
        for subscription_id, batch_size in subscriptions:
            due = list(
                WebhookDelivery.objects.select_for_update(skip_locked=True)
                .filter(subscription_id=subscription_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
                .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=now - ENQUEUE_GRACE))
                .order_by("next_attempt_at").values_list("id", flat=True)[:share if batch_size == 1 else 1]
            )
            if not due:
                continue
            if batch_size > 1:
                # One task for the subscription (it claims what is due itself), while
                # none is queued and not yet started.
                if batch_task_mark(subscription_id):
                    batched.append(subscription_id)
                continue
            WebhookDelivery.objects.filter(id__in=due).update(enqueued_at=now)
            singles.append(due)
    # After the commit above, so a worker that picks a task up sees the deliveries' state.
    # Taken in turns, so run in-process (one after another) no receiver waits for the others.
    for subscription_id in batched:
        task_named(WEBHOOK_DELIVER_BATCH_TASK).delay(str(subscription_id))
    turns = [delivery_id for group in zip_longest(*singles) for delivery_id in group if delivery_id is not None]
    for delivery_id in turns:
        task_named(WEBHOOK_DELIVER_TASK).delay(str(delivery_id))
    return len(batched) + len(turns)
