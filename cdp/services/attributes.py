"""Attribute values with lineage: writing one source's observation, rebuilding a
profile's values from its records (after a merge or unmerge), and survivorship.

Personal attribute values are encrypted under the profile's data key; attributes an
operator declared non-personal (settings.TESSERA_NON_PERSONAL_ATTRIBUTES) are plain JSON.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings

from cdp import crypto
from cdp.models import AttributeValue, SourceRecord


def attribute_field(name: str) -> str:
    return f"attribute:{name}"


def is_personal(name: str) -> bool:
    return name not in settings.TESSERA_NON_PERSONAL_ATTRIBUTES


def attribute_row_fill(row: AttributeValue, *, dek: bytes, value, record_id, observed_at: datetime) -> None:
    """Set a row's value (encrypting it when personal) and lineage."""
    row.is_personal = is_personal(row.name)
    if row.is_personal:
        row.value_cipher = crypto.encrypt_value(dek, owner_id=row.profile_id, field=attribute_field(row.name),
                                                value=value)
        row.value_plain = None
    else:
        row.value_cipher = None
        row.value_plain = value
    row.record_id = record_id
    row.observed_at = observed_at


def attribute_value_read(row: AttributeValue, *, dek: bytes):
    if not row.is_personal:
        return row.value_plain
    return crypto.decrypt_value(dek, owner_id=row.profile_id, field=attribute_field(row.name),
                                ciphertext=row.value_cipher)


def attributes_rebuild(*, profile_id, dek: bytes) -> None:
    """Recompute a profile's attribute rows from its current records (newest per source wins)."""
    from cdp.services.source_records import record_payload_read

    AttributeValue.objects.filter(profile_id=profile_id).delete()
    newest: dict[tuple[str, object], tuple[datetime, object, object]] = {}
    records = SourceRecord.objects.filter(profile_id=profile_id, is_current=True).order_by("observed_at", "id")
    for record in records:
        payload = record_payload_read(record, dek=dek)
        for name, value in payload.get("attributes", {}).items():
            key = (name, record.source_id)
            if key not in newest or record.observed_at >= newest[key][0]:
                newest[key] = (record.observed_at, value, record.id)
    rows = []
    for (name, source_id), (observed_at, value, record_id) in newest.items():
        row = AttributeValue(profile_id=profile_id, name=name, source_id=source_id)
        attribute_row_fill(row, dek=dek, value=value, record_id=record_id, observed_at=observed_at)
        rows.append(row)
    AttributeValue.objects.bulk_create(rows)
