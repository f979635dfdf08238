"""The readable export beside the JSON (issue 22: SKU codes without names, epoch timestamps,
placeholders for the controller, internal segment names and RFM codes)."""

# ruff: noqa: F811 - pytest fixtures are imported from web_helpers and named as arguments

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from web_helpers import _fresh_cache, make_customer, shop, sign_in  # noqa: F401

from cdp.services.events import events_ingest
from cdp.services.items import items_upsert
from consent.models import DataSubjectRequest
from web.customer import ZONE_TABLE

pytestmark = pytest.mark.django_db


def test_the_export_reads_as_names_dates_and_words(shop, settings, django_capture_on_commit_callbacks):
    settings.TESSERA_CONTROLLER_NAME = "Kaffeehaus Beispiel GmbH"
    settings.TESSERA_CONTROLLER_ADDRESS = "Hauptstraße 1\n10115 Berlin"
    settings.TESSERA_CONTROLLER_EMAIL = "datenschutz@kaffeehaus.example"
    person = make_customer(shop, "jonas@example.com", consents={"analytics": True})
    from cdp.services.resolution import profiles_ingest

    profiles_ingest(source=shop, records=[{"external_id": "c-jonas@example.com",
                                           "identifiers": {"email": "jonas@example.com"},
                                           "attributes": {"language": "de", "country": "DE"}}])
    items_upsert(items=[{"id": "SKU-0042", "title": "Espressokanne aus Edelstahl", "category": "kitchen"}])
    events_ingest(source=shop, events=[{"profile_id": str(person.profile_id), "type": "purchase",
                                        "item_id": "SKU-0042", "occurred_at": "2026-07-14T12:00:00Z"}])
    client = Client()
    sign_in(client, person.profile_id)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/me/data/export/")
    dsr = DataSubjectRequest.objects.get(profile_id=person.profile_id)
    document = json.loads(client.get(f"/me/data/requests/{dsr.id}/download/").content)
    [event] = document["data"]["events"]
    assert event["item_title"] == "Espressokanne aus Edelstahl"  # the JSON names the item too

    page = client.get(f"/me/data/requests/{dsr.id}/summary/")
    assert page.status_code == 200 and "no-store" in page["Cache-Control"]
    text = re.sub(r"<[^>]+>", " ", page.content.decode())
    for expected in ("Espressokanne aus Edelstahl", "Kaffeehaus Beispiel GmbH", "Hauptstraße 1",
                     "datenschutz@kaffeehaus.example", "Bought", "Juli 2026"):
        assert expected in text, expected
    if ZONE_TABLE.exists():  # the country's zone, from the system's table
        assert "Europe/Berlin" in text and "14. Juli 2026 14:00" in text
    for code in ("SKU-0042", "tessera.invalid", "consentTimestamp", "1784030400"):
        assert code not in text, code
    # Another person's request is not there for them.
    other = make_customer(shop, "eva@example.com")
    stranger = Client()
    sign_in(stranger, other.profile_id)
    assert stranger.get(f"/me/data/requests/{dsr.id}/summary/").status_code == 404
