"""Encrypting and moving SourceRecord payloads between owners (profile or held key).

Every path that writes a payload goes through these functions: the API and corrections
with model instances, identity resolution with its slotted rows and its batch's cipher
(`crypto.ValueCipher`, one AES-GCM context per data key), merges with either.
"""

from __future__ import annotations

from cdp import crypto
from cdp.models import SourceRecord

PAYLOAD_FIELD = "source_record.payload"


def record_owner_id(record: SourceRecord):
    # Held records are encrypted under their own key, owned by the record itself.
    return record.profile_id if record.profile_id else record.id


def record_payload_write(record: SourceRecord, payload: dict, *, dek: bytes,
                         cipher: crypto.ValueCipher | None = None) -> None:
    record.payload = (cipher or crypto.ValueCipher()).encrypt(dek, owner_id=record_owner_id(record),
                                                              field=PAYLOAD_FIELD, value=payload)


def record_payload_read(record: SourceRecord, *, dek: bytes, cipher: crypto.ValueCipher | None = None) -> dict:
    return (cipher or crypto.ValueCipher()).decrypt(dek, owner_id=record_owner_id(record), field=PAYLOAD_FIELD,
                                                    ciphertext=record.payload)


def record_payload_move(record: SourceRecord, *, new_profile_id, new_dek: bytes, old_dek: bytes | None = None,
                        payload: dict | None = None, cipher: crypto.ValueCipher | None = None) -> None:
    """Re-encrypt the payload for its new owner and point the record at it. `payload`:
    the plaintext when the caller holds it already (then `old_dek` is not needed)."""
    if payload is None:
        payload = record_payload_read(record, dek=old_dek, cipher=cipher)
    record.profile_id = new_profile_id
    record_payload_write(record, payload, dek=new_dek, cipher=cipher)
