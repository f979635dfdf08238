"""Personal data is unreadable to anyone holding only the database (and the logs)."""

from __future__ import annotations

import base64
import logging
import os
import shutil
import subprocess

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client

from cdp import crypto
from cdp.core.crypto_primitives import DecryptionError, KeyUnavailable
from cdp.core.models import OutboxMessage
from cdp.models import AttributeValue, DataKey, Identity, MergeConflict, Profile, Source, SourceRecord
from cdp.selectors import profile_unified_view
from cdp.services.erasure import profile_erase
from cdp.services.events import events_ingest
from cdp.services.profiles import identity_value_read, profile_dek
from cdp.services.resolution import profiles_ingest

CANARIES = {
    "email": "canary.zebra.7731@example.org",
    "phone": "+447911123731",
    "first_name": "Quillonia",
    "last_name": "Marchbankes",
    "postal_address": "17 Canary Wharf Lane",
    "external_id": "canary-crm-7731",
    "crm_id": "CANARY-42-ZEBRA",
}


def new_key() -> bytes:
    return os.urandom(32)


def ingest_canary(source_factory):
    crm = source_factory("crm", trust=90)
    broker = source_factory("broker", kind="third_party", trust=10)
    profiles_ingest(source=broker, records=[{"external_id": "b-1", "identifiers": {"email": CANARIES["email"]},
                                             "attributes": {"postal_address": CANARIES["postal_address"]}}])
    [result] = profiles_ingest(source=crm, records=[{
        "external_id": CANARIES["external_id"],
        "identifiers": {"email": CANARIES["email"].upper(), "phone": CANARIES["phone"], "crm_id": CANARIES["crm_id"]},
        "attributes": {"first_name": CANARIES["first_name"], "last_name": CANARIES["last_name"], "country": "GB"},
    }])
    events_ingest(source=crm, events=[{"profile": {"email": CANARIES["email"]}, "type": "purchase",
                                       "item_id": "SKU-1", "quantity": 1, "price": 9.5}])
    return result.profile_id


def forms(value: str) -> list[bytes]:
    raw = value.encode()
    return [raw, raw.hex().encode(), base64.b64encode(raw)]


@pytest.mark.django_db(transaction=True)
def test_pg_dump_and_logs_hold_no_canary_in_plaintext(postgres, source_factory, caplog):
    caplog.set_level(logging.DEBUG)
    profile_id = ingest_canary(source_factory)
    # A second CRM id with the canary email: a merge conflict an operator then reviews in
    # the admin, so the admin log and the outbox have rows in the dump too.
    profiles_ingest(source=Source.objects.get(key="crm"), records=[{
        "external_id": "canary-crm-other", "identifiers": {"email": CANARIES["email"], "crm_id": "OTHER-1"}}])
    conflict = MergeConflict.objects.get()
    operator = get_user_model().objects.create_superuser("op", password="op-password-123456")
    client = Client()
    client.force_login(operator)
    response = client.post(f"/admin/cdp/mergeconflict/{conflict.id}/change/", {"status": "resolved"})
    assert response.status_code == 302
    assert LogEntry.objects.get().object_repr == f"conflict {conflict.id}"
    assert OutboxMessage.objects.exists()
    assert profile_unified_view(profile_id=profile_id)["attributes"]["first_name"]["value"] == CANARIES["first_name"]
    pg_dump = shutil.which("pg_dump")
    assert pg_dump, "pg_dump is needed for this test"
    db = connection.settings_dict
    dump = subprocess.run(
        [pg_dump, "-h", db["HOST"] or "127.0.0.1", "-p", str(db["PORT"] or 5432), "-U", db["USER"] or "postgres",
         "--no-owner", db["NAME"]],
        capture_output=True, check=True, timeout=120,
    ).stdout
    assert b"cdp_identity" in dump and len(dump) > 10_000
    logs = caplog.text.encode()
    for name, value in CANARIES.items():
        for form in forms(value) + forms(value.lower()):
            assert form not in dump, f"{name} found in pg_dump"
            assert form not in logs, f"{name} found in logs"


@pytest.mark.django_db
def test_a_ciphertext_moved_to_another_row_or_column_does_not_decrypt(source_factory):
    shop = source_factory("shop")
    a, b = profiles_ingest(source=shop, records=[
        {"external_id": "1", "identifiers": {"email": "a@example.com"}, "attributes": {"first_name": "Ann"}},
        {"external_id": "2", "identifiers": {"email": "b@example.com"}, "attributes": {"first_name": "Bob"}},
    ])
    identity_a = Identity.objects.get(profile_id=a.profile_id)
    identity_b = Identity.objects.get(profile_id=b.profile_id)
    # Another profile's row: even re-keyed with the right data key, the AAD names profile A.
    identity_b.value = identity_a.value
    with pytest.raises(DecryptionError):
        identity_value_read(identity_b, dek=profile_dek(Profile.objects.get(pk=b.profile_id)))
    profile_a = Profile.objects.get(pk=a.profile_id)
    dek_a = profile_dek(profile_a)
    identity_b.profile_id = a.profile_id  # same key, same owner: only the row's own value opens
    identity_b.value = identity_a.value
    assert identity_value_read(identity_b, dek=dek_a) == "a@example.com"
    # Another column of the same profile.
    attribute = AttributeValue.objects.get(profile_id=a.profile_id, name="first_name")
    with pytest.raises(DecryptionError):
        crypto.decrypt_value(dek_a, owner_id=a.profile_id, field="identity.value",
                             ciphertext=attribute.value_cipher)
    record = SourceRecord.objects.get(profile_id=a.profile_id)
    with pytest.raises(DecryptionError):
        crypto.decrypt_value(dek_a, owner_id=a.profile_id, field="attribute:first_name", ciphertext=record.payload)
    # A wrapped data key swapped onto another key row does not unwrap.
    key_a, key_b = DataKey.objects.get(pk=profile_a.data_key_id), DataKey.objects.get(
        pk=Profile.objects.get(pk=b.profile_id).data_key_id)
    key_b.wrapped = key_a.wrapped
    with pytest.raises(DecryptionError):
        crypto.data_key_open(key_b)


@pytest.mark.django_db
def test_rotation_survives_a_kill_halfway_and_the_old_key_can_go(source_factory, settings):
    key_a, key_b = new_key(), new_key()
    settings.TESSERA_MASTER_KEYS = [key_a]
    shop = source_factory("shop")
    results = profiles_ingest(source=shop, records=[
        {"external_id": str(i), "identifiers": {"email": f"p{i}@example.com"}, "attributes": {"city": f"C{i}"}}
        for i in range(25)])
    settings.TESSERA_MASTER_KEYS = [key_b, key_a]
    assert crypto.data_keys_pending_rotation() == 25

    class Killed(Exception):
        pass

    def die_after_first_batch(done):
        raise Killed

    with pytest.raises(Killed):
        crypto.data_keys_rotate(batch_size=10, on_progress=die_after_first_batch)
    assert crypto.data_keys_pending_rotation() == 15  # the committed batch stays done
    ciphertexts_before = sorted(bytes(v) for v in Identity.objects.values_list("value", flat=True))
    assert crypto.data_keys_rotate(batch_size=10) == 15
    assert crypto.data_keys_rotate(batch_size=10) == 0  # a second run changes nothing
    settings.TESSERA_MASTER_KEYS = [key_b]  # key A removed entirely
    for result in results:
        view = profile_unified_view(profile_id=result.profile_id)
        assert view["identifiers"]["email"] == [f"p{result.index}@example.com"]
    # Field ciphertexts were never rewritten: only the data keys were rewrapped.
    assert sorted(bytes(v) for v in Identity.objects.values_list("value", flat=True)) == ciphertexts_before
    settings.TESSERA_MASTER_KEYS = [key_a]
    with pytest.raises(KeyUnavailable):
        profile_unified_view(profile_id=results[0].profile_id)


@pytest.mark.django_db
def test_rotate_keys_command_prints_a_count(source_factory, settings):
    from io import StringIO

    from django.core.management import call_command

    settings.TESSERA_MASTER_KEYS = [new_key()]
    profiles_ingest(source=source_factory("shop"), records=[
        {"external_id": "1", "identifiers": {"email": "a@example.com"}}])
    settings.TESSERA_MASTER_KEYS = [new_key(), *settings.TESSERA_MASTER_KEYS]
    out, err = StringIO(), StringIO()
    call_command("rotate_keys", stdout=out, stderr=err)
    assert out.getvalue().strip().splitlines()[-1] == "1"
    call_command("rotate_keys", stdout=out, stderr=err)
    assert out.getvalue().strip().splitlines()[-1] == "0"


@pytest.mark.django_db
def test_erasure_shreds_the_data_key_and_leaves_others_untouched(source_factory, settings):
    shop = source_factory("shop")
    gone, kept = profiles_ingest(source=shop, records=[
        {"external_id": "1", "identifiers": {"email": "gone@example.com"}, "attributes": {"first_name": "Gone"}},
        {"external_id": "2", "identifiers": {"email": "kept@example.com"}, "attributes": {"first_name": "Kept"}},
    ])
    profile = Profile.objects.select_related("data_key").get(pk=gone.profile_id)
    wrapped, kek_id, key_id = bytes(profile.data_key.wrapped), profile.data_key.kek_id, profile.data_key_id
    ciphertext = bytes(Identity.objects.get(profile_id=gone.profile_id).value)
    profile_erase(profile_id=gone.profile_id)
    assert not DataKey.objects.filter(pk=key_id).exists()
    assert not Identity.objects.filter(profile_id=gone.profile_id).exists()
    assert not SourceRecord.objects.filter(profile_id=gone.profile_id).exists()
    # Even a backup copy of the ciphertext is useless: the wrapped key no longer exists,
    # and no master key decrypts the field directly.
    for master in settings.TESSERA_MASTER_KEYS:
        with pytest.raises(DecryptionError):
            crypto.decrypt_value(master, owner_id=gone.profile_id, field="identity.value", ciphertext=ciphertext)
    assert kek_id  # the key existed before erasure
    assert wrapped
    assert profile_unified_view(profile_id=kept.profile_id)["attributes"]["first_name"]["value"] == "Kept"
    from cdp.core.errors import Gone

    with pytest.raises(Gone):
        profile_unified_view(profile_id=gone.profile_id)
