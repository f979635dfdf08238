"""Rows identity resolution holds in memory for one batch.

Plain slotted objects named like the model fields (attnames), so bulk_update_fields and
the domain's row functions (attribute_row_fill, record_payload_write, record_payload_move,
identity_value_move) work on them as on model instances, without building any; `stored`
tells a row already in the database from one still to insert.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field

from cdp.models import Source
from cdp.services.records import IdentifierKey


class RecordRow:
    __slots__ = ("id", "source_id", "external_key", "profile_id", "status", "held_key_id", "payload",
                 "payload_digest", "is_current", "observed_at", "received_at", "stored", "plain",
                 "kek_id", "wrapped")

    def __init__(self, id, source_id, external_key, profile_id, status, payload_digest, is_current, observed_at, *,
                 stored, held_key_id=None, payload=None, received_at=None, plain=None, kek_id=None, wrapped=None):
        self.id, self.source_id, self.external_key, self.profile_id = id, source_id, external_key, profile_id
        self.status, self.payload_digest, self.is_current, self.observed_at = status, payload_digest, is_current, \
            observed_at
        self.stored, self.held_key_id, self.payload, self.received_at = stored, held_key_id, payload, received_at
        self.plain = plain  # the decrypted payload, when this batch has it in memory
        self.kek_id, self.wrapped = kek_id, wrapped  # a held record's wrapped data key

    @property
    def pk(self):
        return self.id


class IdentityRow:
    __slots__ = ("id", "profile_id", "kind", "namespace", "blind_index", "value", "plain", "record_id",
                 "priority", "last_seen_at", "source_id", "assurance")

    def __init__(self, profile_id, key: IdentifierKey, value: bytes, record_id, source: Source, last_seen_at):
        self.id = None
        self.profile_id, self.kind, self.namespace, self.blind_index = profile_id, key.kind, key.namespace, \
            key.blind_index
        self.value, self.plain, self.record_id, self.priority, self.last_seen_at = value, key.value, record_id, \
            source.trust, last_seen_at
        self.source_id, self.assurance = source.id, source.assurance

    @property
    def pk(self):
        return self.id


class Provenance:
    """A stored identity whose provenance a more trusted source takes over (rule 5)."""

    __slots__ = ("id", "source_id", "assurance")

    def __init__(self, id, source_id, assurance):
        self.id, self.source_id, self.assurance = id, source_id, assurance

    @property
    def pk(self):
        return self.id


class AttributeRow:
    __slots__ = ("id", "profile_id", "name", "source_id", "record_id", "observed_at", "is_personal",
                 "value_cipher", "value_plain")

    def __init__(self, id, profile_id, name, source_id, observed_at=None):
        self.id, self.profile_id, self.name, self.source_id, self.observed_at = id, profile_id, name, source_id, \
            observed_at
        self.record_id = self.is_personal = self.value_cipher = self.value_plain = None

    @property
    def pk(self):
        return self.id


def attribute_row_new(profile_id, name: str, source_id) -> AttributeRow:
    return AttributeRow(None, profile_id, name, source_id)


@dataclass
class ProfileState:
    id: object
    created_at: object
    status: str
    dek: bytes
    scoped: dict = field(default_factory=dict)          # (kind, namespace) -> blind index
    counts: Counter = field(default_factory=Counter)     # kind -> identities held


@dataclass
class PendingMerge:
    survivor: object
    absorbed: object
    survivor_dek: bytes
    absorbed_dek: bytes
    merge_id: uuid.UUID
    merged_at: object
    records: list                # rows of this batch that moved (ids known now)
    identities: list             # IdentityRow rows of this batch that moved (ids given when stored)


RECORD_COLUMNS = ("id", "source_id", "external_key", "profile_id", "status", "held_key_id", "payload",
                  "payload_digest", "is_current", "observed_at", "received_at")
IDENTITY_COLUMNS = ("id", "profile_id", "kind", "namespace", "blind_index", "index_key_version", "value",
                    "record_id", "priority", "source_id", "assurance", "created_at", "last_seen_at")
ATTRIBUTE_COLUMNS = ("id", "profile_id", "name", "source_id", "record_id", "observed_at", "is_personal",
                     "value_cipher", "value_plain")
ATTRIBUTE_UPDATE = ["value_cipher", "value_plain", "is_personal", "record", "observed_at"]
