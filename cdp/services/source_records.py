"""Encrypting and moving SourceRecord payloads between owners (profile or held key)."""

from __future__ import annotations

from cdp import crypto
from cdp.models import SourceRecord

PAYLOAD_FIELD = "source_record.payload"


def record_owner_id(record: SourceRecord):
    # Held records are encrypted under their own key, owned by the record itself.
    return record.profile_id if record.profile_id else record.id


def record_payload_write(record: SourceRecord, payload: dict, *, dek: bytes) -> None:
    record.payload = crypto.encrypt_value(dek, owner_id=record_owner_id(record), field=PAYLOAD_FIELD, value=payload)


def record_payload_read(record: SourceRecord, *, dek: bytes) -> dict:
    return crypto.decrypt_value(dek, owner_id=record_owner_id(record), field=PAYLOAD_FIELD,
                                ciphertext=record.payload)


def record_payload_move(record: SourceRecord, *, old_dek: bytes, new_profile_id, new_dek: bytes) -> None:
    """Re-encrypt the payload for its new owner and point the record at it."""
    payload = record_payload_read(record, dek=old_dek)
    record.profile_id = new_profile_id
    record_payload_write(record, payload, dek=new_dek)
