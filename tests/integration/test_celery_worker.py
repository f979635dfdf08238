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
