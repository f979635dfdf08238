"""The documented verification recipe against real deliveries, and secret rotation."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from cdp.core.changes import changes_stamp
from cdp.core.outbox import outbox_put
from cdp.models import DataKey
from cdp.webhooks import signing
from cdp.webhooks.models import WebhookDelivery, WebhookSubscription
from cdp.webhooks.services.delivery import webhook_deliver
from cdp.webhooks.services.relay import deliveries_fan_out, webhooks_relay
from cdp.webhooks.services.subscriptions import webhook_delete, webhook_secret_rotate

pytestmark = pytest.mark.django_db

DOCS = Path(__file__).resolve().parents[3] / "docs" / "webhooks.md"


@pytest.fixture(scope="module")
def verify():
    """`verify_tessera_signature` exactly as docs/webhooks.md tells integrators to paste it."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.S)
    recipe = next(b for b in blocks if "def verify_tessera_signature" in b)
    namespace: dict = {}
    exec(compile(recipe, str(DOCS), "exec"), namespace)  # noqa: S102 (our own documentation)
    return namespace["verify_tessera_signature"]


def deliver_one(receiver):
    outbox_put(topic="profile.erased", payload={"profile_id": str(uuid.uuid4())})
    webhooks_relay()
    return receiver.requests[-1]


def test_the_documented_recipe_verifies_a_real_delivery(receiver, subscribe, verify):
    secret = subscribe(receiver.url, events=["profile.erased"]).secret
    request = deliver_one(receiver)
    header = request.headers["Tessera-Signature"]
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)
    assert verify(request.body, header, [secret])
    assert signing.signature_verify(header, body=request.body, secrets=[secret])


def test_the_recipe_refuses_a_wrong_secret_a_changed_body_and_a_stale_timestamp(receiver, subscribe, verify):
    secret = subscribe(receiver.url, events=["profile.erased"]).secret
    request = deliver_one(receiver)
    header = request.headers["Tessera-Signature"]
    timestamp = int(header.split(",")[0][2:])
    assert not verify(request.body, header, [signing.secret_new()])
    assert not verify(request.body.replace(b"profile.erased", b"profile.created"), header, [secret])
    assert not verify(request.body, header, [secret], now=timestamp + 301)
    assert verify(request.body, header, [secret], now=timestamp + 299)
    assert not verify(request.body, "v1=" + header.split("v1=")[1], [secret])  # no t
    assert not verify(request.body, header.split(",")[0], [secret])  # no v1


def test_during_a_rotation_window_both_secrets_sign_and_after_it_only_the_new(receiver, subscribe, verify):
    old = subscribe(receiver.url, events=["profile.erased"])
    rotated_at = timezone.now()
    new = webhook_secret_rotate(subscription_id=old.subscription.id, now=rotated_at)
    assert new.secret != old.secret and new.secret.startswith("whsec_")

    request = deliver_one(receiver)
    header = request.headers["Tessera-Signature"]
    assert header.count("v1=") == 2
    assert verify(request.body, header, [old.secret])
    assert verify(request.body, header, [new.secret])

    # A delivery attempted after the 24 h window carries the new signature only.
    outbox_put(topic="profile.erased", payload={"profile_id": str(uuid.uuid4())})
    after_window = rotated_at + timedelta(hours=24, seconds=1)
    changes_stamp()
    deliveries_fan_out(now=after_window)  # due only then
    pending = WebhookDelivery.objects.get(status="pending")
    webhook_deliver(delivery_id=pending.id, now=after_window)
    late = receiver.requests[-1]
    late_header = late.headers["Tessera-Signature"]
    assert late_header.count("v1=") == 1
    assert verify(late.body, late_header, [new.secret], now=after_window.timestamp())
    assert not verify(late.body, late_header, [old.secret], now=after_window.timestamp())


def test_a_zero_window_retires_the_old_secret_at_once(receiver, subscribe, verify):
    old = subscribe(receiver.url, events=["profile.erased"])
    new = webhook_secret_rotate(subscription_id=old.subscription.id, previous_valid_for=timedelta(0))
    request = deliver_one(receiver)
    header = request.headers["Tessera-Signature"]
    assert header.count("v1=") == 1
    assert verify(request.body, header, [new.secret]) and not verify(request.body, header, [old.secret])


def test_rotating_inside_a_window_keeps_only_two_secrets_signing(receiver, subscribe, verify):
    first = subscribe(receiver.url, events=["profile.erased"])
    second = webhook_secret_rotate(subscription_id=first.subscription.id)
    third = webhook_secret_rotate(subscription_id=first.subscription.id)
    request = deliver_one(receiver)
    header = request.headers["Tessera-Signature"]
    assert header.count("v1=") == 2
    assert verify(request.body, header, [second.secret]) and verify(request.body, header, [third.secret])
    assert not verify(request.body, header, [first.secret])


def test_secrets_are_stored_encrypted_and_shredded_on_delete(subscribe):
    created = subscribe("https://hooks.example.com/a", events=["profile.erased"])
    rotated = webhook_secret_rotate(subscription_id=created.subscription.id)
    row = WebhookSubscription.objects.get()
    for secret in (created.secret, rotated.secret):
        raw = secret.encode()
        assert raw not in bytes(row.secret_cipher) and raw not in bytes(row.previous_secret_cipher)
        assert secret[6:].encode() not in bytes(row.secret_cipher)
    key_id = row.data_key_id
    webhook_delete(subscription_id=row.id)
    assert not DataKey.objects.filter(pk=key_id).exists()
    row.refresh_from_db()
    assert row.deleted_at is not None and row.data_key_id is None and row.previous_secret_cipher is None
