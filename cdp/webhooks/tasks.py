"""Celery tasks of the webhooks app: thin wrappers over services, ids only.

Delivery retries (a receiver down for hours) are scheduled in the database and picked up
by the relay (see services/delivery.py); the declarative retries below are for our own
transient failures, such as the database restarting under a worker.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.core.cache import cache
from django.db import InterfaceError, OperationalError

from cdp.core.broker import enqueue
from cdp.webhooks.services.batches import webhook_deliver_batch as webhook_deliver_batch_service
from cdp.webhooks.services.delivery import webhook_deliver as webhook_deliver_service
from cdp.webhooks.services.relay import (
    WEBHOOK_DELIVER_BATCH_TASK,
    WEBHOOK_DELIVER_TASK,
    batch_task_unmark,
    relay_has_work,
)
from cdp.webhooks.services.relay import webhooks_relay as webhooks_relay_service

logger = logging.getLogger(__name__)

TRANSIENT_ERRORS = (OperationalError, InterfaceError)
WAKE_KEY = "webhooks:relay-wake"
WAKE_WINDOW_SECONDS = 5


@shared_task(name="webhooks.webhooks_relay", ignore_result=True, acks_late=True,
             autoretry_for=TRANSIENT_ERRORS, retry_backoff=5, retry_backoff_max=60, retry_jitter=True,
             max_retries=5, soft_time_limit=240, time_limit=270)
def webhooks_relay() -> None:
    cache.delete(WAKE_KEY)  # before reading: a commit from now on queues a new run
    webhooks_relay_service()


@shared_task(name=WEBHOOK_DELIVER_TASK, ignore_result=True, acks_late=True,
             autoretry_for=TRANSIENT_ERRORS, retry_backoff=5, retry_backoff_max=60, retry_jitter=True,
             max_retries=5, soft_time_limit=60, time_limit=90)
def webhook_deliver(delivery_id: str) -> None:
    webhook_deliver_service(delivery_id=delivery_id)


@shared_task(name=WEBHOOK_DELIVER_BATCH_TASK, ignore_result=True, acks_late=True,
             autoretry_for=TRANSIENT_ERRORS, retry_backoff=5, retry_backoff_max=60, retry_jitter=True,
             max_retries=5, soft_time_limit=60, time_limit=90)
def webhook_deliver_batch(subscription_id: str) -> None:
    batch_task_unmark(subscription_id)  # before claiming: a relay run from now on may queue another
    webhook_deliver_batch_service(subscription_id=subscription_id)


def relay_wake() -> None:
    """Called after a commit that wrote outbox rows (registered in apps.py).

    A burst of commits (an import) needs one relay run, not one each: a run queued and
    not yet started will read their changes too, so while one is queued no other is.
    A commit while nobody listens and nothing waits wakes nothing (relay_has_work).
    """
    if not relay_has_work():
        return
    try:
        first = cache.add(WAKE_KEY, 1, timeout=WAKE_WINDOW_SECONDS)
    except Exception:  # the cache is only an optimization
        logger.warning("webhooks_wake_cache_unavailable", exc_info=True)
        first = True
    if first:
        enqueue(webhooks_relay)  # the broker away: beat's relay sweep delivers the rows later


def relay_sweep() -> None:
    """Beat's periodic relay, for the in-process mode (registered in apps.py): due retries
    and anything a lost wake-up left behind."""
    if relay_has_work():
        webhooks_relay.delay()
