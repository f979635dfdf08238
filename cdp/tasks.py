"""Celery tasks of the profile domain: thin wrappers over services, ids and numbers only."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from cdp.crypto import data_keys_rotate as data_keys_rotate_service
from cdp.services.event_partitions import event_partitions_ensure as event_partitions_ensure_service

TRANSIENT_ERRORS = (OperationalError, ConnectionError, TimeoutError)


@shared_task(name="cdp.data_keys_rotate", acks_late=True, autoretry_for=TRANSIENT_ERRORS,
             retry_backoff=10, retry_backoff_max=300, retry_jitter=True, max_retries=5)
def data_keys_rotate(batch_size: int = 1000) -> int:
    """Rewrap data keys under the active master key; safe to run twice (resumable)."""
    return data_keys_rotate_service(batch_size=batch_size)


@shared_task(name="cdp.event_partitions_ensure", ignore_result=True, acks_late=True, autoretry_for=TRANSIENT_ERRORS,
             retry_backoff=10, retry_backoff_max=300, retry_jitter=True, max_retries=5)
def event_partitions_ensure() -> int:
    """This month's and the next months' event partitions (PostgreSQL); safe to run twice."""
    return len(event_partitions_ensure_service())
