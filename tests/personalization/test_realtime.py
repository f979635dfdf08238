"""Real-time recommendations: new events and a consent grant refresh a person's list
between pipeline runs, through the real model, in-process (SQLite or PostgreSQL)."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from prometheus_client import generate_latest
from rest_framework.test import APIClient

from cdp.core.observability import REGISTRY
from cdp.services.events import events_ingest
from consent.services import consent_set
from personalization.models import Recommendation, RefreshPending
from personalization.services import realtime, realtime_pending

# Real commits: the refresh runs after the ingestion commits, never inside its transaction.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("refresh_in_process")]


def recommendations(profile_id) -> dict:
    from cdp.api.services.api_keys import api_key_create

    _, plaintext = api_key_create(name="test", scopes=["recommendations:read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    response = client.get(f"/api/v1/profiles/{profile_id}/recommendations")
    assert response.status_code == 200, response.content[:300]
    return response.json()


def segment_track(write_key: str, body: dict):
    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    response = APIClient().post("/v1/track", data=json.dumps(body), content_type="application/json",
                                HTTP_AUTHORIZATION=auth)
    assert response.status_code == 200, response.content[:300]


def refreshes_counted(monkeypatch) -> list:
    calls = []
    original = realtime.recommendations_refresh

    def counting(**kwargs):
        calls.append(sorted(str(p) for p in kwargs["profile_ids"]))
        return original(**kwargs)

    monkeypatch.setattr(realtime, "recommendations_refresh", counting)
    return calls


def test_a_segment_purchase_removes_the_item_and_shows_in_the_explanations(served):
    index = next(i for i, pid in enumerate(served.profile_ids) if pid in served.personalization and i % 7)
    person = served.profile_ids[index]
    before = recommendations(person)
    bought = before["recommendations"][0]["item_id"]
    assert before["as_of"] is not None

    segment_track(served.write_key, {
        "userId": f"u{index}", "event": "Order Completed", "messageId": "order-rt-1",
        "timestamp": "2026-12-01T10:00:00Z",
        "properties": {"order_id": "o-rt-1", "products": [{"product_id": bought, "price": 12, "quantity": 1}]}})

    after = recommendations(person)
    assert bought not in [r["item_id"] for r in after["recommendations"]]
    assert after["recommendations"], "the refreshed list is not empty"
    history = [b for r in after["recommendations"] for b in r["explanation"]["because_of"]]
    assert any(b["item_id"] == bought and b["action"] for b in history), history
    assert after["as_of"].startswith("2026-12-01T10:00:00")
    assert after["generated_at"] >= before["generated_at"]
    assert b"tessera_recommendations_refresh_lag_seconds_count" in generate_latest(REGISTRY)


def test_many_events_of_one_person_make_one_refresh(served, monkeypatch):
    calls = refreshes_counted(monkeypatch)
    person = sorted(served.personalization)[0]
    events_ingest(source=served.source, events=[
        {"profile_id": str(person), "type": "view", "item_id": served.item_ids[i % 30],
         "occurred_at": f"2026-11-0{1 + i % 9}T12:00:00Z", "message_id": f"burst-{i}"} for i in range(25)])
    assert calls == [[str(person)]]


def test_people_without_personalization_get_no_list(served, monkeypatch):
    person = next(pid for pid in served.profile_ids if pid not in served.personalization)
    events_ingest(source=served.source, events=[
        {"profile_id": str(person), "type": "purchase", "item_id": served.item_ids[0],
         "occurred_at": "2026-11-01T12:00:00Z", "message_id": "no-consent-1"}])
    assert not Recommendation.objects.filter(profile_id=person).exists()


def test_turning_personalization_back_on_computes_the_list_at_once(served):
    person = sorted(served.personalization)[1]
    assert Recommendation.objects.filter(profile_id=person).exists()
    consent_set(profile_id=person, purpose="personalization", granted=False)
    assert not Recommendation.objects.filter(profile_id=person).exists()
    consent_set(profile_id=person, purpose="personalization", granted=True)
    body = recommendations(person)
    assert len(body["recommendations"]) == 10 and body["as_of"] is not None


def test_the_served_model_keeps_nobody_s_interactions(served):
    from personalization.services.artifacts import artifact_load

    run = realtime.served_run()
    payload = artifact_load(run.id)
    assert payload["row_of"] == {} and payload["model"].model.interactions.shape[0] == 0
    assert payload["model"].model.interactions.shape[1] == len(served.item_ids)


def test_grants_of_one_transaction_make_one_refresh(served, monkeypatch):
    from django.db import transaction

    people = sorted(served.personalization)[2:5]
    for person in people:
        consent_set(profile_id=person, purpose="personalization", granted=False)
    calls = refreshes_counted(monkeypatch)
    with transaction.atomic():
        for person in people:
            consent_set(profile_id=person, purpose="personalization", granted=True)
    assert calls == [sorted(str(p) for p in people)]
    assert all(Recommendation.objects.filter(profile_id=p).count() == 10 for p in people)


def test_without_a_broker_events_refresh_only_when_asked(settings, monkeypatch):
    """In-process, the refresh would run in the ingesting process: off unless
    TESSERA_REALTIME_IN_PROCESS is on (a grant still computes at once)."""
    drains = []
    monkeypatch.setattr(realtime_pending, "refresh_pending_drain_in_process", lambda: drains.append(1))
    person = uuid.uuid4()
    settings.TASKS_IN_PROCESS = True  # no broker (CI sets one)
    settings.TESSERA_REALTIME_IN_PROCESS = False
    realtime_pending.events_refresh_schedule({person}, 0.0)
    assert drains == [] and not RefreshPending.objects.exists()
    settings.TESSERA_REALTIME_IN_PROCESS = True
    realtime_pending.events_refresh_schedule({person}, 0.0)
    assert drains == [1] and RefreshPending.objects.filter(profile_id=person).count() == 1


def test_a_drained_batch_stores_what_the_pipeline_stored(served, monkeypatch):
    """With no new events, refreshing everyone through the drain (several batches) rewrites
    the run's rows exactly: the same features, segment, list, scores and explanations."""
    from datetime import datetime

    from personalization.models import PipelineRun, ProfileFeatures, SegmentMembership
    from personalization.services import features, segments

    def stored() -> tuple[list, list, list]:
        recs = Recommendation.objects.order_by("profile_id", "rank").values_list(
            "profile_id", "rank", "item_id", "title", "score", "explanation", "model_version", "as_of")
        feats = ProfileFeatures.objects.order_by("profile_id").values_list(*features.FIELDS)
        members = SegmentMembership.objects.order_by("profile_id").values_list(*segments.MEMBERSHIP_FIELDS)
        return list(recs), list(feats), list(members)

    pipeline_rows = stored()
    assert all(pipeline_rows), "the pipeline stored recommendations, features and segments"
    # Features count up to the refresh's now: the run's as_of here, so recency matches.
    as_of = datetime.fromisoformat(PipelineRun.objects.get(id=served.run_id).params["as_of"])
    monkeypatch.setattr(realtime.timezone, "now", lambda: as_of)
    monkeypatch.setattr(realtime, "REFRESH_BATCH", 15)
    Recommendation.objects.all().delete()
    ProfileFeatures.objects.all().delete()
    SegmentMembership.objects.all().delete()
    RefreshPending.objects.bulk_create([RefreshPending(profile_id=pid, committed_at=as_of)
                                        for pid in served.profile_ids])

    assert realtime_pending.refresh_pending_drain(until_empty=True) == len(served.profile_ids)

    assert stored() == pipeline_rows
