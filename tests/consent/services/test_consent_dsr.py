"""Data-subject requests end to end: the access export holds everything, erasure leaves nothing."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import uuid

import pytest
from django.db import connection
from rest_framework.test import APIClient

from cdp.api.services.api_keys import api_key_create
from cdp.core.errors import Conflict
from cdp.models import AttributeValue, Event, Identity, Profile, SourceRecord
from cdp.segment.models import IngestionError
from cdp.segment.services import segment_messages_ingest
from cdp.services.corrections import profile_correct
from cdp.services.events import events_ingest
from cdp.services.imports import movielens_import
from cdp.services.resolution import profiles_ingest
from consent.ledger import ledger_verify
from consent.models import AccessLog, ConsentEvent, DataSubjectRequest, DsrApprovalRule, DsrAuditEntry
from consent.notices import notice_served
from consent.services import consent_set
from consent.services.dsr import (
    dsr_approve,
    dsr_as_dict,
    dsr_extend,
    dsr_get,
    dsr_reject,
    dsr_result,
    dsr_submit,
)

pytestmark = pytest.mark.django_db

CANARY = {
    "email": "dsr.canary.5521@example.org",
    "phone": "+447911125521",
    "crm_id": "DSR-CANARY-5521",
    "first_name": "Wenceslava",
    "last_name": "Quarterbridge",
    "postal_address": "9 Lantern Yard",
    "segment_user": "seg-canary-5521",
    "segment_trait": "Zanzibarian",
    "error_trait": "Oxbowfield",
    "ml_user": "905521",
}


def write_movielens(directory, user_id: str) -> None:
    directory.mkdir(exist_ok=True)
    (directory / "movies.csv").write_text("movieId,title,genres\n1,Toy Story (1995),Animation|Comedy\n")
    (directory / "ratings.csv").write_text(f"userId,movieId,rating,timestamp\n{user_id},1,4.0,964982703\n")


@pytest.fixture
def person(source_factory, tmp_path):
    """One person whose data arrives through every path: CRM batch, third party, events,
    Segment (with a malformed message logged), a MovieLens import, consents and notices."""
    crm = source_factory("crm", trust=90)
    broker = source_factory("broker", kind="third_party", trust=10)
    web = source_factory("web")
    profiles_ingest(source=broker, records=[{"external_id": "b-1", "identifiers": {"email": CANARY["email"]},
                                             "attributes": {"postal_address": CANARY["postal_address"]}}])
    [result] = profiles_ingest(source=crm, records=[{
        "external_id": "crm-5521",
        "identifiers": {"email": CANARY["email"], "phone": CANARY["phone"], "crm_id": CANARY["crm_id"]},
        "attributes": {"first_name": CANARY["first_name"], "last_name": CANARY["last_name"], "country": "GB"}}])
    profile_id = uuid.UUID(result.profile_id)
    events_ingest(source=crm, events=[{"profile": {"email": CANARY["email"]}, "type": "purchase",
                                       "item_id": "SKU-5521", "quantity": 2, "price": 12.5, "message_id": "m-1"}])
    segment_messages_ingest(source=web, messages=[
        {"type": "identify", "userId": CANARY["segment_user"], "messageId": "s-1",
         "traits": {"email": CANARY["email"], "nickname": CANARY["segment_trait"]}},
        {"type": "track", "userId": CANARY["segment_user"], "event": "Product Viewed", "messageId": "s-2",
         "properties": {"product_id": "SKU-77"}},
        {"type": "identify", "userId": CANARY["segment_user"], "messageId": "s-3",
         "traits": {"email": CANARY["email"], "nickname": CANARY["error_trait"]}, "timestamp": "not a time"},
    ])
    ml = tmp_path / "ml"
    write_movielens(ml, CANARY["ml_user"])
    movielens_import(path=str(ml), source_key="movielens")
    profiles_ingest(source=source_factory("movielens-link"), records=[{
        "external_id": "link-1", "identifiers": {"email": CANARY["email"]}}])
    from cdp.models import Source

    profiles_ingest(source=Source.objects.get(key="movielens"), records=[{
        "external_id": f"user-{CANARY['ml_user']}",
        "identifiers": {"user_id": CANARY["ml_user"], "email": CANARY["email"]}}])
    consent_set(profile_id=profile_id, purpose="enrichment", granted=True, channel="preference_center")
    consent_set(profile_id=profile_id, purpose="marketing", granted=True, channel="cmp")
    consent_set(profile_id=profile_id, purpose="marketing", granted=False, channel="api")
    notice_served(profile_id=profile_id, purpose="marketing")
    return {"profile_id": profile_id, "sources": {"crm": crm, "broker": broker, "web": web}, "ml_dir": ml}


def run_request(django_capture_on_commit_callbacks, **kwargs) -> DataSubjectRequest:
    with django_capture_on_commit_callbacks(execute=True):
        request = dsr_submit(channel="api", actor="api_key:test", **kwargs)
    return dsr_get(request_id=request.id)


def test_the_access_export_holds_every_piece_of_data(person, django_capture_on_commit_callbacks):
    assert Profile.objects.filter(status="active").count() == 1  # every path reached the same person
    request = run_request(django_capture_on_commit_callbacks, request_type="access",
                          identifiers={"email": CANARY["email"].upper()})
    assert request.status == "completed" and request.profile_id == person["profile_id"]
    document = dsr_result(request, reader="api_key:test")
    text = json.dumps(document)
    for name, value in CANARY.items():
        assert value in text, f"{name} missing from the access export"
    data = document["data"]
    assert {"profile", "identities", "attributes", "source_records", "events", "consents", "consent_history",
            "consent_receipts", "served_notices", "data_subject_requests", "access_log",
            "ingestion_errors"} <= set(data)
    assert {e["type"] for e in data["events"]} >= {"purchase", "view", "rating"}
    assert [e["channel"] for e in data["consent_history"]] == ["preference_center", "cmp", "api"]
    assert len(data["consent_receipts"]) == 3 and data["consent_receipts"][0]["version"] == "KI-CR-v1.1.0"
    assert {r["source"] for r in data["source_records"]} >= {"crm", "broker", "web", "movielens"}
    assert data["attributes"][0]["source"]  # lineage
    assert data["served_notices"][0]["purpose"] == "marketing"
    # Reading the export is itself in the access log.
    assert AccessLog.objects.filter(profile_id=person["profile_id"], purpose="dsr_access").exists()
    # Nothing personal is stored in the clear with the request: the export is sealed.
    row = DataSubjectRequest.objects.get(pk=request.id)
    assert CANARY["email"].encode() not in bytes(row.sealed_result)
    assert row.identifier_kinds == ["email"]


def test_an_unknown_person_gets_found_false(db, django_capture_on_commit_callbacks):
    request = run_request(django_capture_on_commit_callbacks, request_type="access",
                          identifiers={"email": "nobody@example.org"})
    assert request.status == "completed"
    assert dsr_as_dict(request, reader="t")["result"] == {"found": False}


def test_rectification_sets_and_removes_attributes(person, django_capture_on_commit_callbacks):
    pid = person["profile_id"]
    request = run_request(django_capture_on_commit_callbacks, request_type="rectification",
                          identifiers={"crm_id": CANARY["crm_id"]}, source="crm",
                          changes={"attributes": {"first_name": "Wendy", "last_name": None}})
    assert request.status == "completed", request.reason
    assert request.summary["attributes_set"] == 1 and request.summary["attributes_removed"] == 1
    assert request.sealed_changes is None and request.sealed_key is None  # shredded once applied
    from cdp.selectors import profile_unified_view

    view = profile_unified_view(profile_id=pid)
    assert view["attributes"]["first_name"]["value"] == "Wendy"
    assert "last_name" not in view["attributes"]
    from cdp.services.attributes import attributes_rebuild
    from cdp.services.profiles import profile_dek

    attributes_rebuild(profile_id=pid, dek=profile_dek(Profile.objects.get(pk=pid)))  # nothing brings it back
    assert "last_name" not in profile_unified_view(profile_id=pid)["attributes"]


def test_approval_rejection_extension_and_the_audit_trail(person, django_capture_on_commit_callbacks):
    DsrApprovalRule.objects.create(type="erasure", requires_approval=True)
    request = run_request(django_capture_on_commit_callbacks, request_type="erasure",
                          identifiers={"email": CANARY["email"]})
    assert request.status == "awaiting_approval"
    original_due = request.due_at
    assert (original_due - request.received_at).days == 30
    dsr_extend(request_id=request.id, actor="staff:alice", days=30, reason="complex request")
    with pytest.raises(Exception, match="already extended"):
        dsr_extend(request_id=request.id, actor="staff:alice", days=10, reason="again")
    dsr_reject(request_id=request.id, actor="staff:alice", reason="Identity could not be verified.")
    request = dsr_get(request_id=request.id)
    assert request.status == "rejected" and (request.due_at - original_due).days == 30
    assert dsr_as_dict(request)["reason"] == "Identity could not be verified."
    actions = list(DsrAuditEntry.objects.filter(request=request).order_by("id").values_list("action", flat=True))
    assert actions == ["received", "extended", "rejected"]
    assert AccessLog.objects.filter(kind="operator_action", purpose="dsr_rejected", actor="staff:alice").exists()
    second = run_request(django_capture_on_commit_callbacks, request_type="erasure",
                         identifiers={"email": CANARY["email"]})
    with django_capture_on_commit_callbacks(execute=True):
        dsr_approve(request_id=second.id, actor="staff:bob")
    assert dsr_get(request_id=second.id).status == "completed"


def counts() -> tuple:
    return tuple(m.objects.count() for m in (Profile, SourceRecord, Identity, Event, AttributeValue, IngestionError))


def api(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def reingest_everywhere(person, source_factory) -> list[str]:
    """Send the erased person again through every ingestion path; the statuses answered."""
    from cdp.models import Source
    from cdp.services.sources import source_create

    statuses = []
    crm = person["sources"]["crm"]
    record = {"external_id": "crm-5521-again", "identifiers": {"email": CANARY["email"], "crm_id": CANARY["crm_id"]},
              "attributes": {"first_name": CANARY["first_name"]}}
    statuses += [r.status for r in profiles_ingest(source=crm, records=[record])]
    statuses += [r.status for r in events_ingest(source=crm, events=[
        {"profile": {"phone": CANARY["phone"]}, "type": "view", "item_id": "SKU-1"}])]
    _, key = api_key_create(name="reingest", scopes=["profiles:write", "events:write"])
    client = api(key)
    body = client.post("/api/v1/profiles/batch", {"source": "crm", "records": [record]}, format="json").json()
    statuses += [r["status"] for r in body["results"]]
    body = client.post("/api/v1/events/batch", {"source": "crm", "events": [
        {"profile": {"email": CANARY["email"]}, "type": "view", "item_id": "SKU-1"}]}, format="json").json()
    statuses += [r["status"] for r in body["results"]]
    # Segment over HTTP (write key as the Basic user name), identify and track.
    web, write_key = Source.objects.get(key="web"), None
    source_two, write_key = source_create(key="web2", name="Web 2", kind="first_party", trust=50)
    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    for path, message in (("/v1/identify", {"userId": "u-new", "traits": {"email": CANARY["email"],
                                                                          "nickname": CANARY["segment_trait"]}}),
                          ("/v1/track", {"userId": "u-new", "event": "Product Viewed",
                                         "context": {"traits": {"email": CANARY["email"]}},
                                         "properties": {"product_id": "SKU-9"}})):
        response = APIClient().post(path, message, format="json", HTTP_AUTHORIZATION=auth)
        assert response.status_code == 200
    outcome = segment_messages_ingest(source=web, messages=[
        {"type": "identify", "userId": CANARY["segment_user"], "traits": {"email": CANARY["email"]}},
        {"type": "identify", "userId": CANARY["segment_user"], "traits": {"email": CANARY["email"]},
         "timestamp": "broken"}])
    statuses += ["suppressed"] * outcome.suppressed
    assert outcome.failed == 0
    report = movielens_import(path=str(person["ml_dir"]), source_key="movielens")
    statuses += [status for status in report.profiles] + [status for status in report.events]
    # The admin/operator path: corrections refuse a suppressed identifier.
    [other] = profiles_ingest(source=source_factory("shop"), records=[
        {"external_id": "x", "identifiers": {"email": "someone.else@example.org"}}])
    with pytest.raises(Conflict, match="erased person"):
        profile_correct(profile_id=other.profile_id, attributes={}, identifiers={"email": CANARY["email"]},
                        expected_versions=None)
    return statuses


def test_erasure_end_to_end(person, source_factory, django_capture_on_commit_callbacks):
    pid = person["profile_id"]
    access = run_request(django_capture_on_commit_callbacks, request_type="access",
                         identifiers={"email": CANARY["email"]})
    history_before = ConsentEvent.objects.filter(profile_id=pid).count()
    request = run_request(django_capture_on_commit_callbacks, request_type="erasure",
                          identifiers={"phone": CANARY["phone"]})
    assert request.status == "completed", request.reason
    assert request.summary["found"] and request.summary["consent_ledger"] == "kept"
    # The earlier export is shredded; a new access request finds no one.
    assert dsr_result(dsr_get(request_id=access.id), reader="t") == {"found": True, "expired": True}
    again = run_request(django_capture_on_commit_callbacks, request_type="access",
                        identifiers={"email": CANARY["email"]})
    assert dsr_as_dict(again, reader="t")["result"] == {"found": False}
    # The ledger still verifies and still holds the person's consent history.
    assert ledger_verify().intact
    assert ConsentEvent.objects.filter(profile_id=pid).count() == history_before == 3
    assert not IngestionError.objects.exists()
    from cdp.core.models import OutboxMessage

    assert OutboxMessage.objects.filter(topic="profile.erased", payload__profile_id=str(pid)).exists()
    before = counts()
    statuses = reingest_everywhere(person, source_factory)
    assert statuses and set(statuses) == {"suppressed"}, statuses
    after = counts()
    assert after[0] == before[0] + 1  # only the unrelated "someone else" of the correction check
    assert after[3] == before[3] and after[5] == before[5]


@pytest.mark.django_db(transaction=True)
def test_after_erasure_a_pg_dump_holds_none_of_their_identifiers_or_values(postgres, source_factory, tmp_path,
                                                                             django_capture_on_commit_callbacks):
    from django.core.management import call_command

    person = person_fixture(source_factory, tmp_path)
    run_request(django_capture_on_commit_callbacks, request_type="access", identifiers={"email": CANARY["email"]})
    request = run_request(django_capture_on_commit_callbacks, request_type="erasure",
                          identifiers={"email": CANARY["email"]})
    assert request.status == "completed", request.reason
    reingest_everywhere(person, source_factory)
    db = connection.settings_dict
    dump = subprocess.run(
        [shutil.which("pg_dump"), "-h", db["HOST"] or "127.0.0.1", "-p", str(db["PORT"] or 5432),
         "-U", db["USER"] or "postgres", "--no-owner", db["NAME"]],
        capture_output=True, check=True, timeout=120).stdout
    assert b"consent_consentevent" in dump
    for name, value in CANARY.items():
        for form in (value.encode(), value.lower().encode(), base64.b64encode(value.encode())):
            assert form not in dump, f"{name} found in pg_dump after erasure"
    assert ledger_verify().intact
    call_command("verify_consent_ledger", "--no-checkpoint")


def person_fixture(source_factory, tmp_path):
    return person.__wrapped__(source_factory, tmp_path)


def test_a_failing_handler_marks_the_request_failed_and_a_lost_one_is_redispatched(
        person, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    from consent import registry
    from consent.services.dsr import dsr_process_pending

    def broken(**kwargs):
        raise RuntimeError("disk on fire")

    registry.register(registry.EXPORT, broken)
    try:
        request = run_request(django_capture_on_commit_callbacks, request_type="access",
                              identifiers={"email": CANARY["email"]})
    finally:
        registry.unregister(registry.EXPORT, broken)
    assert request.status == "failed" and "RuntimeError" in request.reason
    assert "disk" not in request.reason
    # A request whose task was lost is picked up by the periodic sweep.
    lost = dsr_submit(request_type="access", channel="api", actor="t", identifiers={"email": CANARY["email"]})
    DataSubjectRequest.objects.filter(pk=lost.id).update(received_at=timezone.now() - timedelta(hours=1))
    assert dsr_process_pending() == 1
    assert dsr_get(request_id=lost.id).status == "completed"
