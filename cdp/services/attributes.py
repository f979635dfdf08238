"""Attribute values with lineage: writing one source's observation, rebuilding a
profile's values from its records (after a merge or unmerge), and survivorship.

Personal attribute values are encrypted under the profile's data key; attributes an
operator declared non-personal (settings.TESSERA_NON_PERSONAL_ATTRIBUTES) are plain JSON.
Identity resolution fills and rebuilds its in-memory rows with these same functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from django.conf import settings

from cdp import crypto
from cdp.models import AttributeValue, SourceRecord
from cdp.services.source_records import record_payload_read


def attribute_field(name: str) -> str:
    return f"attribute:{name}"


def is_personal(name: str) -> bool:
    return name not in settings.TESSERA_NON_PERSONAL_ATTRIBUTES


def attribute_row_fill(row: AttributeValue, *, dek: bytes, value, record_id, observed_at: datetime,
                       cipher: crypto.ValueCipher | None = None) -> None:
    """Set a row's value (encrypting it when personal) and lineage. `row`: a model
    instance or any object with its attnames; `cipher`: a batch's, when there is one."""
    row.is_personal = is_personal(row.name)
    if row.is_personal:
        row.value_cipher = (cipher or crypto.ValueCipher()).encrypt(
            dek, owner_id=row.profile_id, field=attribute_field(row.name), value=value)
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


def _new_attribute_row(profile_id, name: str, source_id) -> AttributeValue:
    return AttributeValue(profile_id=profile_id, name=name, source_id=source_id)


def attribute_rows_rebuilt(*, profile_id, records: Iterable[tuple], dek: bytes,
                           new_row: Callable = _new_attribute_row, cipher: crypto.ValueCipher | None = None) -> list:
    """A profile's attribute rows (unsaved) from its current records, the newest value
    per (name, source) winning. `records`: (observed_at, record id, source id, the
    payload's attributes) each; `new_row(profile_id, name, source_id)` makes an empty row."""
    newest: dict[tuple[str, object], tuple[datetime, object, object]] = {}
    # Oldest first (ties by record id), so a later observation replaces an earlier one.
    for observed_at, record_id, source_id, attributes in sorted(records, key=lambda r: (r[0], r[1])):
        for name, value in attributes.items():
            newest[(name, source_id)] = (observed_at, value, record_id)
    rows = []
    for (name, source_id), (observed_at, value, record_id) in newest.items():
        row = new_row(profile_id, name, source_id)
        attribute_row_fill(row, dek=dek, value=value, record_id=record_id, observed_at=observed_at, cipher=cipher)
        rows.append(row)
    return rows


def attributes_rebuild(*, profile_id, dek: bytes) -> None:
    """Recompute a profile's attribute rows from its current records (newest per source wins)."""
    AttributeValue.objects.filter(profile_id=profile_id).delete()
    cipher = crypto.ValueCipher()
    records = [(record.observed_at, record.id, record.source_id,
                record_payload_read(record, dek=dek, cipher=cipher).get("attributes", {}))
               for record in SourceRecord.objects.filter(profile_id=profile_id, is_current=True)]
    AttributeValue.objects.bulk_create(attribute_rows_rebuilt(profile_id=profile_id, records=records, dek=dek,
                                                              cipher=cipher))
