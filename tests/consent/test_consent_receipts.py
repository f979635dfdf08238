"""Kantara receipts say what each decision was (issue 22: a first refusal read "Withdrawn"):
granted, declined, withdrawn, and, for a grant still in force, expired or re-consent
required; the controller's details come from configuration, never made up."""

from __future__ import annotations

import json
from datetime import timedelta
from uuid import UUID

import pytest
from django.utils import timezone

from cdp.services.resolution import profiles_ingest
from consent.models import ConsentEvent
from consent.notices import notice_publish
from consent.selectors import consent_receipt, consent_receipt_list
from consent.services import consent_set
from consent.services.access import Accessor

pytestmark = pytest.mark.django_db
READER = Accessor("data_subject")


@pytest.fixture
def person(source_factory):
    [result] = profiles_ingest(source=source_factory("shop"), records=[
        {"external_id": "r-1", "identifiers": {"email": "rita@example.com"}}])
    return UUID(str(result.profile_id))


def _by_purpose(person) -> dict[str, list[dict]]:
    receipts = {}
    for receipt in consent_receipt_list(profile_id=person, accessor=READER):
        receipts.setdefault(receipt["tessera"]["purpose"], []).append(receipt)
    return receipts


def _termination(receipt: dict) -> str:
    return receipt["services"][0]["purposes"][0]["termination"]


def test_a_first_refusal_is_declined_and_a_refusal_after_a_grant_withdrawn(person):
    consent_set(profile_id=person, purpose="marketing", granted=False)
    consent_set(profile_id=person, purpose="analytics", granted=True)
    consent_set(profile_id=person, purpose="analytics", granted=False)
    receipts = _by_purpose(person)
    [declined] = receipts["marketing"]
    assert declined["tessera"]["decision"] == "declined"
    assert _termination(declined).startswith("Declined") and "Withdrawn" not in json.dumps(declined)
    granted, withdrawn = receipts["analytics"]
    assert (granted["tessera"]["decision"], withdrawn["tessera"]["decision"]) == ("granted", "withdrawn")
    assert _termination(granted) == "Until withdrawn" and _termination(withdrawn).startswith("Withdrawn on ")
    # The single receipt reads the same history.
    event = ConsentEvent.objects.get(profile_id=person, purpose="marketing")
    assert consent_receipt(profile_id=person, event_id=event.id, accessor=READER)["tessera"]["decision"] == "declined"


def test_a_grant_in_force_that_lapsed_says_expired_or_re_consent_required(person):
    notice_publish(purpose="marketing", texts={"en": ("Marketing", "Offers.")}, lifetime_days=30, actor="test")
    consent_set(profile_id=person, purpose="marketing", granted=True, notice_version=2,
                occurred_at=timezone.now() - timedelta(days=40))
    consent_set(profile_id=person, purpose="analytics", granted=True)
    notice_publish(purpose="analytics", texts={"en": ("Analytics", "New words.")}, material=True, actor="test")
    receipts = _by_purpose(person)
    [expired], [stale] = receipts["marketing"], receipts["analytics"]
    assert expired["tessera"]["statusNow"] == "expired" and _termination(expired).startswith("Expired on ")
    assert stale["tessera"]["statusNow"] == "reconsent_required"
    assert _termination(stale).startswith("Re-consent required")
    assert expired["tessera"]["decision"] == stale["tessera"]["decision"] == "granted"


def test_the_controller_comes_from_configuration_and_nothing_is_made_up(person, settings):
    consent_set(profile_id=person, purpose="marketing", granted=True)
    [receipt] = consent_receipt_list(profile_id=person, accessor=READER)
    assert "tessera.invalid" not in json.dumps(receipt) and "—" not in json.dumps(receipt)
    assert receipt["piiControllers"][0]["address"] == ""  # Kantara wants a string: empty, not made up
    settings.TESSERA_CONTROLLER_NAME = "Maison Exemple SAS"
    settings.TESSERA_CONTROLLER_ADDRESS = "12 rue de la Paix\n75002 Paris"
    settings.TESSERA_CONTROLLER_EMAIL = "dpo@maison-exemple.fr"
    [receipt] = consent_receipt_list(profile_id=person, accessor=READER)
    controller = receipt["piiControllers"][0]
    assert (controller["piiController"], controller["address"], controller["email"]) == (
        "Maison Exemple SAS", "12 rue de la Paix\n75002 Paris", "dpo@maison-exemple.fr")
