"""Identity resolution: records from many sources become one profile per person.

`profiles_ingest` takes a batch of raw records from one source and answers one result
per record, in input order. Per batch it makes a fixed number of queries (lock, read
identities / records / held records, bulk writes); only merges, which are rare, do
per-profile work.

Reads identifiers as blind indexes, writes ciphertexts under each profile's data key;
logs nothing personal.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone

from cdp import crypto
from cdp.core.advisory import advisory_locks
from cdp.core.bulk import bulk_insert, bulk_update_fields
from cdp.core.outbox import outbox_put_many
from cdp.models import (
    AttributeValue,
    DataKey,
    HeldIdentifier,
    Identity,
    MergeBlock,
    MergeConflict,
    Profile,
    RecordStatus,
    Source,
    SourceRecord,
    Suppression,
)
from cdp.services.attributes import attribute_row_fill
from cdp.services.merges import profile_merge
from cdp.services.profiles import identity_value_encrypt, profile_new, profiles_touch
from cdp.services.records import IdentifierKey, ParsedRecord, RecordRejected, parse_record
from cdp.services.source_records import record_payload_read, record_payload_write

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 4


@dataclass
class RecordResult:
    index: int
    status: str
    profile_id: str | None = None
    errors: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"index": self.index, "status": self.status, "profile_id": self.profile_id, "errors": self.errors}


def profiles_ingest(*, source: Source, records: list) -> list[RecordResult]:
    """Validate, resolve and store a batch of records from one source.

    A bad record is rejected alone; concurrent batches over the same people are
    serialized by per-identifier locks taken in a stable order, and retried on a
    deadlock or a lost race.
    """
    results: dict[int, RecordResult] = {}
    parsed: list[ParsedRecord] = []
    for index, raw in enumerate(records):
        try:
            parsed.append(parse_record(raw, index=index, source_key=source.key))
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


@dataclass
class _ProfileState:
    profile: Profile
    dek: bytes
    scoped: dict = field(default_factory=dict)          # (kind, namespace) -> blind index
    counts: Counter = field(default_factory=Counter)     # kind -> identities held


class _Resolver:
    """Working state for one batch inside one transaction."""

    def __init__(self, source: Source):
        self.source = source
        self.now = timezone.now()
        self.owner: dict[tuple, object] = {}                 # identity key -> profile id
        self.profiles: dict[object, _ProfileState] = {}
        self.current: dict[str, SourceRecord] = {}           # external key -> current version
        self.held: dict[tuple, list[SourceRecord]] = defaultdict(list)
        self.held_keys: dict[object, DataKey] = {}
        self.blocks: set[frozenset] = set()
        self.attributes: dict[object, dict[tuple, AttributeValue]] = {}
        self.touched: set = set()
        self.created: set = set()
        self.outbox: list[tuple[str, dict]] = []
        self._reset_pending()

    def _reset_pending(self) -> None:
        self.new_keys: list[DataKey] = []
        self.new_profiles: list[Profile] = []
        self.new_records: list[SourceRecord] = []
        self.retired_records: list = []
        self.new_identities: list[Identity] = []
        self.dropped_identities: list = []
        self.new_held_identifiers: list[HeldIdentifier] = []
        self.attached_held: list[SourceRecord] = []
        self.new_attributes: dict[tuple, AttributeValue] = {}
        self.changed_attributes: dict[int, AttributeValue] = {}
        self.conflicts: list[MergeConflict] = []

    # --- loading -------------------------------------------------------------------------
    def run(self, records: list[ParsedRecord]) -> list[RecordResult]:
        keys = {k.key for r in records for k in r.identifiers}
        external_keys = {r.external_key for r in records}
        advisory_locks(sorted({k[2] for k in keys} | external_keys))
        suppressed = self._suppressed(keys)
        self._load_current(external_keys)
        self._load_identities(keys)
        self._load_held(keys)
        results = []
        for record in records:
            if any(k.key in suppressed for k in record.identifiers):
                results.append(RecordResult(record.index, "suppressed"))
                continue
            results.append(self._resolve(record))
        self._flush()
        profiles_touch(self.touched - self.created)
        self.outbox += [("profile.created", {"profile_id": str(p)}) for p in self.created]
        self.outbox += [("profile.updated", {"profile_id": str(p)}) for p in self.touched - self.created]
        outbox_put_many(self.outbox)
        return results

    def _suppressed(self, keys) -> set:
        if not keys:
            return set()
        rows = Suppression.objects.filter(blind_index__in=[k[2] for k in keys]).values_list(
            "kind", "namespace", "blind_index")
        return set(rows) & keys

    def _load_current(self, external_keys) -> None:
        rows = SourceRecord.objects.filter(source=self.source, external_key__in=list(external_keys),
                                           is_current=True)
        self.current = {r.external_key: r for r in rows}

    def _load_identities(self, keys) -> None:
        if not keys:
            return
        rows = Identity.objects.filter(blind_index__in=[k[2] for k in keys]).values_list(
            "kind", "namespace", "blind_index", "profile_id")
        for kind, namespace, index, profile_id in rows:
            if (kind, namespace, index) in keys:
                self.owner[(kind, namespace, index)] = profile_id
        profile_ids = set(self.owner.values()) | {r.profile_id for r in self.current.values() if r.profile_id}
        self._load_profiles(profile_ids)

    def _load_profiles(self, profile_ids) -> None:
        missing = [pid for pid in profile_ids if pid not in self.profiles]
        if not missing:
            return
        # Lock the people this batch touches, in id order, so a concurrent merge waits.
        locked = Profile.objects.select_for_update(of=("self",)).select_related("data_key").filter(
            id__in=missing).order_by("id")
        for profile in locked:
            self.profiles[profile.id] = _ProfileState(profile, crypto.data_key_open(profile.data_key))
        for kind, namespace, index, profile_id in Identity.objects.filter(profile_id__in=missing).values_list(
                "kind", "namespace", "blind_index", "profile_id"):
            state = self.profiles[profile_id]
            state.counts[kind] += 1
            if namespace:
                state.scoped[(kind, namespace)] = index
        for row in AttributeValue.objects.filter(profile_id__in=missing):
            self.attributes.setdefault(row.profile_id, {})[(row.name, row.source_id)] = row
        for profile_id in missing:
            self.attributes.setdefault(profile_id, {})
        for low, high in MergeBlock.objects.filter(profile_low_id__in=missing).values_list(
                "profile_low_id", "profile_high_id").union(
                MergeBlock.objects.filter(profile_high_id__in=missing).values_list(
                    "profile_low_id", "profile_high_id")):
            self.blocks.add(frozenset((low, high)))

    def _load_held(self, keys) -> None:
        if not keys:
            return
        rows = HeldIdentifier.objects.filter(blind_index__in=[k[2] for k in keys]).values_list(
            "kind", "namespace", "blind_index", "record_id")
        by_record = defaultdict(list)
        for kind, namespace, index, record_id in rows:
            if (kind, namespace, index) in keys:
                by_record[record_id].append((kind, namespace, index))
        if not by_record:
            return
        records = SourceRecord.objects.select_for_update(of=("self",)).select_related("held_key", "source").filter(
            id__in=list(by_record), status=RecordStatus.HELD).order_by("id")
        for record in records:
            for key in by_record[record.id]:
                self.held[key].append(record)

    # --- resolving ------------------------------------------------------------------------
    def _resolve(self, record: ParsedRecord) -> RecordResult:
        previous = self.current.get(record.external_key)
        if previous is not None and previous.payload_digest == record.digest:
            return RecordResult(record.index, "unchanged" if previous.profile_id else "held",
                                str(previous.profile_id) if previous.profile_id else None)
        matched = self._matched_profiles(record, previous)
        if self.source.is_third_party:
            return self._resolve_third_party(record, previous, matched)
        return self._resolve_first_party(record, previous, matched)

    def _matched_profiles(self, record: ParsedRecord, previous: SourceRecord | None) -> list:
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
            self._store_attached(record, previous, survivor)
            return RecordResult(record.index, "merged" if others else "updated", str(survivor))
        target = self._conflict_target(matched, record)
        self._store_attached(record, previous, target)
        self.conflicts.append(MergeConflict(
            profile_id=target, reason=violation,
            other_profiles=sorted(str(p) for p in matched if p != target),
        ))
        self.conflicts[-1]._record_external_key = record.external_key
        return RecordResult(record.index, "conflict", str(target))

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
        return None

    def _conflict_target(self, matched: list, record: ParsedRecord):
        """The record goes to the profile its source-scoped id names; a new scoped id
        that clashes with the best match's own gets a profile of its own."""
        for key in record.identifiers:
            if key.is_source_scoped and key.key in self.owner:
                return self.owner[key.key]
        anchor = self._oldest(matched)
        clashes = any(
            key.is_source_scoped and self.profiles[anchor].scoped.get((key.kind, key.namespace)) not in
            (None, key.blind_index) for key in record.identifiers)
        return self._create_profile() if clashes else anchor

    def _oldest(self, profile_ids: list):
        return min(profile_ids, key=lambda pid: (self.profiles[pid].profile.created_at or self.now, str(pid)))

    # --- writing --------------------------------------------------------------------------
    def _create_profile(self):
        profile, data_key, dek = profile_new()
        profile.created_at = self.now
        self.new_keys.append(data_key)
        self.new_profiles.append(profile)
        self.profiles[profile.id] = _ProfileState(profile, dek)
        self.attributes[profile.id] = {}
        self.created.add(profile.id)
        self.touched.add(profile.id)
        return profile.id

    def _new_record(self, record: ParsedRecord, previous, *, profile_id) -> SourceRecord:
        if previous is not None and previous._state.adding:
            previous.is_current = False  # two versions in one batch: both kept, the later current
        elif previous is not None:
            self.retired_records.append(previous.id)
        row = SourceRecord(source=self.source, external_key=record.external_key, profile_id=profile_id,
                           payload_digest=record.digest, observed_at=record.observed_at,
                           status=RecordStatus.ATTACHED if profile_id else RecordStatus.HELD)
        self.new_records.append(row)
        self.current[record.external_key] = row
        return row

    def _store_held(self, record: ParsedRecord, previous) -> None:
        row = self._new_record(record, previous, profile_id=None)
        data_key, dek = crypto.data_key_new()
        self.new_keys.append(data_key)
        row.held_key_id = data_key.id
        record_payload_write(row, record.payload(), dek=dek)
        row.source = self.source
        self.held_keys[row.id] = dek
        for key in record.identifiers:
            self.new_held_identifiers.append(HeldIdentifier(record_id=row.id, kind=key.kind,
                                                            namespace=key.namespace, blind_index=key.blind_index))
            self.held[key.key].append(row)

    def _store_attached(self, record: ParsedRecord, previous, profile_id, *, add_identities: bool = True) -> None:
        state = self.profiles[profile_id]
        row = self._new_record(record, previous, profile_id=profile_id)
        record_payload_write(row, record.payload(), dek=state.dek)
        self._upsert_attributes(profile_id, self.source.id, row.id, record.attributes, record.observed_at)
        if add_identities:
            for key in record.identifiers:
                if key.key not in self.owner and self._claim_slot(state, key):
                    self._add_identity(profile_id, key, row.id)
                    self._attach_held(profile_id, key)
        self.touched.add(profile_id)

    def _claim_slot(self, state: _ProfileState, key: IdentifierKey) -> bool:
        """Whether the profile may take this identifier (one scoped id per source; caps)."""
        if key.is_source_scoped:
            existing = state.scoped.get((key.kind, key.namespace))
            if existing not in (None, key.blind_index):
                return False
            state.scoped[(key.kind, key.namespace)] = key.blind_index
            return True
        cap = settings.TESSERA_IDENTIFIER_CAPS.get(key.kind)
        if cap is not None and state.counts[key.kind] >= cap:
            return self._yield_lowest(state, key)
        state.counts[key.kind] += 1
        return True

    def _yield_lowest(self, state: _ProfileState, key: IdentifierKey) -> bool:
        """At the cap, the lowest-priority identifier (trust, then recency) yields."""
        candidates = [(i.priority, i.last_seen_at, i.id, i) for i in Identity.objects.filter(
            profile_id=state.profile.id, kind=key.kind).exclude(id__in=self.dropped_identities)]
        candidates += [(i.priority, i.last_seen_at, 0, i) for i in self.new_identities
                       if i.profile_id == state.profile.id and i.kind == key.kind]
        if not candidates:
            return False
        priority, _, _, lowest = min(candidates, key=lambda c: (c[0], c[1], c[2]))
        if priority > self.source.trust:
            return False
        if lowest.pk:
            self.dropped_identities.append(lowest.pk)
        else:
            self.new_identities.remove(lowest)
        self.owner.pop((lowest.kind, lowest.namespace, lowest.blind_index), None)
        return True

    def _add_identity(self, profile_id, key: IdentifierKey, record_id) -> None:
        state = self.profiles[profile_id]
        self.new_identities.append(Identity(
            profile_id=profile_id, kind=key.kind, namespace=key.namespace, blind_index=key.blind_index,
            index_key_version=crypto.index_key_version(), record_id=record_id, priority=self.source.trust,
            value=identity_value_encrypt(dek=state.dek, profile_id=profile_id, value=key.value),
            last_seen_at=self.now,
        ))
        self.owner[key.key] = profile_id

    def _attach_held(self, profile_id, key: IdentifierKey) -> None:
        """Third-party records held for this identifier join the person now."""
        state = self.profiles[profile_id]
        for held in self.held.pop(key.key, []):
            if held.status != RecordStatus.HELD:
                continue
            dek = self.held_keys.get(held.id) or crypto.data_key_open(held.held_key)
            payload = record_payload_read(held, dek=dek)
            held.profile_id, held.status = profile_id, RecordStatus.ATTACHED
            record_payload_write(held, payload, dek=state.dek)
            if held._state.adding:  # held earlier in this same batch: never stored as held
                self.new_keys = [k for k in self.new_keys if k.id != held.held_key_id]
                self.new_held_identifiers = [h for h in self.new_held_identifiers if h.record_id != held.id]
                held.held_key_id = None
            else:
                self.attached_held.append(held)
            self._upsert_attributes(profile_id, held.source_id, held.id, payload.get("attributes", {}),
                                    held.observed_at)

    def _upsert_attributes(self, profile_id, source_id, record_id, attributes: dict, observed_at) -> None:
        if not attributes:
            return
        state = self.profiles[profile_id]
        existing = self._attributes_of(profile_id)
        for name, value in attributes.items():
            row = existing.get((name, source_id))
            if row is None:
                row = AttributeValue(profile_id=profile_id, name=name, source_id=source_id)
                existing[(name, source_id)] = row
                self.new_attributes[(profile_id, name, source_id)] = row
            elif row.observed_at > observed_at:
                continue  # an older observation never overwrites a newer one
            elif row.pk:
                self.changed_attributes[row.pk] = row
            attribute_row_fill(row, dek=state.dek, value=value, record_id=record_id, observed_at=observed_at)

    def _attributes_of(self, profile_id) -> dict:
        if profile_id not in self.attributes:
            self.attributes[profile_id] = {
                (row.name, row.source_id): row for row in AttributeValue.objects.filter(profile_id=profile_id)}
        return self.attributes[profile_id]

    def _merge(self, survivor, absorbed) -> None:
        self._flush()  # the merge works on stored rows
        profile_merge(survivor_id=survivor, absorbed_id=absorbed)
        gone = self.profiles.pop(absorbed)
        state = self.profiles[survivor]
        for key, owner in self.owner.items():
            if owner == absorbed:
                self.owner[key] = survivor
        for record in self.current.values():
            if record.profile_id == absorbed:
                record.profile_id = survivor
        state.scoped.update(gone.scoped)
        state.counts = _identity_counts(survivor)
        self.attributes.pop(survivor, None)
        self.attributes.pop(absorbed, None)
        self.blocks = {pair if absorbed not in pair else frozenset(survivor if p == absorbed else p for p in pair)
                       for pair in self.blocks}
        self.touched.discard(absorbed)
        self.created.discard(absorbed)
        self.touched.add(survivor)

    def _flush(self) -> None:
        if self.retired_records:
            SourceRecord.objects.filter(id__in=self.retired_records).update(is_current=False)
        bulk_insert(DataKey, self.new_keys)
        bulk_insert(Profile, self.new_profiles)
        bulk_insert(SourceRecord, self.new_records)
        if self.dropped_identities:
            Identity.objects.filter(id__in=self.dropped_identities).delete()
        bulk_insert(Identity, self.new_identities)
        bulk_insert(HeldIdentifier, self.new_held_identifiers)
        if self.attached_held:
            self._store_attached_held()
        bulk_insert(AttributeValue, list(self.new_attributes.values()))
        if self.changed_attributes:
            bulk_update_fields(AttributeValue, list(self.changed_attributes.values()),
                               ["value_cipher", "value_plain", "is_personal", "record", "observed_at"])
        for conflict in self.conflicts:
            conflict.record_id = self.current[conflict._record_external_key].id
        bulk_insert(MergeConflict, self.conflicts)
        self._reset_pending()

    def _store_attached_held(self) -> None:
        ids = [r.id for r in self.attached_held]
        key_ids = [r.held_key_id for r in self.attached_held]
        for record in self.attached_held:
            record.held_key_id = None
        bulk_update_fields(SourceRecord, self.attached_held, ["profile", "status", "payload", "held_key"])
        HeldIdentifier.objects.filter(record_id__in=ids).delete()
        DataKey.objects.filter(id__in=key_ids).delete()


def _identity_counts(profile_id) -> Counter:
    return Counter(Identity.objects.filter(profile_id=profile_id).values_list("kind", flat=True))

