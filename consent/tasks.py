"""Celery tasks of the consent app: thin wrappers over services, ids only."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from consent.services.checkpoints import ledger_checkpoint_scheduled
from consent.services.dsr import DSR_PROCESS_TASK
from consent.services.dsr import dsr_process as dsr_process_service
from consent.services.dsr import dsr_process_pending as dsr_process_pending_service
from consent.services.retention import retention_purge as retention_purge_service
from consent.services.verification import LEDGER_VERIFICATION_TASK
from consent.services.verification import ledger_verification_run as ledger_verification_run_service

TRANSIENT_ERRORS = (OperationalError, ConnectionError, TimeoutError)


@shared_task(name=DSR_PROCESS_TASK, ignore_result=True, acks_late=True, autoretry_for=TRANSIENT_ERRORS,
             retry_backoff=10, retry_backoff_max=300, retry_jitter=True, max_retries=5, time_limit=1800,
             soft_time_limit=1700)
def dsr_process(request_id: str) -> None:
    dsr_process_service(request_id=request_id)


@shared_task(name="consent.dsr_process_pending", ignore_result=True, autoretry_for=TRANSIENT_ERRORS,
             retry_backoff=30, max_retries=3)
def dsr_process_pending() -> int:
    return dsr_process_pending_service()


@shared_task(name="consent.retention_purge", ignore_result=True, acks_late=True, autoretry_for=TRANSIENT_ERRORS,
             retry_backoff=60, retry_backoff_max=900, retry_jitter=True, max_retries=5, time_limit=3600,
             soft_time_limit=3500)
def retention_purge() -> dict:
    return retention_purge_service()


@shared_task(name="consent.ledger_checkpoint_create", ignore_result=True, autoretry_for=TRANSIENT_ERRORS,
             retry_backoff=60, max_retries=3, time_limit=3600, soft_time_limit=3500)
def ledger_checkpoint_create() -> str | None:
    return ledger_checkpoint_scheduled()


@shared_task(name=LEDGER_VERIFICATION_TASK, ignore_result=True, acks_late=True,
             reject_on_worker_lost=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=30, max_retries=3,
             time_limit=3600, soft_time_limit=3500)
def ledger_verification_run(verification_id: int) -> None:
    ledger_verification_run_service(verification_id=verification_id)
