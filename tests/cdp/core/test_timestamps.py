"""Timestamps as CRMs send them: one parser, never an exception, through every endpoint."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdp.core.timestamps import parse_timestamp

moments = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2999, 12, 30))
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@settings(max_examples=300, deadline=None)
@given(moment=moments, zone=offsets, separator=st.sampled_from(["T", " "]), with_offset=st.booleans(),
       fraction=st.sampled_from(["", ".1", ".123", ".123456"]))
def test_every_spelling_of_a_moment_reads_back_as_that_moment(moment, zone, separator, with_offset, fraction):
    moment = moment.replace(microsecond=0)
    micro = int((fraction[1:] + "000000")[:6]) if fraction else 0
    moment = moment.replace(microsecond=micro)
    text = moment.strftime(f"%Y-%m-%d{separator}%H:%M:%S") + fraction
    if with_offset:
        aware = moment.replace(tzinfo=zone)
        text += aware.strftime("%z")[:3] + ":" + aware.strftime("%z")[3:]
        assert parse_timestamp(text) == aware
    else:
        assert parse_timestamp(text) == moment.replace(tzinfo=UTC)  # no offset: UTC


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=40))
def test_any_text_is_a_moment_or_none_never_an_error(text):
    value = parse_timestamp(text)
    assert value is None or value.tzinfo is not None


@pytest.mark.parametrize("text", ["2024-13-01T00:00:00", "2024-02-30", "2024-01-01T25:00:00", "yesterday", "",
                                  "2024-01-01T00:00:00+25:00", "9" * 100, "2024-01-01T00:00:00 PST"])
def test_impossible_or_unknown_values_are_none(text):
    assert parse_timestamp(text) is None


def test_dates_alone_are_midnight_utc():
    assert parse_timestamp("2024-03-01") == datetime(2024, 3, 1, tzinfo=UTC)


# --- through the endpoints (each answered 500 before: django.utils.timezone.utc is gone in Django 5) ---

@pytest.fixture
def key_client(db, source_factory):
    from rest_framework.test import APIClient

    from cdp.api.services.api_keys import api_key_create
    from cdp.core.http.scopes import SCOPES

    source_factory("crm")
    _, plaintext = api_key_create(name="t", scopes=list(SCOPES), source_key=None, expires_days=None)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client


@pytest.mark.parametrize("value", ["2024-01-01T00:00:00", "2024-01-01", "2024-01-01 12:30:00.5"])
def test_profiles_and_events_batches_take_naive_and_date_only_timestamps(key_client, value):
    from cdp.models import Event, SourceRecord

    record = {"external_id": "x1", "identifiers": {"email": "ts@example.com"}, "observed_at": value}
    response = key_client.post("/api/v1/profiles/batch", {"source": "crm", "records": [record]}, format="json")
    assert response.status_code == 200 and response.json()["results"][0]["status"] == "created"
    assert SourceRecord.objects.get().observed_at == parse_timestamp(value)
    event = {"profile": {"email": "ts@example.com"}, "type": "view", "item_id": "i1", "occurred_at": value}
    response = key_client.post("/api/v1/events/batch", {"source": "crm", "events": [event]}, format="json")
    assert response.status_code == 200 and response.json()["results"][0]["status"] == "accepted"
    assert Event.objects.get().occurred_at == parse_timestamp(value)


def test_a_bad_timestamp_rejects_its_record_alone_naming_the_field(key_client):
    records = [{"external_id": "a", "identifiers": {"email": "a@example.com"}, "observed_at": "2024-13-01"},
               {"external_id": "b", "identifiers": {"email": "b@example.com"}, "observed_at": "2024-01-01"}]
    response = key_client.post("/api/v1/profiles/batch", {"source": "crm", "records": records}, format="json")
    first, second = response.json()["results"]
    assert first["status"] == "rejected" and first["errors"][0]["field"].endswith("observed_at")
    assert second["status"] == "created"


def test_consents_batch_and_the_ledger_filter_take_naive_timestamps(key_client):
    key_client.post("/api/v1/profiles/batch", {"source": "crm", "records": [
        {"external_id": "c", "identifiers": {"email": "c@example.com"}}]}, format="json")
    response = key_client.post("/api/v1/consents/batch", {"channel": "crm_sync", "records": [
        {"profile": {"email": "c@example.com"}, "purpose": "analytics", "granted": True,
         "occurred_at": "2024-01-01T00:00:00"}]}, format="json")
    assert response.status_code == 200 and response.json()["results"][0]["status"] == "recorded", response.json()
    listing = key_client.get("/api/v1/consents/events", {"since": "2024-01-01T00:00:00"})
    assert listing.status_code == 200 and len(listing.json()["results"]) == 1
    assert key_client.get("/api/v1/consents/events", {"since": "2024-02-30"}).status_code == 400


def test_segment_batch_takes_a_naive_timestamp(db, client):
    from cdp.models import Event
    from cdp.services.sources import source_create

    _, write_key = source_create(key="web", name="Web", kind="first_party", trust=50)
    body = {"batch": [{"type": "track", "event": "Product Viewed", "userId": "u1",
                       "properties": {"product_id": "p1"}, "timestamp": "2024-01-01T00:00:00"}]}
    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    response = client.post("/v1/batch", data=json.dumps(body), content_type="application/json",
                           HTTP_AUTHORIZATION=auth)
    assert response.status_code == 200 and response.json() == {"success": True}
    assert Event.objects.get().occurred_at == datetime(2024, 1, 1, tzinfo=UTC)


def test_a_source_time_zone_reads_its_naive_timestamps_there(key_client):
    from zoneinfo import ZoneInfo

    from cdp.models import Event, SourceRecord
    from cdp.services.sources import source_create

    source_create(key="paris-crm", name="Paris CRM", kind="first_party", trust=50, time_zone="Europe/Paris")
    record = {"external_id": "p1", "identifiers": {"email": "tz@example.com"}, "observed_at": "2024-07-01T12:00:00"}
    key_client.post("/api/v1/profiles/batch", {"source": "paris-crm", "records": [record]}, format="json")
    assert SourceRecord.objects.get().observed_at == datetime(2024, 7, 1, 10, tzinfo=UTC)
    event = {"profile": {"email": "tz@example.com"}, "type": "view", "item_id": "i1", "occurred_at": "2024-01-01"}
    key_client.post("/api/v1/events/batch", {"source": "paris-crm", "events": [event]}, format="json")
    assert Event.objects.get().occurred_at == datetime(2024, 1, 1, tzinfo=ZoneInfo("Europe/Paris"))
    record["observed_at"] = "2024-07-01T12:00:00Z"  # an offset is the sender's word
    record["external_id"] = "p2"
    key_client.post("/api/v1/profiles/batch", {"source": "paris-crm", "records": [record]}, format="json")
    assert SourceRecord.objects.get(observed_at__hour=12).observed_at == datetime(2024, 7, 1, 12, tzinfo=UTC)


def test_an_unknown_time_zone_is_refused(db):
    from cdp.core.errors import ApplicationError
    from cdp.services.sources import source_create

    with pytest.raises(ApplicationError):
        source_create(key="x", name="X", kind="first_party", trust=50, time_zone="Mars/Olympus")


def test_a_segment_batch_with_one_bad_timestamp_keeps_the_rest(db, client):
    from cdp.models import Event
    from cdp.segment.models import IngestionError
    from cdp.services.sources import source_create

    _, write_key = source_create(key="web", name="Web", kind="first_party", trust=50)
    body = {"batch": [{"type": "track", "event": "Product Viewed", "userId": "u1",
                       "properties": {"product_id": "p1"}, "timestamp": "2024-02-30T00:00:00"},
                      {"type": "track", "event": "Product Viewed", "userId": "u2",
                       "properties": {"product_id": "p2"}, "timestamp": "2024-01-01"}]}
    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    response = client.post("/v1/batch", data=json.dumps(body), content_type="application/json",
                           HTTP_AUTHORIZATION=auth)
    assert response.status_code == 200 and response.json() == {"success": True}  # Segment's shape
    assert Event.objects.count() == 1 and IngestionError.objects.count() == 1
