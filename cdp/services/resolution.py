"""Identity resolution: records from many sources become one profile per person.

`profiles_ingest` takes a batch of raw records from one source and answers one result
per record, in input order. Per batch it makes a fixed number of queries (lock, read
identities / records / held records, bulk writes). Merges are decided in memory as the
batch is resolved and written together when it is stored, a few statements for all of
them (plus consent's own work per merge); only a merge that would push a profile past an
identifier cap takes the slow path (store everything so far, then `profile_merge`).

The hot path builds no Django model instances: rows are small slotted objects, written
as tuples with COPY (cdp.core.bulk.insert_rows), and every data key is unwrapped once
and its AES-GCM context built once per batch.

Reads identifiers as blind indexes, writes ciphertexts under each profile's data key;
logs nothing personal.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone

from cdp import crypto
from cdp.core.advisory import advisory_locks
from cdp.core.bulk import any_of, bulk_update_fields, insert_rows, reserve_ids, rows_any_of
from cdp.core.errors import Conflict, Gone
from cdp.core.ids import new_uuid4
from cdp.core.outbox import outbox_put_many
from cdp.models import (
    Assurance,
    AttributeValue,
    DataKey,
    HeldIdentifier,
    Identity,
    MergeBlock,
    MergeConflict,
    Profile,
    ProfileStatus,
    RecordStatus,
    Source,
    SourceRecord,
    Suppression,
)
from cdp.services import identity_rules
from cdp.services.attributes import attribute_field
from cdp.services.merges import MergeStep, merges_apply, profile_merge
from cdp.services.profiles import IDENTITY_FIELD, profiles_touch
from cdp.services.records import IdentifierKey, ParsedRecord, RecordRejected, parse_record
from cdp.services.source_records import PAYLOAD_FIELD

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 4
_TICK = timedelta(microseconds=1)


@dataclass
class RecordResult:
    index: int
    status: str
    profile_id: str | None = None
    errors: list[dict] = field(default_factory=list)
    # The profiles this record merged into `profile_id` (not part of the API's answer):
    # callers holding identifier owners read before know which of them went stale.
    merged_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"index": self.index, "status": self.status, "profile_id": self.profile_id, "errors": self.errors}


def profiles_ingest(*, source: Source, records: list, identifier_cache: dict | None = None) -> list[RecordResult]:
    """Validate, resolve and store a batch of records from one source.

    A bad record is rejected alone; concurrent batches over the same people are
    serialized by per-identifier locks taken in a stable order, and retried on a
    deadlock or a lost race. `identifier_cache`: a dict the caller keeps for this one
    batch of this source (see records.parse_identifiers), shared with its other calls.
    """
    results: dict[int, RecordResult] = {}
    parsed: list[ParsedRecord] = []
    cache = {} if identifier_cache is None else identifier_cache  # this batch only
    for index, raw in enumerate(records):
        try:
            parsed.append(parse_record(raw, index=index, source_key=source.key, cache=cache,
                                       zone=source.zone))
        except RecordRejected as exc:
            results[index] = RecordResult(index, "rejected", errors=exc.errors)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                resolved = _Resolver(source).run(parsed)
            break
        except (OperationalError, IntegrityError):
            # Deadlock or a unique-key race with a concurrent batch: the transaction
            # rolled back whole, so running it again is safe.
            if attempt == MAX_ATTEMPTS:
                raise
            logger.warning("resolution_retry", extra={"attempt": attempt, "source": source.key})
    results.update({r.index: r for r in resolved})
    return [results[i] for i in range(len(records))]


# --- rows held in memory ------------------------------------------------------------------
# Plain slotted objects named like the model fields (attnames), so bulk_update_fields can
# read them; `stored` tells a row already in the database from one still to insert.

class _Record:
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


class _Identity:
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


class _Provenance:
    """A stored identity whose provenance a more trusted source takes over (rule 5)."""

    __slots__ = ("id", "source_id", "assurance")

    def __init__(self, id, source_id, assurance):
        self.id, self.source_id, self.assurance = id, source_id, assurance

    @property
    def pk(self):
        return self.id


class _Attribute:
    __slots__ = ("id", "profile_id", "name", "source_id", "record_id", "observed_at", "is_personal",
                 "value_cipher", "value_plain")

    def __init__(self, id, profile_id, name, source_id, observed_at=None):
        self.id, self.profile_id, self.name, self.source_id, self.observed_at = id, profile_id, name, source_id, \
            observed_at
        self.record_id = self.is_personal = self.value_cipher = self.value_plain = None

    @property
    def pk(self):
        return self.id


@dataclass
class _ProfileState:
    id: object
    created_at: object
    status: str
    dek: bytes
    scoped: dict = field(default_factory=dict)          # (kind, namespace) -> blind index
    counts: Counter = field(default_factory=Counter)     # kind -> identities held


@dataclass
class _PendingMerge:
    survivor: object
    absorbed: object
    merge_id: uuid.UUID
    merged_at: object
    records: list                # rows of this batch that moved (ids known now)
    identities: list             # _Identity rows of this batch that moved (ids given when stored)


_RECORD_COLUMNS = ("id", "source_id", "external_key", "profile_id", "status", "held_key_id", "payload",
                   "payload_digest", "is_current", "observed_at", "received_at")
_IDENTITY_COLUMNS = ("id", "profile_id", "kind", "namespace", "blind_index", "index_key_version", "value",
                     "record_id", "priority", "source_id", "assurance", "created_at", "last_seen_at")
_ATTRIBUTE_COLUMNS = ("id", "profile_id", "name", "source_id", "record_id", "observed_at", "is_personal",
                      "value_cipher", "value_plain")
_ATTRIBUTE_UPDATE = ["value_cipher", "value_plain", "is_personal", "record", "observed_at"]


class _Resolver:
    """Working state for one batch inside one transaction."""

    # False: every merge takes the slow path (store, then profile_merge), as before
    # merges were decided in memory; tests compare the two.
    defer_merges = True

    def __init__(self, source: Source):
        self.source = source
        self.now = timezone.now()
        # Received-at clock: a record stored after a merge of this batch is received after
        # it (merge_undo re-resolves exactly those records), so merges advance the clock.
        self.clock = self.now
        self.cipher = crypto.ValueCipher()
        self.index_key_version = crypto.index_key_version()
        self.non_personal = settings.TESSERA_NON_PERSONAL_ATTRIBUTES
        self.caps = settings.TESSERA_IDENTIFIER_CAPS
        self.owner: dict[tuple, object] = {}                 # identity key -> profile id
        self.provenance: dict[tuple, tuple] = {}             # stored identity key -> (id, assurance)
        self.keys_of: dict[object, set] = defaultdict(set)   # profile id -> its keys in `owner`
        self.profiles: dict[object, _ProfileState] = {}
        self.deks: dict[object, bytes] = {}                  # every profile seen, absorbed ones too
        self.current: dict[str, _Record] = {}                # external key -> current version
        self.current_of: dict[object, set] = defaultdict(set)  # profile id -> external keys in `current`
        self.held: dict[tuple, list[_Record]] = defaultdict(list)
        self.held_keys: dict[object, bytes] = {}
        self.blocks: set[frozenset] = set()
        self.attributes: dict[object, dict[tuple, _Attribute]] = {}
        self.touched: set = set()
        self.created: set = set()
        self.profiles_created = 0
        self.outbox: list[tuple[str, dict]] = []
        self.retired: set = set()                            # stored records no longer current
        # Stored rows of a profile absorbed in this batch stay under its id until the
        # batch is stored: members[p] = the profile ids whose stored rows are p's now.
        self.members: dict[object, set] = {}
        self.stored_current: dict[object, list] = {}         # owner id -> its stored current records
        self._reset_pending()

    def _reset_pending(self) -> None:
        self.new_keys: list[tuple] = []                      # (id, kek id, wrapped)
        self.new_profiles: list[tuple] = []                  # (id, data key id, created at)
        self.new_records: list[_Record] = []
        self.rows_of: dict[object, list[_Record]] = defaultdict(list)  # profile id -> its rows to store
        self.retired_records: list = []
        self.new_identities: list[_Identity] = []
        self.identities_of: dict[object, list[_Identity]] = defaultdict(list)
        self.dropped_identities: list = []
        self.improved_provenance: dict[int, _Provenance] = {}  # stored identity id -> its new provenance
        self.new_held_identifiers: list[tuple] = []          # (record id, kind, namespace, blind index)
        self.attached_held: list[_Record] = []
        self.new_attributes: dict[object, dict[tuple, _Attribute]] = defaultdict(dict)    # by profile id
        self.changed_attributes: dict[object, dict[int, _Attribute]] = defaultdict(dict)  # by profile id
        self.replaced_attributes: set = set()                # profiles whose stored attribute rows go
        self.conflicts: list[tuple] = []                     # (id, profile id, reason, others, external key)
        self.merges: list[_PendingMerge] = []

    # --- loading -------------------------------------------------------------------------
    def run(self, records: list[ParsedRecord]) -> list[RecordResult]:
        keys = {k.key for r in records for k in r.identifiers}
        external_keys = {r.external_key for r in records}
        advisory_locks(sorted({k[2] for k in keys} | external_keys))
        suppressed = self._suppressed(keys)
        self._load_current(external_keys)
        self._load_identities(keys)
        self._load_held(keys)
        self._prefetch_for_merges(records)
        # After the locks: a merge another batch committed before them is older than ours.
        self.clock = max(self.clock, timezone.now())
        results = []
        for record in records:
            if any(k.key in suppressed for k in record.identifiers):
                results.append(RecordResult(record.index, "suppressed"))
                continue
            results.append(self._resolve(record))
        self._flush(final=True)
        profiles_touch(self.touched - self.created)
        self.outbox += [("profile.created", {"profile_id": str(p)}) for p in self.created]
        self.outbox += [("profile.updated", {"profile_id": str(p)}) for p in self.touched - self.created]
        outbox_put_many(self.outbox)
        return results

    def _suppressed(self, keys) -> set:
        if not keys:
            return set()
        return set(rows_any_of(Suppression, ("kind", "namespace", "blind_index"), "blind_index",
                               {k[2] for k in keys})) & keys

    def _load_current(self, external_keys) -> None:
        rows = rows_any_of(SourceRecord, ("id", "external_key", "profile_id", "status", "held_key_id",
                                          "payload_digest", "observed_at"), "external_key", external_keys,
                           source_id=self.source.id, is_current=True)
        for record_id, external_key, profile_id, status, held_key_id, digest, observed_at in rows:
            self.current[external_key] = _Record(record_id, self.source.id, external_key, profile_id, status, digest,
                                                 True, observed_at, stored=True, held_key_id=held_key_id)
            if profile_id:
                self.current_of[profile_id].add(external_key)

    def _load_identities(self, keys) -> None:
        if not keys:
            return
        rows = rows_any_of(Identity, ("kind", "namespace", "blind_index", "profile_id", "id", "assurance"),
                           "blind_index", {k[2] for k in keys})
        for kind, namespace, index, profile_id, identity_id, assurance in rows:
            if (kind, namespace, index) in keys:
                self.owner[(kind, namespace, index)] = profile_id
                self.keys_of[profile_id].add((kind, namespace, index))
                self.provenance[(kind, namespace, index)] = (identity_id, assurance)
        profile_ids = set(self.owner.values()) | {r.profile_id for r in self.current.values() if r.profile_id}
        self._load_profiles(profile_ids)

    def _load_profiles(self, profile_ids) -> None:
        missing = [pid for pid in profile_ids if pid not in self.profiles]
        if not missing:
            return
        # Lock the people this batch touches, in id order, so a concurrent merge waits.
        locked = Profile.objects.select_for_update(of=("self",)).filter(any_of(Profile, "id", missing)).order_by(
            "id").values_list("id", "created_at", "status", "data_key_id", "data_key__kek_id", "data_key__wrapped")
        for profile_id, created_at, status, key_id, kek_id, wrapped in locked:
            if key_id is None:
                raise Gone("The profile was erased.", code="erased")
            dek = crypto.data_key_unwrap(key_id, kek_id, wrapped)  # once per profile and batch
            self.profiles[profile_id] = _ProfileState(profile_id, created_at, status, dek)
            self.deks[profile_id] = dek
        for kind, namespace, index, profile_id in rows_any_of(
                Identity, ("kind", "namespace", "blind_index", "profile_id"), "profile_id", missing):
            state = self.profiles[profile_id]
            state.counts[kind] += 1
            if namespace:
                state.scoped[(kind, namespace)] = index
        for profile_id in missing:
            self.attributes.setdefault(profile_id, {})
        for row_id, profile_id, name, source_id, observed_at in rows_any_of(
                AttributeValue, ("id", "profile_id", "name", "source_id", "observed_at"), "profile_id", missing):
            self.attributes[profile_id][(name, source_id)] = _Attribute(row_id, profile_id, name, source_id,
                                                                        observed_at)
        for low, high in MergeBlock.objects.filter(any_of(MergeBlock, "profile_low_id", missing)).values_list(
                "profile_low_id", "profile_high_id").union(
                MergeBlock.objects.filter(any_of(MergeBlock, "profile_high_id", missing)).values_list(
                    "profile_low_id", "profile_high_id")):
            self.blocks.add(frozenset((low, high)))

    def _load_held(self, keys) -> None:
        if not keys:
            return
        rows = HeldIdentifier.objects.filter(any_of(HeldIdentifier, "blind_index", {k[2] for k in keys})).values_list(
            "kind", "namespace", "blind_index", "record_id")
        by_record = defaultdict(list)
        for kind, namespace, index, record_id in rows:
            if (kind, namespace, index) in keys:
                by_record[record_id].append((kind, namespace, index))
        if not by_record:
            return
        records = SourceRecord.objects.select_for_update(of=("self",)).filter(
            any_of(SourceRecord, "id", by_record), status=RecordStatus.HELD).order_by("id").values_list(
            "id", "source_id", "external_key", "profile_id", "status", "held_key_id", "held_key__kek_id",
            "held_key__wrapped", "payload", "payload_digest", "is_current", "observed_at")
        for (record_id, source_id, external_key, profile_id, status, held_key_id, kek_id, wrapped, payload, digest,
             is_current, observed_at) in records:
            record = _Record(record_id, source_id, external_key, profile_id, status, digest, is_current, observed_at,
                             stored=True, held_key_id=held_key_id, payload=bytes(payload), kek_id=kek_id,
                             wrapped=wrapped)
            for key in by_record[record_id]:
                self.held[key].append(record)

    # --- resolving ------------------------------------------------------------------------
    def _resolve(self, record: ParsedRecord) -> RecordResult:
        previous = self.current.get(record.external_key)
        if previous is not None and record.digest_matches(previous.payload_digest):
            return RecordResult(record.index, "unchanged" if previous.profile_id else "held",
                                str(previous.profile_id) if previous.profile_id else None)
        matched = self._matched_profiles(record, previous)
        if self.source.is_third_party:
            return self._resolve_third_party(record, previous, matched)
        return self._resolve_first_party(record, previous, matched)

    def _matched_profiles(self, record: ParsedRecord, previous: _Record | None) -> list:
        matched = []
        if previous is not None and previous.profile_id:
            matched.append(previous.profile_id)  # the same external id is the same entity
        for key in record.identifiers:
            profile_id = self.owner.get(key.key)
            if profile_id is not None and profile_id not in matched:
                matched.append(profile_id)
        return matched

    def _resolve_third_party(self, record, previous, matched) -> RecordResult:
        # Third-party data never creates a profile, merges people or adds identifiers.
        if not matched:
            self._store_held(record, previous)
            return RecordResult(record.index, "held")
        target = self._oldest(matched)
        self._store_attached(record, previous, target, add_identities=False)
        return RecordResult(record.index, "updated", str(target))

    def _resolve_first_party(self, record, previous, matched) -> RecordResult:
        if not matched:
            target = self._create_profile()
            self._store_attached(record, previous, target)
            return RecordResult(record.index, "created", str(target))
        violation = self._protection_violation(matched, record)
        if violation is None:
            survivor = self._oldest(matched)
            others = [p for p in matched if p != survivor]
            for absorbed in others:
                self._merge(survivor, absorbed)
            if self._store_attached(record, previous, survivor):
                self._hold_for_review(record, survivor, identity_rules.UNTRUSTED_CONTACT, others=[])
                return RecordResult(record.index, "conflict", str(survivor), merged_ids=[str(p) for p in others])
            return RecordResult(record.index, "merged" if others else "updated", str(survivor),
                                merged_ids=[str(p) for p in others])
        target = self._conflict_target(matched, record)
        self._store_attached(record, previous, target)
        self._hold_for_review(record, target, violation, others=[p for p in matched if p != target])
        return RecordResult(record.index, "conflict", str(target))

    def _hold_for_review(self, record: ParsedRecord, profile_id, reason: str, *, others: list) -> None:
        """A link the rules refused, queued for an operator with its reason (the record is kept)."""
        self.conflicts.append((uuid.uuid4(), profile_id, reason, sorted(str(p) for p in others),
                               record.external_key))

    def _protection_violation(self, matched: list, record: ParsedRecord) -> str | None:
        for i, first in enumerate(matched):
            for second in matched[i + 1:]:
                if frozenset((first, second)) in self.blocks:
                    return "merge_blocked"
        scoped: dict[tuple, set] = defaultdict(set)
        for profile_id in matched:
            for slot, index in self.profiles[profile_id].scoped.items():
                scoped[slot].add(index)
        for key in record.identifiers:
            if key.is_source_scoped:
                scoped[(key.kind, key.namespace)].add(key.blind_index)
        if any(len(indexes) > 1 for indexes in scoped.values()):
            return "conflicting_source_ids"
        with_contacts = sum(1 for pid in matched if identity_rules.contacts_held(self.profiles[pid].counts))
        if identity_rules.merge_refused(assurance=self.source.assurance, profiles_with_contacts=with_contacts):
            return identity_rules.UNTRUSTED_MERGE
        return None

    def _conflict_target(self, matched: list, record: ParsedRecord):
        """The record goes to the profile its source-scoped id names; a new scoped id
        that clashes with the best match's own gets a profile of its own."""
        for key in record.identifiers:
            if key.is_source_scoped and key.key in self.owner:
                return self.owner[key.key]
        if self.source.assurance == Assurance.CLIENT:
            # A public write key's record stays with the visitor it knows by its own ids,
            # never with the person its contact identifier names.
            for key in record.identifiers:
                if key.kind not in identity_rules.CONTACT_KINDS and key.key in self.owner:
                    return self.owner[key.key]
        anchor = self._oldest(matched)
        clashes = any(
            key.is_source_scoped and self.profiles[anchor].scoped.get((key.kind, key.namespace)) not in
            (None, key.blind_index) for key in record.identifiers)
        return self._create_profile() if clashes else anchor

    def _oldest(self, profile_ids: list):
        return min(profile_ids, key=lambda pid: (self.profiles[pid].created_at or self.now, str(pid)))

    # --- writing --------------------------------------------------------------------------
    def _create_profile(self):
        key_id, kek_id, wrapped, dek = crypto.data_key_material_new()
        profile_id = new_uuid4()
        # Profiles of one batch are created a microsecond apart, in record order, so "the
        # oldest survives" also decides between them, now and in later batches.
        self.profiles_created += 1
        created_at = self.now + _TICK * self.profiles_created
        self.new_keys.append((key_id, kek_id, wrapped))
        self.new_profiles.append((profile_id, key_id, created_at))
        self.profiles[profile_id] = _ProfileState(profile_id, created_at, ProfileStatus.ACTIVE, dek)
        self.deks[profile_id] = dek
        self.stored_current[profile_id] = []  # a new profile has no stored records
        self.attributes[profile_id] = {}
        self.created.add(profile_id)
        self.touched.add(profile_id)
        return profile_id

    def _new_record(self, record: ParsedRecord, previous, *, profile_id) -> _Record:
        if previous is not None and not previous.stored:
            previous.is_current = False  # two versions in one batch: both kept, the later current
        elif previous is not None:
            self.retired_records.append(previous.id)
            self.retired.add(previous.id)
        row = _Record(new_uuid4(), self.source.id, record.external_key, profile_id,
                      RecordStatus.ATTACHED if profile_id else RecordStatus.HELD, record.digest, True,
                      record.observed_at, stored=False, received_at=self.clock, plain=record.payload())
        self.new_records.append(row)
        self.current[record.external_key] = row
        if profile_id:
            self.rows_of[profile_id].append(row)
            self.current_of[profile_id].add(record.external_key)
        return row

    def _store_held(self, record: ParsedRecord, previous) -> None:
        row = self._new_record(record, previous, profile_id=None)
        key_id, kek_id, wrapped, dek = crypto.data_key_material_new()
        self.new_keys.append((key_id, kek_id, wrapped))
        row.held_key_id = key_id
        # Held records are encrypted under their own key, owned by the record itself.
        row.payload = self.cipher.encrypt(dek, owner_id=row.id, field=PAYLOAD_FIELD, value=row.plain)
        self.held_keys[row.id] = dek
        for key in record.identifiers:
            self.new_held_identifiers.append((row.id, key.kind, key.namespace, key.blind_index))
            self.held[key.key].append(row)

    def _store_attached(self, record: ParsedRecord, previous, profile_id, *, add_identities: bool = True) -> bool:
        """Store the record under the profile; True when the rules refused one of its
        identifiers (the caller holds that link for review)."""
        state = self.profiles[profile_id]
        row = self._new_record(record, previous, profile_id=profile_id)
        row.payload = self.cipher.encrypt(state.dek, owner_id=profile_id, field=PAYLOAD_FIELD, value=row.plain)
        self._upsert_attributes(profile_id, self.source.id, row.id, record.attributes, record.observed_at)
        refused = False
        if add_identities:
            contacts = identity_rules.contacts_held(state.counts)  # before this record's own
            for key in record.identifiers:
                owner = self.owner.get(key.key)
                if owner is not None:
                    if owner == profile_id:
                        self._improve_provenance(key)
                elif identity_rules.contact_attach_refused(assurance=self.source.assurance, kind=key.kind,
                                                           contacts_held=contacts):
                    refused = True
                elif self._claim_slot(state, key):
                    self._add_identity(profile_id, key, row.id)
                    self._attach_held(profile_id, key)
        self.touched.add(profile_id)
        return refused

    def _improve_provenance(self, key: IdentifierKey) -> None:
        """A stored identifier this (more trusted) source asserts too takes its provenance."""
        stored = self.provenance.get(key.key)
        if stored is None or not identity_rules.outranks(self.source.assurance, stored[1]):
            return
        self.provenance[key.key] = (stored[0], self.source.assurance)
        self.improved_provenance[stored[0]] = _Provenance(stored[0], self.source.id, self.source.assurance)

    def _claim_slot(self, state: _ProfileState, key: IdentifierKey) -> bool:
        """Whether the profile may take this identifier (one scoped id per source; caps)."""
        if key.is_source_scoped:
            existing = state.scoped.get((key.kind, key.namespace))
            if existing not in (None, key.blind_index):
                return False
            state.scoped[(key.kind, key.namespace)] = key.blind_index
            return True
        cap = self.caps.get(key.kind)
        if cap is not None and state.counts[key.kind] >= cap:
            return self._yield_lowest(state, key)
        state.counts[key.kind] += 1
        return True

    def _yield_lowest(self, state: _ProfileState, key: IdentifierKey) -> bool:
        """At the cap, the lowest-priority identifier (trust, then recency) yields."""
        if self.merges:
            self._flush()  # the stored identities below must include what merges moved
        candidates = [(priority, last_seen_at, pk, (pk, kind, namespace, index))
                      for pk, kind, namespace, index, priority, last_seen_at in Identity.objects.filter(
                          profile_id=state.id, kind=key.kind).exclude(id__in=self.dropped_identities).values_list(
                          "id", "kind", "namespace", "blind_index", "priority", "last_seen_at")]
        candidates += [(i.priority, i.last_seen_at, 0, i) for i in self.identities_of[state.id] if i.kind == key.kind]
        if not candidates:
            return False
        priority, _, _, lowest = min(candidates, key=lambda c: (c[0], c[1], c[2]))
        if priority > self.source.trust:
            return False
        if isinstance(lowest, tuple):
            pk, kind, namespace, index = lowest
            self.dropped_identities.append(pk)
        else:
            self.new_identities.remove(lowest)
            self.identities_of[state.id].remove(lowest)
            kind, namespace, index = lowest.kind, lowest.namespace, lowest.blind_index
        self.owner.pop((kind, namespace, index), None)
        return True

    def _add_identity(self, profile_id, key: IdentifierKey, record_id) -> None:
        state = self.profiles[profile_id]
        value = self.cipher.encrypt(state.dek, owner_id=profile_id, field=IDENTITY_FIELD, value=key.value)
        identity = _Identity(profile_id, key, value, record_id, self.source, self.now)
        self.new_identities.append(identity)
        self.identities_of[profile_id].append(identity)
        self.owner[key.key] = profile_id
        self.keys_of[profile_id].add(key.key)

    def _attach_held(self, profile_id, key: IdentifierKey) -> None:
        """Third-party records held for this identifier join the person now."""
        state = self.profiles[profile_id]
        for held in self.held.pop(key.key, []):
            if held.status != RecordStatus.HELD:
                continue
            dek = self.held_keys.get(held.id)
            if dek is None:
                dek = crypto.data_key_unwrap(held.held_key_id, held.kek_id, held.wrapped)
            payload = held.plain
            if payload is None:
                payload = held.plain = self.cipher.decrypt(dek, owner_id=held.id, field=PAYLOAD_FIELD,
                                                           ciphertext=held.payload)
            held.profile_id, held.status = profile_id, RecordStatus.ATTACHED
            held.payload = self.cipher.encrypt(state.dek, owner_id=profile_id, field=PAYLOAD_FIELD, value=payload)
            if not held.stored:  # held earlier in this same batch: never stored as held
                self.new_keys = [k for k in self.new_keys if k[0] != held.held_key_id]
                self.new_held_identifiers = [h for h in self.new_held_identifiers if h[0] != held.id]
                held.held_key_id = None
            else:
                self.attached_held.append(held)
            self.rows_of[profile_id].append(held)
            self.current_of[profile_id].add(held.external_key)
            self._upsert_attributes(profile_id, held.source_id, held.id, payload.get("attributes", {}),
                                    held.observed_at)

    def _upsert_attributes(self, profile_id, source_id, record_id, attributes: dict, observed_at) -> None:
        if not attributes:
            return
        dek = self.profiles[profile_id].dek
        existing = self._attributes_of(profile_id)
        for name, value in attributes.items():
            row = existing.get((name, source_id))
            if row is None:
                row = _Attribute(None, profile_id, name, source_id)
                existing[(name, source_id)] = row
                self.new_attributes[profile_id][(name, source_id)] = row
            elif row.observed_at > observed_at:
                continue  # an older observation never overwrites a newer one
            elif row.id is not None:
                self.changed_attributes[profile_id][row.id] = row
            self._attribute_fill(row, dek, value, record_id, observed_at)

    def _attribute_fill(self, row: _Attribute, dek: bytes, value, record_id, observed_at) -> None:
        """As attributes.attribute_row_fill: personal values encrypted, lineage kept."""
        row.is_personal = row.name not in self.non_personal
        if row.is_personal:
            row.value_cipher = self.cipher.encrypt(dek, owner_id=row.profile_id, field=attribute_field(row.name),
                                                   value=value)
            row.value_plain = None
        else:
            row.value_cipher = None
            row.value_plain = value
        row.record_id = record_id
        row.observed_at = observed_at

    def _attributes_of(self, profile_id) -> dict:
        if profile_id not in self.attributes:
            self.attributes[profile_id] = {
                (name, source_id): _Attribute(row_id, profile_id, name, source_id, observed_at)
                for row_id, name, source_id, observed_at in AttributeValue.objects.filter(
                    profile_id=profile_id).values_list("id", "name", "source_id", "observed_at")}
        return self.attributes[profile_id]

    # --- merging ---------------------------------------------------------------------------
    def _merge(self, survivor, absorbed) -> None:
        state, gone = self.profiles[survivor], self.profiles[absorbed]
        if state.status != ProfileStatus.ACTIVE or gone.status != ProfileStatus.ACTIVE:
            raise Conflict("Only active profiles can be merged.", code="profile_not_active")
        combined = state.counts + gone.counts
        if not self.defer_merges or any(combined[kind] > cap for kind, cap in self.caps.items()):
            self._merge_now(survivor, absorbed)  # identifiers must be trimmed: rare, slow path
        else:
            self._merge_in_memory(survivor, absorbed)
        self.profiles.pop(absorbed)
        for key in self.keys_of.pop(absorbed, ()):
            if self.owner.get(key) == absorbed:
                self.owner[key] = survivor
                self.keys_of[survivor].add(key)
        for external_key in self.current_of.pop(absorbed, ()):
            record = self.current.get(external_key)
            if record is not None and record.profile_id == absorbed:
                record.profile_id = survivor
                self.current_of[survivor].add(external_key)
        state.scoped.update(gone.scoped)
        self.blocks = {pair if absorbed not in pair else frozenset(survivor if p == absorbed else p for p in pair)
                       for pair in self.blocks}
        self.touched.discard(absorbed)
        self.created.discard(absorbed)
        self.touched.add(survivor)

    def _merge_now(self, survivor, absorbed) -> None:
        """Store everything so far, then merge through profile_merge (which trims to caps)."""
        self._flush()
        profile_merge(survivor_id=survivor, absorbed_id=absorbed)
        self.profiles[survivor].counts = _identity_counts(survivor)
        self.attributes.pop(survivor, None)
        self.attributes.pop(absorbed, None)
        self.stored_current.pop(survivor, None)
        self.stored_current.pop(absorbed, None)
        self.clock = max(self.clock, timezone.now()) + _TICK  # later records: received after the merge

    def _merge_in_memory(self, survivor, absorbed) -> None:
        """What profile_merge does, decided now and stored with the batch (`_flush`).

        This batch's own rows of the absorbed profile move (re-encrypted) before they are
        ever stored; its stored rows move when the batch is stored; the survivor's
        attributes are rebuilt from both profiles' current records, as attributes_rebuild
        does, so the rest of the batch builds on them.
        """
        state = self.profiles[survivor]
        merged_at = self.clock + _TICK
        self.clock = merged_at + _TICK
        moved_records = []
        for row in self.rows_of.pop(absorbed, ()):
            row.profile_id = survivor
            row.payload = self.cipher.encrypt(state.dek, owner_id=survivor, field=PAYLOAD_FIELD, value=row.plain)
            moved_records.append(row.id)
            self.rows_of[survivor].append(row)
        moved_identities = self.identities_of.pop(absorbed, [])
        for identity in moved_identities:
            identity.profile_id = survivor
            identity.value = self.cipher.encrypt(state.dek, owner_id=survivor, field=IDENTITY_FIELD,
                                                 value=identity.plain)
        self.identities_of[survivor] += moved_identities
        self.merges.append(_PendingMerge(survivor, absorbed, uuid.uuid4(), merged_at, moved_records,
                                         moved_identities))
        members = self.members.setdefault(survivor, {survivor})
        members |= self.members.pop(absorbed, {absorbed})
        state.counts = state.counts + self.profiles[absorbed].counts
        self._rebuild_attributes(survivor, absorbed)

    def _rebuild_attributes(self, survivor, absorbed) -> None:
        """The survivor's attribute rows from its current records: newest per (name, source)."""
        current = self._stored_current_of(self.members[survivor])
        current += [(row.observed_at, row.id, row.source_id, row.plain.get("attributes", {}))
                    for row in self.rows_of[survivor] if row.is_current]
        newest: dict[tuple, tuple] = {}
        for observed_at, record_id, source_id, attributes in sorted(current, key=lambda c: (c[0], c[1])):
            for name, value in attributes.items():
                key = (name, source_id)
                if key not in newest or observed_at >= newest[key][0]:
                    newest[key] = (observed_at, value, record_id)
        self.replaced_attributes |= {survivor, absorbed}
        for profile_id in (survivor, absorbed):
            self.new_attributes.pop(profile_id, None)
            self.changed_attributes.pop(profile_id, None)
        self.attributes.pop(absorbed, None)
        rows = self.attributes[survivor] = {}
        dek = self.profiles[survivor].dek
        for (name, source_id), (observed_at, value, record_id) in newest.items():
            row = rows[(name, source_id)] = _Attribute(None, survivor, name, source_id)
            self._attribute_fill(row, dek, value, record_id, observed_at)
        self.new_attributes[survivor] = dict(rows)

    def _stored_current_of(self, owners) -> list:
        """(observed_at, id, source id, attributes) of the stored current records under
        these profile ids, less those this batch replaced; decrypted once per batch."""
        self._read_stored_current([owner for owner in owners if owner not in self.stored_current])
        current = []
        for owner in owners:
            for entry in self.stored_current[owner]:
                if entry[1] in self.retired:
                    continue
                if entry[3] is None:
                    entry[3] = self.cipher.decrypt(self.deks[owner], owner_id=owner, field=PAYLOAD_FIELD,
                                                   ciphertext=entry[4]).get("attributes", {})
                current.append(entry[:4])
        return current

    def _read_stored_current(self, owners) -> None:
        if not owners:
            return
        for owner in owners:
            self.stored_current[owner] = []
        for record_id, owner, source_id, observed_at, payload in SourceRecord.objects.filter(
                any_of(SourceRecord, "profile_id", owners), is_current=True).values_list(
                "id", "profile_id", "source_id", "observed_at", "payload"):
            self.stored_current[owner].append([observed_at, record_id, source_id, None, payload])

    def _prefetch_for_merges(self, records: list[ParsedRecord]) -> None:
        """The stored current records of every profile a record of this batch might
        merge, in one query, so a merge needs no round trip of its own. Over-reading is
        cheap: payloads are decrypted only when a merge happens."""
        if self.source.is_third_party:
            return  # third-party data never merges
        candidates = set()
        for record in records:
            matched = {self.owner[k.key] for k in record.identifiers if k.key in self.owner}
            previous = self.current.get(record.external_key)
            if previous is not None and previous.profile_id:
                matched.add(previous.profile_id)
            if matched and (len(matched) > 1 or len(record.identifiers) + (previous is not None) > 1):
                candidates |= matched
        self._read_stored_current([pid for pid in candidates if pid in self.profiles])

    # --- storing ---------------------------------------------------------------------------
    def _flush(self, *, final: bool = False) -> None:
        """Store what the batch has decided so far. Rows get their auto-increment ids
        here only when something still needs them: a later step of this batch, or a
        merge listing the identities it moved."""
        now = self.now
        if self.retired_records:
            SourceRecord.objects.filter(any_of(SourceRecord, "id", self.retired_records)).update(is_current=False)
        insert_rows(DataKey, ("id", "kek_id", "wrapped", "created_at", "rotated_at"),
                    [(key_id, kek_id, wrapped, now, None) for key_id, kek_id, wrapped in self.new_keys])
        insert_rows(Profile, ("id", "status", "merged_into_id", "data_key_id", "version", "created_at",
                              "updated_at", "erased_at"),
                    [(profile_id, ProfileStatus.ACTIVE, None, key_id, 1, created_at, now, None)
                     for profile_id, key_id, created_at in self.new_profiles])
        insert_rows(SourceRecord, _RECORD_COLUMNS, [
            (r.id, r.source_id, r.external_key, r.profile_id, r.status, r.held_key_id, r.payload, r.payload_digest,
             r.is_current, r.observed_at, r.received_at) for r in self.new_records])
        for row in self.new_records:
            row.stored = True
        if self.dropped_identities:
            Identity.objects.filter(id__in=self.dropped_identities).delete()
        if final and not self.merges:
            insert_rows(Identity, _IDENTITY_COLUMNS[1:], [
                (i.profile_id, i.kind, i.namespace, i.blind_index, self.index_key_version, i.value, i.record_id,
                 i.priority, i.source_id, i.assurance, now, i.last_seen_at) for i in self.new_identities])
        else:
            for identity, pk in zip(self.new_identities, reserve_ids(Identity, len(self.new_identities))):
                identity.id = pk
            insert_rows(Identity, _IDENTITY_COLUMNS, [
                (i.id, i.profile_id, i.kind, i.namespace, i.blind_index, self.index_key_version, i.value,
                 i.record_id, i.priority, i.source_id, i.assurance, now, i.last_seen_at) for i in self.new_identities])
        if self.improved_provenance:
            bulk_update_fields(Identity, list(self.improved_provenance.values()), ["source", "assurance"])
        insert_rows(HeldIdentifier, ("record_id", "kind", "namespace", "blind_index"), self.new_held_identifiers)
        if self.attached_held:
            self._store_attached_held()
        if self.merges:
            self._store_merges()
        if self.replaced_attributes:
            AttributeValue.objects.filter(any_of(AttributeValue, "profile_id", self.replaced_attributes)).delete()
        new_attributes = [row for rows in self.new_attributes.values() for row in rows.values()]
        if final:
            insert_rows(AttributeValue, _ATTRIBUTE_COLUMNS[1:], [
                (a.profile_id, a.name, a.source_id, a.record_id, a.observed_at, a.is_personal, a.value_cipher,
                 a.value_plain) for a in new_attributes])
        else:
            for row, pk in zip(new_attributes, reserve_ids(AttributeValue, len(new_attributes))):
                row.id = pk
            insert_rows(AttributeValue, _ATTRIBUTE_COLUMNS, [
                (a.id, a.profile_id, a.name, a.source_id, a.record_id, a.observed_at, a.is_personal,
                 a.value_cipher, a.value_plain) for a in new_attributes])
        changed = [row for rows in self.changed_attributes.values() for row in rows.values()]
        if changed:
            bulk_update_fields(AttributeValue, changed, _ATTRIBUTE_UPDATE)
        insert_rows(MergeConflict, ("id", "record_id", "profile_id", "other_profiles", "reason", "status",
                                    "created_at", "resolved_at"), [
            (conflict_id, self.current[external_key].id, profile_id, others, reason, "open", now, None)
            for conflict_id, profile_id, reason, others, external_key in self.conflicts])
        self._reset_pending()
        # Everything is stored now: stored rows sit under their own profile again.
        self.members.clear()
        self.stored_current.clear()

    def _store_attached_held(self) -> None:
        ids = [r.id for r in self.attached_held]
        key_ids = [r.held_key_id for r in self.attached_held]
        for record in self.attached_held:
            record.held_key_id = None
        bulk_update_fields(SourceRecord, self.attached_held, ["profile", "status", "payload", "held_key"])
        HeldIdentifier.objects.filter(record_id__in=ids).delete()
        DataKey.objects.filter(id__in=key_ids).delete()

    def _store_merges(self) -> None:
        """The merges of this batch, in order, in waves of merges sharing no profile."""
        waves, wave, involved = [], [], set()
        for merge in self.merges:
            if merge.survivor in involved or merge.absorbed in involved:
                waves.append(wave)
                wave, involved = [], set()
            wave.append(merge)
            involved |= {merge.survivor, merge.absorbed}
        waves.append(wave)
        for wave in waves:
            merges_apply([
                MergeStep(survivor_id=m.survivor, absorbed_id=m.absorbed, survivor_dek=self.deks[m.survivor],
                          absorbed_dek=self.deks[m.absorbed], merge_id=m.merge_id, created_at=m.merged_at,
                          moved_records=m.records, moved_identities=[i.id for i in m.identities if i.id is not None])
                for m in wave], cipher=self.cipher)


def _identity_counts(profile_id) -> Counter:
    return Counter(Identity.objects.filter(profile_id=profile_id).values_list("kind", flat=True))
