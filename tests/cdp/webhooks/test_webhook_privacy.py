"""No personal data leaves through webhooks or the change feed, or lands in their logs."""

from __future__ import annotations

import json
import logging

import pytest
from django.forms.models import model_to_dict

from cdp.core.changes import changes_list
from cdp.core.models import OutboxMessage
from cdp.services.erasure import profile_erase
from cdp.services.resolution import profiles_ingest
from cdp.webhooks.models import WebhookAttempt, WebhookDelivery
from cdp.webhooks.services.relay import webhooks_relay
from consent.services import consent_set

pytestmark = pytest.mark.django_db

CANARY_EMAIL = "canary.w3bh00k@example.org"
CANARY_PHONE = "+442079460977"
CANARY_NAME = "Zebulon-Canary-Quux"
CANARIES = (CANARY_EMAIL, "canary.w3bh00k", "2079460977", CANARY_NAME)


def rows_text(model) -> str:
    return json.dumps([model_to_dict(row) for row in model.objects.all()], default=lambda v: repr(v))


def test_a_canary_person_appears_in_no_payload_delivery_log_or_request(receiver, subscribe, source_factory,
                                                                       caplog):
    subscribe(receiver.url)
    shop = source_factory("shop")
    caplog.set_level(logging.DEBUG)

    [created] = profiles_ingest(source=shop, records=[{
        "external_id": "o-1", "identifiers": {"email": CANARY_EMAIL},
        "attributes": {"first_name": CANARY_NAME}}])
    [other] = profiles_ingest(source=shop, records=[{"external_id": "o-2", "identifiers": {"phone": CANARY_PHONE}}])
    [merged] = profiles_ingest(source=shop, records=[{
        "external_id": "o-3", "identifiers": {"email": CANARY_EMAIL, "phone": CANARY_PHONE}}])
    assert merged.status == "merged"
    consent_set(profile_id=merged.profile_id, purpose="marketing", granted=True)
    receiver.status = [503, 200]  # one failed attempt too, so the failure path is logged
    webhooks_relay()
    webhooks_relay()
    profile_erase(profile_id=merged.profile_id)
    webhooks_relay()

    types = {r.event["type"] for r in receiver.requests}
    assert {"profile.created", "profile.merged", "consent.changed", "profile.erased"} <= types
    assert WebhookAttempt.objects.count() == len(receiver.requests)

    feed = json.dumps(changes_list(limit=1000).results)
    places = {
        "outbox": rows_text(OutboxMessage),
        "deliveries": rows_text(WebhookDelivery),
        "attempts": rows_text(WebhookAttempt),
        "change feed": feed,
        "request bodies": "\n".join(r.body.decode() for r in receiver.requests),
        "request headers": json.dumps([r.headers for r in receiver.requests]),
        "logs": "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records),
    }
    for place, text in places.items():
        for canary in CANARIES:
            assert canary.lower() not in text.lower(), f"personal data in {place}"
    # ...while the ids integrators need are there.
    assert str(created.profile_id) in places["request bodies"] and str(other.profile_id) in feed
