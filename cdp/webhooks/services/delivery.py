"""Sending one delivery: claim it, POST it signed, log the attempt, schedule a retry.

A delivery is claimed in a short transaction (the attempt counter goes up and the due
time moves a lease ahead), sent with no transaction open, and recorded in another, so
a slow receiver never holds a database lock and two workers never send it at once.
Once a receiver has answered 2xx the delivery is `succeeded` and is never sent again.
The only way a receiver sees an event twice is a worker dying between the receiver's
2xx and our record of it; receivers dedupe on `Tessera-Event-Id` for that.

Retries follow the database, not the broker: a failed attempt sets `next_attempt_at`
(exponential backoff from TESSERA_WEBHOOK_RETRY_BASE_SECONDS, capped), and the relay
queues it again when it is due. Long countdowns parked in a Redis broker are re-sent
after its visibility timeout and die with it; a due time in a table does neither.

Reads the subscription's secrets (decrypted in memory only) and the outbox row (ids and
purposes only); the log holds status codes, error classes and durations, no bodies.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cdp.core.changes import iso_timestamp
from cdp.core.models import OutboxMessage
from cdp.webhooks import http, signing
from cdp.webhooks.models import AttemptOutcome, DeliveryStatus, WebhookAttempt, WebhookDelivery
from cdp.webhooks.services.subscriptions import webhook_signing_secrets

logger = logging.getLogger(__name__)

# Longer than the delivery task's hard time limit, so a lease outlives the attempt that holds it.
LEASE = timedelta(minutes=5)


@dataclass(frozen=True)
class _Claim:
    delivery_id: object
    attempt_id: int
    number: int
    url: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class AttemptResult:
    delivery_status: str
    attempt: int
    status_code: int | None
    error: str


def webhook_deliver(*, delivery_id, now: datetime | None = None) -> AttemptResult | None:
    """Make one attempt at a due delivery; None when it is not due, done or being sent."""
    now = now or timezone.now()
    claim = _claim(delivery_id, now=now)
    if claim is None:
        return None
    outcome = http.post(claim.url, body=claim.body, headers=claim.headers,
                        timeout=settings.TESSERA_WEBHOOK_TIMEOUT_SECONDS)
    return _record(claim, outcome, finished_at=now + timedelta(milliseconds=outcome.duration_ms))


def event_document(message: OutboxMessage) -> dict:
    """One change as a receiver gets it: ids and purposes only, as in the change feed."""
    return {"id": str(message.event_id), "type": message.topic,
            "occurred_at": iso_timestamp(message.created_at), "data": message.payload}


def event_body(message: OutboxMessage) -> bytes:
    return json.dumps(event_document(message), separators=(",", ":")).encode()


def retry_delay(attempts_made: int) -> timedelta:
    """Wait before the next attempt: base, 2x base, 4x base ... up to the cap, +0-10% jitter.

    With the defaults (60 s base, 1 h cap, 8 attempts) the last attempt is about two
    hours after the first; the jitter spreads retries to a receiver that comes back.
    """
    base = settings.TESSERA_WEBHOOK_RETRY_BASE_SECONDS
    seconds = min(settings.TESSERA_WEBHOOK_RETRY_MAX_SECONDS, base * 2 ** max(attempts_made - 1, 0))
    return timedelta(seconds=seconds * (1 + 0.1 * random.random()))


def _claim(delivery_id, *, now: datetime) -> _Claim | None:
    with transaction.atomic():
        delivery = (WebhookDelivery.objects.select_for_update(of=("self",))
                    .select_related("subscription__data_key", "message").filter(pk=delivery_id).first())
        if delivery is None or delivery.status != DeliveryStatus.PENDING:
            return None
        if delivery.next_attempt_at is None or delivery.next_attempt_at > now:
            return None  # not due yet, or another worker's attempt holds the lease
        subscription = delivery.subscription
        if subscription.deleted_at is not None or subscription.data_key is None:
            delivery.status, delivery.next_attempt_at = DeliveryStatus.CANCELLED, None
            delivery.save(update_fields=["status", "next_attempt_at"])
            return None
        # An attempt still "sending" here was cut off (its worker died): say so in the log.
        WebhookAttempt.objects.filter(delivery=delivery, outcome=AttemptOutcome.SENDING).update(
            outcome=AttemptOutcome.LOST)
        delivery.attempts += 1
        delivery.next_attempt_at = now + LEASE
        delivery.enqueued_at = None
        delivery.save(update_fields=["attempts", "next_attempt_at", "enqueued_at"])
        attempt = WebhookAttempt.objects.create(delivery=delivery, number=delivery.attempts, started_at=now)
        body = event_body(delivery.message)
        secrets = webhook_signing_secrets(subscription, now=now)
    headers = {
        "Tessera-Event-Id": str(delivery.message.event_id),
        "Tessera-Event-Type": delivery.message.topic,
        "Tessera-Signature": signing.signature_header(secrets, timestamp=int(now.timestamp()), body=body),
    }
    return _Claim(delivery.id, attempt.id, attempt.number, subscription.url, body, headers)


def _record(claim: _Claim, outcome: http.HttpOutcome, *, finished_at: datetime) -> AttemptResult:
    with transaction.atomic():
        WebhookAttempt.objects.filter(pk=claim.attempt_id).update(
            outcome=AttemptOutcome.SUCCEEDED if outcome.ok else AttemptOutcome.FAILED,
            duration_ms=outcome.duration_ms, status_code=outcome.status_code, error=outcome.error)
        delivery = WebhookDelivery.objects.select_for_update().get(pk=claim.delivery_id)
        # Only the latest attempt moves the schedule; any 2xx ends the delivery for good.
        if delivery.status == DeliveryStatus.PENDING and (outcome.ok or delivery.attempts == claim.number):
            delivery.last_status_code = outcome.status_code
            if outcome.ok:
                delivery.status, delivery.delivered_at, delivery.next_attempt_at = (
                    DeliveryStatus.SUCCEEDED, finished_at, None)
            elif delivery.attempts >= settings.TESSERA_WEBHOOK_MAX_ATTEMPTS:
                delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
            else:
                delivery.next_attempt_at = finished_at + retry_delay(delivery.attempts)
            delivery.save(update_fields=["status", "delivered_at", "next_attempt_at", "last_status_code"])
    logger.info("webhook_attempt", extra={
        "delivery": str(claim.delivery_id), "attempt": claim.number, "status_code": outcome.status_code,
        "error": outcome.error, "duration_ms": outcome.duration_ms, "delivery_status": delivery.status})
    return AttemptResult(delivery.status, claim.number, outcome.status_code, outcome.error)
