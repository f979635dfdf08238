"""Tasks go through a real broker and a real worker process."""

from __future__ import annotations

import os

import pytest

from cdp import crypto
from cdp.selectors import profile_unified_view
from cdp.services.resolution import profiles_ingest
from cdp.tasks import data_keys_rotate

pytestmark = [pytest.mark.integration, pytest.mark.broker]


def test_key_rotation_runs_in_a_worker_process(celery_worker, source_factory, settings):
    old_key, new_key = os.urandom(32), os.urandom(32)
    settings.TESSERA_MASTER_KEYS = [old_key]
    shop = source_factory("shop")
    results = profiles_ingest(source=shop, records=[
        {"external_id": str(i), "identifiers": {"email": f"w{i}@example.com"}} for i in range(30)])
    settings.TESSERA_MASTER_KEYS = [new_key, old_key]
    worker = celery_worker(master_keys=[new_key, old_key])
    async_result = data_keys_rotate.delay(batch_size=7)
    assert async_result.get(timeout=120) == 30
    assert worker.poll() is None  # the work happened in the worker, which is still up
    settings.TESSERA_MASTER_KEYS = [new_key]
    assert crypto.data_keys_pending_rotation() == 0
    assert profile_unified_view(profile_id=results[0].profile_id)["identifiers"]["email"] == ["w0@example.com"]


def test_ledger_verification_runs_in_a_worker_process(celery_worker):
    """"Verify now" queues a task; a real worker runs it and records the outcome."""
    import time
    import uuid

    from consent.models import AccessLog, LedgerVerification
    from consent.services import consent_set
    from consent.services.verification import ledger_verification_request

    for _ in range(5):
        consent_set(profile_id=uuid.uuid4(), purpose="analytics", granted=True)
    worker = celery_worker()
    verification, started = ledger_verification_request(actor="staff:3")
    assert started and verification.status == "queued"  # the request only queued it
    deadline = time.monotonic() + 120
    while LedgerVerification.objects.get(id=verification.id).active and time.monotonic() < deadline:
        time.sleep(0.2)
    verification.refresh_from_db()
    assert verification.status == "passed" and verification.detail["events"] == 5
    assert AccessLog.objects.get(purpose="ledger_verified").actor == "staff:3"
    assert worker.poll() is None
