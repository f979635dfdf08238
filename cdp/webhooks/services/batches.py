"""Batched deliveries: several changes of one subscription in one POST (opt-in, per
subscription: `batch_size` > 1).

The deliveries stay one row per (subscription, change), with their own attempt counters,
so retries, exactly-once on 2xx and cancellation work as for single ones
(services/delivery.py); the attempt log keeps one row per HTTP attempt, a batch's filed
under its first delivery. A batch is claimed in a short transaction (skip-locked, so two
workers split the backlog instead of waiting), sent with no transaction open, and its
outcome recorded for every delivery in it at once: a 2xx delivers all of them, anything
else schedules each one's retry. The body is `{"events": [change, ...]}` in feed order,
each change exactly the object a single delivery carries; `Tessera-Event-Id` names the
batch (a UUID derived from its changes' ids, the same when the same batch is sent again),
and receivers dedupe on each change's `id`.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from cdp.webhooks import http, signing
from cdp.webhooks.models import AttemptOutcome, DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookSubscription
from cdp.webhooks.services.delivery import LEASE, event_document, retry_delay
from cdp.webhooks.services.subscriptions import MAX_BATCH_SIZE, webhook_signing_secrets

logger = logging.getLogger(__name__)

# One task sends batches for this long at most, then leaves the rest to the next relay run.
TASK_BUDGET_SECONDS = 40
_BATCH_NAMESPACE = uuid.UUID("5b0c6c2e-3f0e-4c55-9d0f-0a7c1d1f3b21")


@dataclass(frozen=True)
class _BatchClaim:
    delivery_ids: list
    numbers: dict  # delivery id -> the attempt number claimed
    attempt_id: int
    last_message_id: int
    url: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class BatchResult:
    sent: int  # POSTs made
    delivered: int  # changes a receiver accepted


def webhook_deliver_batch(*, subscription_id, now: datetime | None = None,
                          budget_seconds: float = TASK_BUDGET_SECONDS) -> BatchResult:
    """Send this subscription's due deliveries, `batch_size` a POST, until none is due,
    one fails or the budget is spent."""
    started = time.monotonic()
    sent = delivered = 0
    after = 0  # the last change claimed: each claim reads on from there, not the whole backlog again
    while time.monotonic() - started < budget_seconds:
        moment = now or timezone.now()
        claim = _claim_batch(subscription_id, now=moment, after=after)
        if claim is None:
            break
        after = claim.last_message_id
        outcome = http.post(claim.url, body=claim.body, headers=claim.headers,
                            timeout=settings.TESSERA_WEBHOOK_TIMEOUT_SECONDS)
        _record_batch(claim, outcome, finished_at=moment + timedelta(milliseconds=outcome.duration_ms))
        sent += 1
        if not outcome.ok:
            break  # the receiver is in trouble: the retries wait for their backoff
        delivered += len(claim.delivery_ids)
    return BatchResult(sent, delivered)


def _claim_batch(subscription_id, *, now: datetime, after: int) -> _BatchClaim | None:
    with transaction.atomic():
        subscription = WebhookSubscription.objects.select_related("data_key").filter(pk=subscription_id).first()
        if subscription is None:
            return None
        pending = WebhookDelivery.objects.filter(subscription_id=subscription_id, status=DeliveryStatus.PENDING)
        if subscription.deleted_at is not None or subscription.data_key is None:
            pending.update(status=DeliveryStatus.CANCELLED, next_attempt_at=None)
            return None
        # In the order changes were written (outbox ids; the feed's order up to commit
        # timing), along the (subscription, message) unique index.
        deliveries = list(pending.filter(next_attempt_at__lte=now, message_id__gt=after)
                          .select_for_update(skip_locked=True, of=("self",))
                          .select_related("message").order_by("message_id")
                          [:max(1, min(subscription.batch_size, MAX_BATCH_SIZE))])
        if not deliveries:
            return None
        ids = [d.id for d in deliveries]
        # Attempts still "sending" were cut off (their worker died): say so in the log.
        retried = [d.id for d in deliveries if d.attempts]
        if retried:
            WebhookAttempt.objects.filter(delivery_id__in=retried, outcome=AttemptOutcome.SENDING).update(
                outcome=AttemptOutcome.LOST)
        # One statement (bulk_update's CASE per row cost more than the POST itself).
        WebhookDelivery.objects.filter(pk__in=ids).update(attempts=F("attempts") + 1, next_attempt_at=now + LEASE,
                                                          enqueued_at=None)
        for delivery in deliveries:
            delivery.attempts += 1
        # The log holds one row per HTTP attempt: a batch's is filed under its first delivery.
        head = deliveries[0]
        attempt = WebhookAttempt.objects.create(delivery_id=head.id, number=head.attempts, started_at=now)
        documents = [event_document(d.message) for d in deliveries]
        secrets = webhook_signing_secrets(subscription, now=now)
    body = json.dumps({"events": documents}, separators=(",", ":")).encode()
    batch_id = uuid.uuid5(_BATCH_NAMESPACE, ",".join(doc["id"] for doc in documents))
    headers = {
        "Tessera-Event-Id": str(batch_id),
        "Tessera-Event-Type": "batch",
        "Tessera-Batch-Size": str(len(documents)),
        "Tessera-Signature": signing.signature_header(secrets, timestamp=int(now.timestamp()), body=body),
    }
    return _BatchClaim(ids, {d.id: d.attempts for d in deliveries}, attempt.id, deliveries[-1].message_id,
                       subscription.url, body, headers)


def _record_batch(claim: _BatchClaim, outcome: http.HttpOutcome, *, finished_at: datetime) -> None:
    """As services/delivery.py records one attempt, for the whole batch in a few statements:
    a 2xx ends every delivery of it; otherwise only a delivery's latest attempt moves its
    schedule (deliveries claimed together share their attempt number, nearly always)."""
    by_number: dict[int, list] = defaultdict(list)
    for delivery_id, number in claim.numbers.items():
        by_number[number].append(delivery_id)
    with transaction.atomic():
        WebhookAttempt.objects.filter(pk=claim.attempt_id).update(
            outcome=AttemptOutcome.SUCCEEDED if outcome.ok else AttemptOutcome.FAILED,
            duration_ms=outcome.duration_ms, status_code=outcome.status_code, error=outcome.error)
        pending = WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING)
        if outcome.ok:
            pending.filter(pk__in=claim.delivery_ids).update(
                status=DeliveryStatus.SUCCEEDED, delivered_at=finished_at, next_attempt_at=None,
                last_status_code=outcome.status_code)
        else:
            for number, ids in by_number.items():
                latest = pending.filter(pk__in=ids, attempts=number)
                if number >= settings.TESSERA_WEBHOOK_MAX_ATTEMPTS:
                    latest.update(status=DeliveryStatus.FAILED, next_attempt_at=None,
                                  last_status_code=outcome.status_code)
                else:
                    latest.update(next_attempt_at=finished_at + retry_delay(number),
                                  last_status_code=outcome.status_code)
    logger.info("webhook_batch_attempt", extra={
        "deliveries": len(claim.delivery_ids), "status_code": outcome.status_code, "error": outcome.error,
        "duration_ms": outcome.duration_ms})
