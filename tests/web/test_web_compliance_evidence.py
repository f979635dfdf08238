"""The compliance console's evidence: the subject's signed bundle, taking a checkpoint,
declined vs withdrawn on the timeline, and the messages' live region."""

# ruff: noqa: F811 - pytest fixtures are imported from web_helpers and named as arguments

from __future__ import annotations

import re

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.test import Client
from web_helpers import (  # noqa: F401
    _fresh_cache,
    ada,
    officer,
    officer_client,
    operator,
    operator_client,
    shop,
    sign_in,
    staff_user,
)

from consent.checkpoint_signature import public_key_of
from consent.evidence_verify import bundle_verify
from consent.models import AccessLog, LedgerCheckpoint
from consent.services.consents import consent_set

pytestmark = pytest.mark.django_db


@pytest.fixture
def signing_key(settings, tmp_path):
    key = Ed25519PrivateKey.generate().private_bytes_raw()
    settings.TESSERA_CHECKPOINT_SIGNING_KEY = key
    settings.TESSERA_CHECKPOINT_PUBLIC_KEY = public_key_of(key)
    settings.TESSERA_LEDGER_CHECKPOINT_DIR = str(tmp_path)
    return key


def test_the_subject_page_downloads_a_signed_bundle_and_logs_it(signing_key, officer_client, operator_client, ada):
    page = officer_client.post("/compliance/subjects/", {"kind": "profile_id", "value": str(ada.profile_id)})
    assert b"Download the evidence bundle" in page.content
    assert operator_client.post("/compliance/subjects/evidence/",
                                {"profile_id": str(ada.profile_id)}).status_code == 403
    assert officer_client.get("/compliance/subjects/evidence/").status_code == 405
    response = officer_client.post("/compliance/subjects/evidence/", {"profile_id": str(ada.profile_id)})
    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    assert response["Cache-Control"] == "no-store"
    bundle = bundle_verify(response.content, public_key_of(signing_key))
    assert bundle["subject"] == str(ada.profile_id) and len(bundle["timeline"]) == 2
    assert AccessLog.objects.filter(profile_id=ada.profile_id, purpose="evidence_bundle_export").count() == 1


def test_the_bundle_needs_csrf(signing_key, officer, ada):
    client = Client(enforce_csrf_checks=True)
    client.force_login(officer)
    assert client.post("/compliance/subjects/evidence/", {"profile_id": str(ada.profile_id)}).status_code == 403


def test_take_checkpoint_signs_and_records_the_officers_action(signing_key, officer, officer_client,
                                                                operator_client, tmp_path):
    page = officer_client.get("/compliance/ledger/")
    assert b"No checkpoint taken yet" in page.content and b"Take a checkpoint now" in page.content
    assert operator_client.post("/compliance/ledger/checkpoint/").status_code == 403
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(officer)
    assert csrf_client.post("/compliance/ledger/checkpoint/").status_code == 403
    assert not LedgerCheckpoint.objects.exists()
    response = officer_client.post("/compliance/ledger/checkpoint/", follow=True)
    assert b"Checkpoint taken and signed" in response.content and b"No checkpoint taken yet" not in response.content
    assert LedgerCheckpoint.objects.count() == 1 and len(list(tmp_path.glob("checkpoint-*.jsonl"))) == 1
    entry = AccessLog.objects.get(purpose="ledger_checkpoint_taken")
    assert entry.actor == f"staff:{officer.pk}"


def test_without_a_signing_key_no_checkpoint_and_a_plain_message(settings, officer_client):
    settings.TESSERA_CHECKPOINT_SIGNING_KEY = None
    response = officer_client.post("/compliance/ledger/checkpoint/", follow=True)
    assert b"No checkpoint signing key is configured" in response.content
    assert not LedgerCheckpoint.objects.exists()


def test_a_first_refusal_reads_declined_and_a_refusal_after_a_grant_withdrawn(officer_client, ada):
    consent_set(profile_id=ada.profile_id, purpose="marketing", granted=False)  # never granted: declined
    consent_set(profile_id=ada.profile_id, purpose="analytics", granted=False)  # granted before: withdrawn
    page = officer_client.post("/compliance/subjects/", {"kind": "profile_id", "value": str(ada.profile_id)})
    timeline = page.content.decode().split('id="consent-timeline"')[1].split("</table>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", timeline, re.S)
    marketing = [r for r in rows if "Marketing" in r]
    analytics = [r for r in rows if "Analytics" in r and ">Withdrawn (after a grant)<" in r]
    assert marketing and ">Declined (refused when first asked)<" in marketing[0] and ">Withdrawn" not in marketing[0]
    assert len(analytics) == 1


def test_messages_sit_in_a_status_region_not_on_the_list(signing_key, officer_client):
    page = officer_client.post("/compliance/ledger/checkpoint/", follow=True).content.decode()
    assert '<ul class="messages" role="status"' not in page
    assert re.search(r'<div [^>]*role="status" aria-live="polite"[^>]*>\s*<ul class="messages">\s*<li', page)


def test_the_customer_sees_declined_and_withdrawn_in_their_history(ada):
    consent_set(profile_id=ada.profile_id, purpose="marketing", granted=False)
    consent_set(profile_id=ada.profile_id, purpose="analytics", granted=False)
    client = Client()
    sign_in(client, ada.profile_id)
    page = client.get("/me/data/").content.decode()
    assert ">Declined<" in page and ">Withdrawn<" in page and "Not allowed" not in page
    choices = client.get("/me/").content.decode()  # and the choices say which it was
    assert "Off (you said no)" in choices and "Off (you withdrew your consent)" in choices
