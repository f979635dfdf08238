"""Idempotency-Key: replay, reuse with another body, expiry, concurrency, and what is stored."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from api_helpers import CANARY, CANARY_EMAIL, is_problem, post_profiles, record
from django.db import IntegrityError, connection
from django.utils import timezone
from rest_framework.test import APIClient

from cdp.core.http.models import IdempotencyRecord, IdempotencyStatus
from cdp.models import Event, Item, Profile, Source, SourceRecord
from cdp.services import resolution

pytestmark = pytest.mark.django_db


def test_the_same_batch_sent_three_times_is_stored_once_and_replayed(api_client, shop):
    records = [record("o-1", email="a@example.com"), record("o-2", email="bad")]
    responses = [post_profiles(api_client, "shop", *records, **{"Idempotency-Key": "batch-1"}) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert responses[0].json() == responses[1].json() == responses[2].json()
    assert "Idempotent-Replayed" not in responses[0]
    assert responses[1]["Idempotent-Replayed"] == "true" and responses[2]["Idempotent-Replayed"] == "true"
    assert SourceRecord.objects.count() == 1 and Profile.objects.count() == 1
    stored = IdempotencyRecord.objects.get()
    assert stored.status == IdempotencyStatus.COMPLETED and stored.response_status == 200
    assert abs(stored.expires_at - stored.created_at - timedelta(hours=24)) < timedelta(seconds=5)


def test_without_a_key_a_resend_is_processed_again(api_client, shop):
    post_profiles(api_client, "shop", record("o-1", email="a@example.com"))
    again = post_profiles(api_client, "shop", record("o-1", email="a@example.com"))
    assert again.json()["results"][0]["status"] == "unchanged"
    assert not IdempotencyRecord.objects.exists()


def test_the_same_key_with_a_different_body_is_422(api_client, shop):
    post_profiles(api_client, "shop", record("o-1", email="a@example.com"), **{"Idempotency-Key": "k"})
    response = post_profiles(api_client, "shop", record("o-2", email="b@example.com"), **{"Idempotency-Key": "k"})
    assert is_problem(response, 422, "idempotency_key_reused")
    assert SourceRecord.objects.count() == 1


def test_a_record_hashed_by_the_earlier_recipe_still_replays_and_still_refuses_another_body(api_client, shop):
    # Hashes stored before the orjson recipe live 24 hours: a retry across the upgrade replays.
    import json

    from cdp.core.pseudonyms import keyed_digest

    body = {"source": "shop", "records": [record("o-1", email="a@example.com")]}
    first = api_client.post("/api/v1/profiles/batch", body, format="json", headers={"Idempotency-Key": "old"})
    stored = IdempotencyRecord.objects.get()
    canonical = json.dumps({"path": "/api/v1/profiles/batch", "if_match": None, "body": body}, sort_keys=True,
                           separators=(",", ":"), default=str)
    legacy = keyed_digest(canonical, purpose="idempotency-request")
    assert stored.request_hash != legacy
    IdempotencyRecord.objects.filter(pk=stored.pk).update(request_hash=legacy)
    reordered = {"records": body["records"], "source": "shop"}  # the same JSON object
    replay = api_client.post("/api/v1/profiles/batch", reordered, format="json", headers={"Idempotency-Key": "old"})
    assert replay.status_code == 200 and replay["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    other = {"source": "shop", "records": [record("o-2", email="b@example.com")]}
    refused = api_client.post("/api/v1/profiles/batch", other, format="json", headers={"Idempotency-Key": "old"})
    assert is_problem(refused, 422, "idempotency_key_reused")
    assert SourceRecord.objects.count() == 1


def test_keys_are_scoped_to_the_api_key_and_the_endpoint(make_client, shop):
    first, second = make_client(), make_client()
    body = record("o-1", email="a@example.com")
    assert post_profiles(first, "shop", body, **{"Idempotency-Key": "k"}).status_code == 200
    other_key = post_profiles(second, "shop", body, **{"Idempotency-Key": "k"})
    assert other_key.status_code == 200 and "Idempotent-Replayed" not in other_key
    items = first.post("/api/v1/items/batch", {"items": [{"id": "i1", "title": "T", "category": "c"}]},
                       format="json", headers={"Idempotency-Key": "k"})
    assert items.status_code == 200 and "Idempotent-Replayed" not in items


def test_a_failed_request_leaves_no_record_so_the_key_can_be_reused(api_client, shop):
    failed = post_profiles(api_client, "nowhere", record("o-1", email="a@example.com"), **{"Idempotency-Key": "k"})
    assert failed.status_code == 422
    assert not IdempotencyRecord.objects.exists()
    fixed = post_profiles(api_client, "shop", record("o-1", email="a@example.com"), **{"Idempotency-Key": "k"})
    assert fixed.status_code == 200 and "Idempotent-Replayed" not in fixed


def test_an_expired_record_no_longer_replays(api_client, shop):
    post_profiles(api_client, "shop", record("o-1", email="a@example.com"), **{"Idempotency-Key": "k"})
    IdempotencyRecord.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = post_profiles(api_client, "shop", record("o-1", email="a@example.com"), **{"Idempotency-Key": "k"})
    assert "Idempotent-Replayed" not in response
    assert response.json()["results"][0]["status"] == "unchanged"
    assert IdempotencyRecord.objects.count() == 1


def test_a_committed_in_progress_record_answers_409(api_client, shop):
    """Never left by our own requests (same transaction), but honoured if ever found."""
    from cdp.core.http.models import ApiKey

    body = {"source": "shop", "records": [record("o-1", email="a@example.com")]}
    post_profiles(api_client, "shop", *body["records"], **{"Idempotency-Key": "k"})
    IdempotencyRecord.objects.update(status=IdempotencyStatus.IN_PROGRESS)
    response = post_profiles(api_client, "shop", *body["records"], **{"Idempotency-Key": "k"})
    assert is_problem(response, 409, "idempotency_key_in_use")
    assert ApiKey.objects.count() == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "ключ", "has space"])
def test_a_malformed_idempotency_key_is_400(api_client, shop, key):
    response = post_profiles(api_client, "shop", record("o-1", email="a@example.com"), **{"Idempotency-Key": key})
    assert is_problem(response, 400, "invalid_idempotency_key")
    assert not SourceRecord.objects.exists()


def test_every_write_endpoint_replays(api_client, shop):
    event = {"source": "shop", "events": [{"profile": {"email": "a@example.com"}, "type": "view", "item_id": "i1",
                                          "message_id": "m1"}]}
    items = {"items": [{"id": "i1", "title": "T", "category": "c"}]}
    for url, body in (("/api/v1/events/batch", event), ("/api/v1/items/batch", items)):
        first = api_client.post(url, body, format="json", headers={"Idempotency-Key": "same"})
        second = api_client.post(url, body, format="json", headers={"Idempotency-Key": "same"})
        assert first.status_code == second.status_code == 200
        assert first.json() == second.json() and second["Idempotent-Replayed"] == "true"
    assert Event.objects.count() == 1 and Item.objects.count() == 1


def test_a_replayed_patch_answers_the_first_response_and_etag(api_client, shop):
    profile_id = post_profiles(api_client, "shop", record("o-1", email="a@example.com")).json()["results"][0][
        "profile_id"]
    etag = api_client.get(f"/api/v1/profiles/{profile_id}")["ETag"]
    kwargs = {"format": "json", "headers": {"If-Match": etag, "Idempotency-Key": "fix-1"}}
    first = api_client.patch(f"/api/v1/profiles/{profile_id}", {"attributes": {"first_name": "Ana"}}, **kwargs)
    second = api_client.patch(f"/api/v1/profiles/{profile_id}", {"attributes": {"first_name": "Ana"}}, **kwargs)
    assert first.status_code == second.status_code == 200
    assert second["Idempotent-Replayed"] == "true"
    assert first.json() == second.json() and first["ETag"] == second["ETag"]
    assert SourceRecord.objects.filter(source__key="operator").count() == 1


def test_idempotency_records_hold_no_personal_data(api_client, shop):
    post_profiles(api_client, "shop",
                  record("o-1", email=CANARY_EMAIL, attributes={"nickname": CANARY}),
                  record("o-2", email=f"{CANARY}@@", phone=CANARY),
                  **{"Idempotency-Key": "pii-check"})
    profile_id = Profile.objects.get().pk
    api_client.patch(f"/api/v1/profiles/{profile_id}", {"attributes": {"nickname": CANARY + "2"}}, format="json",
                     headers={"If-Match": "*", "Idempotency-Key": "pii-patch"})
    rows = list(IdempotencyRecord.objects.values())
    assert len(rows) == 2
    dumped = repr(rows)
    assert CANARY not in dumped and CANARY_EMAIL not in dumped and "canary" not in dumped.lower()


def test_resolution_retries_inside_the_idempotency_transaction(api_client, shop, monkeypatch):
    """profiles_ingest retries on IntegrityError; nested in our transaction its atomic block
    is a savepoint, and rolling back to it must leave the outer transaction usable."""
    original = resolution._Resolver.run
    calls = {"n": 0}

    def flaky(self, records):
        calls["n"] += 1
        if calls["n"] == 1:
            Source.objects.create(key="shop", name="duplicate", kind="first_party")  # a real unique violation
        return original(self, records)

    monkeypatch.setattr(resolution._Resolver, "run", flaky)
    response = post_profiles(api_client, "shop", record("o-1", email="a@example.com"), **{"Idempotency-Key": "r"})
    assert response.status_code == 200, response.content
    assert calls["n"] == 2
    assert response.json()["results"][0]["status"] == "created"
    assert Profile.objects.count() == 1 and IdempotencyRecord.objects.count() == 1


def test_a_retry_that_keeps_failing_rolls_back_everything(api_client, shop, monkeypatch):
    def always(self, records):
        raise IntegrityError("simulated")

    monkeypatch.setattr(resolution._Resolver, "run", always)
    response = post_profiles(api_client, "shop", record("o-1", email="a@example.com"), **{"Idempotency-Key": "r"})
    assert is_problem(response, 500, "internal_error")
    assert not IdempotencyRecord.objects.exists() and not Profile.objects.exists()


# --- concurrency (PostgreSQL) ---------------------------------------------------------------

@pytest.mark.postgres
def test_concurrent_requests_with_one_key_apply_once(postgres, transactional_db, make_client, source_factory,
                                                     monkeypatch):
    source_factory("shop")
    client = make_client("profiles:write")
    original = resolution.profiles_ingest

    def slow(**kwargs):
        time.sleep(0.5)  # hold the first request open while the others arrive
        return original(**kwargs)

    monkeypatch.setattr("cdp.api.v1.views.profiles.profiles_ingest", slow)
    body = [record("o-1", email="a@example.com"), record("o-2", email="b@example.com")]
    barrier, responses = threading.Barrier(4), []

    def send():
        try:
            own = APIClient()
            own.credentials(HTTP_AUTHORIZATION=f"Bearer {client.api_key}")
            barrier.wait()
            responses.append(post_profiles(own, "shop", *body, **{"Idempotency-Key": "race"}))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(r.status_code for r in responses)
    fresh = [r for r in responses if r.status_code == 200 and "Idempotent-Replayed" not in r]
    assert len(fresh) == 1, statuses
    assert all(r.status_code == 409 or r.get("Idempotent-Replayed") == "true" for r in responses if r not in fresh)
    assert 409 in statuses  # the others arrived while the first was still running
    assert SourceRecord.objects.count() == 2 and Profile.objects.count() == 2
    assert IdempotencyRecord.objects.count() == 1
    replay = post_profiles(client, "shop", *body, **{"Idempotency-Key": "race"})
    assert replay["Idempotent-Replayed"] == "true" and replay.json() == fresh[0].json()
