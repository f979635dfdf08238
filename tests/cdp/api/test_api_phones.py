"""Phones as people write them: the region rule (a record's or a request's `country`, else
TESSERA_DEFAULT_PHONE_REGION) holds for every phone input, lookups included."""

from __future__ import annotations

import pytest
from api_helpers import is_problem, post_profiles, record

from cdp.models import Event
from consent.models import DataSubjectRequest

PARIS = "01 42 68 00 00"  # +33142680000 as a French person writes it


@pytest.fixture
def stored(api_client, shop):
    """A person stored with a French phone written nationally (the record says country FR)."""
    response = post_profiles(api_client, "shop", record("f-1", phone=PARIS, attributes={"country": "FR"}))
    assert response.json()["results"][0]["status"] == "created", response.json()
    return response.json()["results"][0]["profile_id"]


def lookup(client, body):
    return client.post("/api/v1/profiles/lookup", body, format="json")


def test_lookup_reads_a_national_phone_in_the_given_country(api_client, stored):
    found = lookup(api_client, {"phone": PARIS, "country": "fr"}).json()["results"]
    assert [p["id"] for p in found] == [stored]
    assert [p["id"] for p in lookup(api_client, {"phone": "+33 1 42 68 00 00"}).json()["results"]] == [stored]


def test_lookup_falls_back_to_the_default_region(api_client, stored, settings):
    settings.TESSERA_DEFAULT_PHONE_REGION = "FR"
    assert [p["id"] for p in lookup(api_client, {"phone": PARIS}).json()["results"]] == [stored]


def test_an_unparseable_phone_is_a_400_naming_the_field(api_client, stored, settings):
    settings.TESSERA_DEFAULT_PHONE_REGION = None
    response = lookup(api_client, {"phone": PARIS})  # no region: not a number anyone can read
    assert is_problem(response, 400)
    assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [("phone", "invalid_phone")]
    assert PARIS not in response.content.decode()
    assert is_problem(lookup(api_client, {"phone": "12", "country": "FR"}), 400)
    assert is_problem(lookup(api_client, {"email": "not-an-address"}), 400)
    assert is_problem(lookup(api_client, {"phone": PARIS, "country": "France"}), 400)


def test_events_name_people_by_a_national_phone_with_a_country(api_client, stored):
    event = {"profile": {"phone": PARIS, "country": "FR"}, "type": "view", "item_id": "i1"}
    response = api_client.post("/api/v1/events/batch", {"source": "shop", "events": [event]}, format="json")
    [result] = response.json()["results"]
    assert result["status"] == "accepted" and result["profile_id"] == stored, result
    bad = {**event, "profile": {"phone": PARIS, "country": "France"}}
    response = api_client.post("/api/v1/events/batch", {"source": "shop", "events": [bad]}, format="json")
    [result] = response.json()["results"]
    assert result["status"] == "rejected" and result["errors"][0]["field"] == "profile.country"
    assert Event.objects.count() == 1


def test_consents_and_requests_name_people_by_a_national_phone(api_client, stored):
    response = api_client.post("/api/v1/consents/batch", {"channel": "crm_sync", "records": [
        {"profile": {"phone": PARIS, "country": "FR"}, "purpose": "analytics", "granted": True}]}, format="json")
    assert response.json()["results"][0]["status"] == "recorded", response.json()
    response = api_client.post("/api/v1/dsr", {"type": "access", "identifiers": {"phone": PARIS, "country": "FR"}},
                               format="json")
    assert response.status_code == 202, response.json()
    assert str(DataSubjectRequest.objects.get(pk=response.json()["id"]).profile_id) == stored


def test_the_region_rule_is_in_the_schema_the_api_docs_and_the_readme(api_client):
    """Issue 17, finding 2: neither the README, docs/api.md nor the schema said where a
    national phone's region comes from."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()
    for text in (schema, (root / "docs" / "api.md").read_text(), (root / "README.md").read_text()):
        assert "TESSERA_DEFAULT_PHONE_REGION" in text and "country" in text
