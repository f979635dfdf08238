"""The per-subject evidence bundle, its offline check, the ledger export's chain fields and
the words declined / withdrawn."""

from __future__ import annotations

import base64
import csv
import io
import json
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings as django_settings
from django.utils import timezone

from consent.checkpoint_signature import public_key_of
from consent.evidence_verify import BundleInvalid, bundle_verify
from consent.ledger import event_link
from consent.ledger.chain import LINKED_FIELDS
from consent.models import AccessLog
from consent.selectors import consent_decisions, consent_export_stream
from consent.services.access import Accessor
from consent.services.consents import consent_set
from consent.services.dsr import dsr_export_build
from consent.services.evidence import CheckpointKeyMissing, evidence_bundle_build

pytestmark = pytest.mark.django_db


@pytest.fixture
def signing_key(settings):
    key = Ed25519PrivateKey.generate().private_bytes_raw()
    settings.TESSERA_CHECKPOINT_SIGNING_KEY = key
    settings.TESSERA_CHECKPOINT_PUBLIC_KEY = public_key_of(key)
    return key


def _history(pid):
    start = timezone.now() - timedelta(days=3)
    consent_set(profile_id=pid, purpose="marketing", granted=False, occurred_at=start)  # declined
    consent_set(profile_id=pid, purpose="marketing", granted=True, occurred_at=start + timedelta(hours=1))
    consent_set(profile_id=pid, purpose="marketing", granted=False, occurred_at=start + timedelta(hours=2))
    consent_set(profile_id=pid, purpose="analytics", granted=True, occurred_at=start + timedelta(hours=3))


def test_a_bundle_verifies_offline_and_a_single_changed_byte_fails(signing_key, tmp_path):
    pid = uuid.uuid4()
    _history(pid)
    name, data = evidence_bundle_build(profile_id=pid, aliases=[], actor="staff:1")
    bundle = bundle_verify(data, public_key_of(signing_key))
    assert bundle["verification"]["result"] == "intact" and len(bundle["timeline"]) == 4
    assert [e["decision"] for e in bundle["timeline"]] == ["declined", "granted", "withdrawn", "granted"]
    assert bundle["receipts"] and bundle["notice_texts"] and "access_log" in bundle
    # The download is itself in the access log, and in the bundle.
    assert AccessLog.objects.filter(profile_id=pid, purpose="evidence_bundle_export").count() == 1
    assert any(a["purpose"] == "evidence_bundle_export" for a in bundle["access_log"])
    # No key of ours is in the file.
    for key in (django_settings.TESSERA_LEDGER_KEY, signing_key):
        assert key.hex().encode() not in data and base64.b64encode(key) not in data
    public = base64.b64encode(public_key_of(signing_key)).decode()
    good = tmp_path / name
    good.write_bytes(data)
    command = [sys.executable, "-m", "consent.evidence_verify", str(good), "--public-key", public]
    result = subprocess.run(command, capture_output=True, text=True, cwd=django_settings.BASE_DIR)
    assert result.returncode == 0 and result.stdout.startswith("VERIFIED"), result.stderr
    # Every single changed byte (a sample across the file) is found, by the function and the command.
    for offset in [*range(0, len(data), max(1, len(data) // 97)), len(data) - 1]:
        altered = bytearray(data)
        altered[offset] = (altered[offset] + 1) % 128 or 1
        with pytest.raises(BundleInvalid):
            bundle_verify(bytes(altered), public_key_of(signing_key))
    altered = bytearray(data)
    altered[len(data) // 2] ^= 0x01
    bad = tmp_path / "altered.json"
    bad.write_bytes(bytes(altered))
    command[3] = str(bad)
    result = subprocess.run(command, capture_output=True, text=True, cwd=django_settings.BASE_DIR)
    assert result.returncode == 1 and "NOT VERIFIED" in result.stderr


def test_a_bundle_resigned_with_another_key_or_a_broken_chain_fails(signing_key):
    from consent.evidence_verify import bundle_sign

    pid = uuid.uuid4()
    _history(pid)
    _, data = evidence_bundle_build(profile_id=pid, aliases=[], actor="staff:1")
    bundle = json.loads(data)["bundle"]
    with pytest.raises(BundleInvalid, match="signed with key"):
        bundle_verify(bundle_sign(bundle, Ed25519PrivateKey.generate().private_bytes_raw()),
                      public_key_of(signing_key))
    # Someone holding the signing key but dropping an event: the chain no longer follows.
    bundle["timeline"].pop(1)
    with pytest.raises(BundleInvalid, match="position 2"):
        bundle_verify(bundle_sign(bundle, signing_key), public_key_of(signing_key))


def test_no_signing_key_means_no_bundle(settings):
    settings.TESSERA_CHECKPOINT_SIGNING_KEY = None
    with pytest.raises(CheckpointKeyMissing):
        evidence_bundle_build(profile_id=uuid.uuid4(), aliases=[], actor="staff:1")


def test_the_ledger_export_carries_each_events_previous_link_and_link():
    pid = uuid.uuid4()
    _history(pid)
    lines = consent_export_stream(kind="history", fmt="csv", since=None, until=None,
                                  accessor=Accessor(actor="staff:1"))
    rows = [r for r in csv.DictReader(io.StringIO("".join(lines))) if r["profile_id"] == str(pid)]
    assert {"previous_link", "link", "ip_hash", "language"} <= set(rows[0])
    rows.sort(key=lambda r: int(r["position"]))
    for before, after in zip(rows, rows[1:], strict=False):
        assert after["previous_link"] == before["link"]
    # A holder of the ledger key recomputes each link from the exported columns alone.
    from consent.models import ConsentEvent

    for row in rows:
        event = ConsentEvent.objects.get(id=row["id"])
        values = {name: getattr(event, name) for name in LINKED_FIELDS}
        assert event_link(values, row["previous_link"]) == row["link"]
    jsonl = "".join(consent_export_stream(kind="history", fmt="jsonl", since=None, until=None,
                                          accessor=Accessor(actor="staff:1")))
    assert all("previous_link" in json.loads(line) for line in jsonl.splitlines())


def test_a_first_refusal_is_declined_and_a_refusal_after_a_grant_is_withdrawn():
    from consent.models import ConsentEvent

    pid = uuid.uuid4()
    _history(pid)
    events = list(ConsentEvent.objects.filter(profile_id=pid).order_by("seq"))
    words = consent_decisions(events)
    assert [words[e.id] for e in events] == ["declined", "granted", "withdrawn", "granted"]
    history = dsr_export_build_history(pid)
    assert [h["decision"] for h in history] == ["declined", "granted", "withdrawn", "granted"]


def dsr_export_build_history(pid):
    return dsr_export_build(profile_id=pid)["data"]["consent_history"]


def test_the_bundle_reports_a_chain_altered_in_the_database(signing_key):
    from django.db import connection

    from consent.models import ConsentEvent

    pid = uuid.uuid4()
    _history(pid)
    event = ConsentEvent.objects.get(profile_id=pid, seq=2)
    with connection.cursor() as cursor:  # the database owner without the ledger key: triggers off, raw SQL
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE consent_consentevent DISABLE TRIGGER USER")
        cursor.execute("UPDATE consent_consentevent SET granted = %s WHERE id = %s",
                       [False, event.id.hex if connection.vendor == "sqlite" else event.id])
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE consent_consentevent ENABLE TRIGGER USER")
    _, data = evidence_bundle_build(profile_id=pid, aliases=[], actor="staff:1")
    verification = bundle_verify(data, public_key_of(signing_key))["verification"]
    assert verification["result"] == "broken" and "event 2 fails its link" in verification["findings"][0]
