"""The consent and DSR endpoints of CONTRACT.md."""

from __future__ import annotations

import json
import uuid

import pytest
from rest_framework.test import APIClient

from cdp.api.services.api_keys import api_key_create
from cdp.services.erasure import profile_erase
from cdp.services.resolution import profiles_ingest
from consent import policy
from consent.models import AccessLog, ConsentEvent
from consent.services import consent_set

pytestmark = pytest.mark.django_db

ALL_SCOPES = ["consent:read", "consent:write", "audit:read", "dsr:read", "dsr:write", "dsr:export", "profiles:read"]


def client_with(scopes=ALL_SCOPES) -> APIClient:
    _, key = api_key_create(name="test", scopes=scopes)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def people(source_factory):
    crm = source_factory("crm")
    results = profiles_ingest(source=crm, records=[
        {"external_id": "1", "identifiers": {"email": "ann@example.com", "crm_id": "C-1"},
         "attributes": {"first_name": "Ann"}},
        {"external_id": "2", "identifiers": {"email": "bob@example.com"}}])
    return [uuid.UUID(r.profile_id) for r in results]


def test_get_lists_every_purpose_and_put_changes_only_the_listed_ones(people):
    ann, _ = people
    client = client_with()
    body = client.get(f"/api/v1/profiles/{ann}/consents").json()
    assert [c["purpose"] for c in body["consents"]] == ["analytics", "personalization", "marketing", "enrichment",
                                                       "sale_sharing"]
    assert all(c["granted"] is False and c["basis"] == "consent" and c["notice_version"] == 1
               for c in body["consents"])
    response = client.put(f"/api/v1/profiles/{ann}/consents", {
        "channel": "preference_center", "consents": [{"purpose": "marketing", "granted": True},
                                                     {"purpose": "analytics", "granted": True, "notice_version": 1}]},
        format="json", REMOTE_ADDR="198.51.100.7", HTTP_USER_AGENT="TestAgent/1")
    assert response.status_code == 200
    states = {c["purpose"]: c for c in response.json()["consents"]}
    assert states["marketing"]["granted"] and states["analytics"]["granted"] and not states["enrichment"]["granted"]
    assert states["marketing"]["updated_at"]
    event = ConsentEvent.objects.get(profile_id=ann, purpose="marketing")
    assert event.actor.startswith("api_key:") and event.ip_hash and "198.51" not in event.ip_hash


def test_auth_scopes_and_problem_details(people):
    ann, _ = people
    assert APIClient().get(f"/api/v1/profiles/{ann}/consents").status_code == 401
    response = client_with(["consent:read"]).put(f"/api/v1/profiles/{ann}/consents",
                                                 {"channel": "api", "consents": []}, format="json")
    assert response.status_code == 403 and response.json()["missing_scope"] == "consent:write"
    client = client_with()
    response = client.put(f"/api/v1/profiles/{ann}/consents",
                          {"channel": "fax", "consents": [{"purpose": "x", "granted": "maybe"}]}, format="json")
    assert response.status_code == 400 and response["Content-Type"] == "application/problem+json"
    assert {e["field"] for e in response.json()["errors"]} >= {"channel"}
    assert client.get(f"/api/v1/profiles/{uuid.uuid4()}/consents").status_code == 404
    assert client.get("/api/v1/profiles/not-a-uuid/consents").status_code == 404
    profile_erase(profile_id=people[1])
    response = client.get(f"/api/v1/profiles/{people[1]}/consents")
    assert response.status_code == 410 and response.json()["code"] == "erased"


def test_sec_gpc_records_a_sale_sharing_opt_out_as_its_own_event(people):
    ann, _ = people
    consent_set(profile_id=ann, purpose="sale_sharing", granted=True)
    client = client_with()
    response = client.put(f"/api/v1/profiles/{ann}/consents", {
        "channel": "preference_center", "consents": [{"purpose": "analytics", "granted": True}]},
        format="json", HTTP_SEC_GPC="1")
    states = {c["purpose"]: c for c in response.json()["consents"]}
    assert states["sale_sharing"]["granted"] is False and states["analytics"]["granted"] is True
    gpc = ConsentEvent.objects.get(profile_id=ann, channel="gpc")
    assert gpc.purpose == "sale_sharing" and not gpc.granted
    client.get(f"/api/v1/profiles/{ann}/consents", HTTP_SEC_GPC="1")
    assert ConsentEvent.objects.filter(profile_id=ann, channel="gpc").count() == 1


def test_batch_from_a_cmp_or_crm(people):
    ann, bob = people
    client = client_with()
    body = {"channel": "crm_sync", "source": "crm", "records": [
        {"profile": {"crm_id": "C-1"}, "purpose": "marketing", "granted": True},
        {"profile_id": str(bob), "purpose": "analytics", "granted": True, "occurred_at": "2026-01-02T03:04:05Z"},
        {"profile": {"email": "ann@example.com"}, "purpose": "marketing", "granted": True},
        {"profile": {"email": "nobody@example.com"}, "purpose": "marketing", "granted": True},
        {"profile_id": str(ann), "purpose": "telepathy", "granted": True},
        {"profile_id": str(ann), "purpose": "marketing", "granted": True, "notice_version": 42},
        "not an object",
    ]}
    response = client.post("/api/v1/consents/batch", body, format="json", HTTP_IDEMPOTENCY_KEY="batch-1")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["recorded", "recorded", "unchanged", "unknown_profile", "rejected",
                                              "rejected", "rejected"]
    assert results[0]["profile_id"] == str(ann) and results[0]["event_id"]
    assert results[4]["errors"][0]["code"] == "purpose_unknown"
    assert results[5]["errors"][0]["code"] == "notice_unknown"
    assert policy.is_allowed(ann, "marketing") and policy.is_allowed(bob, "analytics")
    replay = client.post("/api/v1/consents/batch", body, format="json", HTTP_IDEMPOTENCY_KEY="batch-1")
    assert replay.json() == response.json() and replay["Idempotent-Replayed"] == "true"
    assert ConsentEvent.objects.count() == 2
    scoped = client.post("/api/v1/consents/batch", {"channel": "cmp", "records": [
        {"profile": {"crm_id": "C-1"}, "purpose": "marketing", "granted": False}]}, format="json")
    assert scoped.json()["results"][0]["errors"][0]["code"] == "source_required"
    too_many = {"channel": "cmp", "records": [{"profile_id": str(ann), "purpose": "analytics", "granted": True}] * 1001}
    assert client.post("/api/v1/consents/batch", too_many, format="json").status_code == 413


def test_the_event_list_is_paginated_and_filtered(people):
    ann, bob = people
    for purpose in ("analytics", "marketing", "personalization"):
        consent_set(profile_id=ann, purpose=purpose, granted=True)
    consent_set(profile_id=bob, purpose="analytics", granted=True)
    client = client_with()
    first = client.get("/api/v1/consents/events?limit=2").json()
    assert len(first["results"]) == 2 and first["next_cursor"]
    second = client.get(f"/api/v1/consents/events?limit=2&cursor={first['next_cursor']}").json()
    assert len(second["results"]) == 2 and second["next_cursor"] is None
    assert {e["id"] for e in first["results"]}.isdisjoint({e["id"] for e in second["results"]})
    only = client.get(f"/api/v1/consents/events?profile={bob}&purpose=analytics").json()["results"]
    assert len(only) == 1 and only[0]["profile_id"] == str(bob) and only[0]["evidence"]
    assert client_with(["consent:read"]).get("/api/v1/consents/events").status_code == 403


def test_exports_are_streamed_as_csv_or_json_lines(people):
    ann, bob = people
    consent_set(profile_id=ann, purpose="analytics", granted=True)
    consent_set(profile_id=ann, purpose="analytics", granted=False)
    consent_set(profile_id=bob, purpose="marketing", granted=True)
    client = client_with()
    response = client.get("/api/v1/consents/export?format=csv&kind=history")
    assert response.status_code == 200 and response.streaming and response["Content-Type"] == "text/csv"
    lines = b"".join(response.streaming_content).decode().strip().splitlines()
    assert lines[0].startswith("id,profile_id,position,purpose,granted") and len(lines) == 4
    response = client.get("/api/v1/consents/export?format=jsonl&kind=current")
    rows = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert {(r["profile_id"], r["purpose"], r["granted"]) for r in rows} == {
        (str(ann), "analytics", False), (str(bob), "marketing", True)}
    future = client.get("/api/v1/consents/export?format=jsonl&from=2999-01-01T00:00:00Z")
    assert b"".join(future.streaming_content) == b""
    assert client.get("/api/v1/consents/export?format=xml").status_code == 400
    assert AccessLog.objects.filter(purpose="consent_export").count() == 3


def test_a_kantara_receipt_for_every_change(people):
    ann, bob = people
    consent_set(profile_id=ann, purpose="personalization", granted=True, channel="preference_center")
    event = ConsentEvent.objects.get(profile_id=ann)
    client = client_with()
    receipt = client.get(f"/api/v1/profiles/{ann}/consent-receipts/{event.id}").json()
    assert receipt["version"] == "KI-CR-v1.1.0" and receipt["consentReceiptID"] == str(event.id)
    assert receipt["piiPrincipalId"] == str(ann) and receipt["collectionMethod"] == "preference_center"
    assert receipt["services"][0]["purposes"][0]["consentType"] == "EXPLICIT"
    assert {"jurisdiction", "consentTimestamp", "language", "piiControllers", "policyUrl", "sensitive",
            "spiCat"} <= set(receipt)
    assert client.get(f"/api/v1/profiles/{bob}/consent-receipts/{event.id}").status_code == 404


def test_dsr_over_the_api(people, django_capture_on_commit_callbacks):
    client = client_with()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/v1/dsr", {"type": "access", "identifiers": {"email": "ann@example.com"}},
                               format="json", HTTP_IDEMPOTENCY_KEY="dsr-1")
    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"id", "type", "status", "due_at"} and body["status"] == "received"
    detail = client.get(f"/api/v1/dsr/{body['id']}").json()
    assert detail["status"] == "completed"
    assert detail["result"]["data"]["identities"][0]["value"] in ("ann@example.com", "C-1")
    assert "ann@example.com" not in json.dumps(body)
    assert client.post("/api/v1/dsr", {"type": "access", "identifiers": {"crm_id": "C-1"}},
                       format="json").status_code == 400
    assert client.post("/api/v1/dsr", {"type": "erasure", "identifiers": {}}, format="json").status_code == 400
    assert client.get(f"/api/v1/dsr/{uuid.uuid4()}").status_code == 404
    assert client_with(["dsr:read"]).post("/api/v1/dsr", {"type": "access", "identifiers": {
        "email": "ann@example.com"}}, format="json").status_code == 403


def test_profile_reads_through_the_api_are_in_the_access_log(people):
    ann, _ = people
    response = client_with().get(f"/api/v1/profiles/{ann}")
    assert response.status_code == 200
    entry = AccessLog.objects.get(profile_id=ann, kind="read")
    assert entry.actor.startswith("api_key:") and entry.purpose == "api_profile_read"
    assert "attributes.first_name" in entry.fields and "Ann" not in json.dumps(entry.fields)


def test_notices_and_the_served_notice_log(people):
    ann, _ = people
    client = client_with()
    notices = client.get("/api/v1/notices").json()["results"]
    assert {n["purpose"] for n in notices} == set(policy.PURPOSES if hasattr(policy, "PURPOSES") else
                                                   ["analytics", "personalization", "marketing", "enrichment",
                                                    "sale_sharing"])
    response = client.post(f"/api/v1/profiles/{ann}/notices-served",
                           {"channel": "cmp", "notices": [{"purpose": "marketing", "language": "fr"}]}, format="json")
    assert response.status_code == 204
    from consent.models import ServedNotice

    served = ServedNotice.objects.get(profile_id=ann)
    assert (served.purpose, served.notice_version, served.language, served.channel) == ("marketing", 1, "fr", "cmp")
