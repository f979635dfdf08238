"""Retention: per-source and per-kind periods, purged by the periodic task, the purge logged."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from cdp.api.services.api_keys import api_key_create
from cdp.core.http.models import IdempotencyRecord
from cdp.models import DataKey, Event, SourceRecord
from cdp.segment.models import IngestionError
from cdp.segment.services import segment_messages_ingest
from cdp.services.events import events_ingest
from cdp.services.resolution import profiles_ingest
from consent.errors import ConsentError
from consent.models import AccessLog, ServedNotice
from consent.notices import notice_served
from consent.services.retention import retention_purge, retention_rule_set
from consent.tasks import retention_purge as retention_purge_task

pytestmark = pytest.mark.django_db


def test_each_kind_is_purged_after_its_period_per_source(source_factory):
    crm, web = source_factory("crm"), source_factory("web")
    broker = source_factory("broker", kind="third_party")
    profiles_ingest(source=crm, records=[{"external_id": "1", "identifiers": {"email": "a@example.com"}}])
    profiles_ingest(source=broker, records=[{"external_id": "b", "identifiers": {"email": "held@example.com"}}])
    for source in (crm, web):
        events_ingest(source=source, events=[{"profile": {"email": "a@example.com"}, "type": "view", "item_id": "i"}])
    segment_messages_ingest(source=web, messages=[{"type": "identify", "userId": "u", "timestamp": "bad"}])
    key, _ = api_key_create(name="k", scopes=["profiles:write"])
    IdempotencyRecord.objects.create(api_key=key, endpoint="POST x", key="k1", request_hash="h",
                                     expires_at=timezone.now() + timedelta(hours=1))
    notice_served(profile_id=uuid.uuid4(), purpose="marketing")
    retention_rule_set(kind="events", source="web", days=10, actor="staff:op")
    with pytest.raises(ConsentError):
        retention_rule_set(kind="idempotency", source="web", days=1, actor="staff:op")

    assert retention_purge() == {"events": 0, "held_records": 0, "idempotency": 0, "ingestion_errors": 0,
                                 "served_notices": 0, "dsr_results": 0}
    # Eleven days on: only the web source's events are past their (shorter) period.
    counts = retention_purge(now=timezone.now() + timedelta(days=11))
    assert counts["events"] == 1 and Event.objects.get().source == crm
    assert counts["idempotency"] == 1 and not IdempotencyRecord.objects.exists()
    # Three years on, everything with a period is gone; held records with their keys.
    held_key = SourceRecord.objects.get(status="held").held_key_id
    counts = retention_purge(now=timezone.now() + timedelta(days=1200))
    assert counts["events"] == 1 and counts["held_records"] == 1 and counts["ingestion_errors"] == 1
    assert counts["served_notices"] == 1
    assert not Event.objects.exists() and not IngestionError.objects.exists() and not ServedNotice.objects.exists()
    assert not DataKey.objects.filter(pk=held_key).exists()
    assert SourceRecord.objects.filter(status="attached").exists()  # profiles' own records are not events
    purges = AccessLog.objects.filter(kind="operator_action", purpose="retention_purge").order_by("id")
    assert purges.count() == 3 and purges.last().detail["purged"]["events"] == 1


def test_the_task_wraps_the_service():
    assert retention_purge_task.apply().get()["events"] == 0
    assert AccessLog.objects.filter(purpose="retention_purge", actor="system").exists()
