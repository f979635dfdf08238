"""Loading: what a batch reads of the people its records name, once, under their locks.

`World` holds what the batch knows of those people: read by `Loader.load`, then kept
current by the decisions (deciding.py) as the batch is resolved. The Loader's own state
is its cache of stored current records, which merges need and which is decrypted only
when a merge happens. Reads blind indexes and ciphertexts; logs nothing.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from cdp import crypto
from cdp.core.advisory import advisory_locks
from cdp.core.bulk import any_of, rows_any_of
from cdp.errors import ProfileErased
from cdp.models import (
    AttributeValue,
    HeldIdentifier,
    Identity,
    MergeBlock,
    Profile,
    RecordStatus,
    Source,
    SourceRecord,
    Suppression,
)
from cdp.services.records import ParsedRecord
from cdp.services.resolution.rows import AttributeRow, ProfileState, RecordRow
from cdp.services.source_records import record_payload_read


@dataclass
class World:
    """The people a batch touches, as far as it knows them."""

    owner: dict = field(default_factory=dict)                        # identity key -> profile id
    provenance: dict = field(default_factory=dict)                   # stored identity key -> (id, assurance)
    keys_of: defaultdict = field(default_factory=lambda: defaultdict(set))  # profile id -> its keys in `owner`
    profiles: dict = field(default_factory=dict)                     # profile id -> ProfileState (active ones)
    deks: dict = field(default_factory=dict)                         # every profile seen, absorbed ones too
    current: dict = field(default_factory=dict)                      # external key -> current RecordRow
    current_of: defaultdict = field(default_factory=lambda: defaultdict(set))  # profile id -> keys in `current`
    held: defaultdict = field(default_factory=lambda: defaultdict(list))  # identity key -> held RecordRows
    blocks: set = field(default_factory=set)                         # frozensets of two profile ids
    attributes: dict = field(default_factory=dict)                   # profile id -> {(name, source id): row}


class Loader:
    def __init__(self, source: Source, world: World, cipher: crypto.ValueCipher):
        self.source, self.world, self.cipher = source, world, cipher
        # owner id -> [observed_at, record id, source id, attributes or None, payload]:
        # its stored current records, decrypted on first use. Valid until the batch stores.
        self.stored_current: dict[object, list] = {}

    def load(self, records: list[ParsedRecord]) -> set:
        """Lock and read everything the records name; the suppressed identity keys."""
        keys = {k.key for r in records for k in r.identifiers}
        external_keys = {r.external_key for r in records}
        advisory_locks(sorted({k[2] for k in keys} | external_keys))
        suppressed = self._suppressed(keys)
        self._load_current(external_keys)
        self._load_identities(keys)
        self._load_held(keys)
        self._prefetch_for_merges(records)
        return suppressed

    def _suppressed(self, keys) -> set:
        if not keys:
            return set()
        return set(rows_any_of(Suppression, ("kind", "namespace", "blind_index"), "blind_index",
                               {k[2] for k in keys})) & keys

    def _load_current(self, external_keys) -> None:
        world = self.world
        rows = rows_any_of(SourceRecord, ("id", "external_key", "profile_id", "status", "held_key_id",
                                          "payload_digest", "observed_at"), "external_key", external_keys,
                           source_id=self.source.id, is_current=True)
        for record_id, external_key, profile_id, status, held_key_id, digest, observed_at in rows:
            world.current[external_key] = RecordRow(record_id, self.source.id, external_key, profile_id, status,
                                                    digest, True, observed_at, stored=True, held_key_id=held_key_id)
            if profile_id:
                world.current_of[profile_id].add(external_key)

    def _load_identities(self, keys) -> None:
        if not keys:
            return
        world = self.world
        rows = rows_any_of(Identity, ("kind", "namespace", "blind_index", "profile_id", "id", "assurance"),
                           "blind_index", {k[2] for k in keys})
        for kind, namespace, index, profile_id, identity_id, assurance in rows:
            if (kind, namespace, index) in keys:
                world.owner[(kind, namespace, index)] = profile_id
                world.keys_of[profile_id].add((kind, namespace, index))
                world.provenance[(kind, namespace, index)] = (identity_id, assurance)
        profile_ids = set(world.owner.values()) | {r.profile_id for r in world.current.values() if r.profile_id}
        self._load_profiles(profile_ids)

    def _load_profiles(self, profile_ids) -> None:
        world = self.world
        missing = [pid for pid in profile_ids if pid not in world.profiles]
        if not missing:
            return
        # Lock the people this batch touches, in id order, so a concurrent merge waits.
        locked = Profile.objects.select_for_update(of=("self",)).filter(any_of(Profile, "id", missing)).order_by(
            "id").values_list("id", "created_at", "status", "data_key_id", "data_key__kek_id", "data_key__wrapped")
        for profile_id, created_at, status, key_id, kek_id, wrapped in locked:
            if key_id is None:
                raise ProfileErased()
            dek = crypto.data_key_unwrap(key_id, kek_id, wrapped)  # once per profile and batch
            world.profiles[profile_id] = ProfileState(profile_id, created_at, status, dek)
            world.deks[profile_id] = dek
        for kind, namespace, index, profile_id in rows_any_of(
                Identity, ("kind", "namespace", "blind_index", "profile_id"), "profile_id", missing):
            state = world.profiles[profile_id]
            state.counts[kind] += 1
            if namespace:
                state.scoped[(kind, namespace)] = index
        for profile_id in missing:
            world.attributes.setdefault(profile_id, {})
        for row_id, profile_id, name, source_id, observed_at in rows_any_of(
                AttributeValue, ("id", "profile_id", "name", "source_id", "observed_at"), "profile_id", missing):
            world.attributes[profile_id][(name, source_id)] = AttributeRow(row_id, profile_id, name, source_id,
                                                                           observed_at)
        for low, high in MergeBlock.objects.filter(any_of(MergeBlock, "profile_low_id", missing)).values_list(
                "profile_low_id", "profile_high_id").union(
                MergeBlock.objects.filter(any_of(MergeBlock, "profile_high_id", missing)).values_list(
                    "profile_low_id", "profile_high_id")):
            world.blocks.add(frozenset((low, high)))

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
            record = RecordRow(record_id, source_id, external_key, profile_id, status, digest, is_current,
                               observed_at, stored=True, held_key_id=held_key_id, payload=bytes(payload),
                               kek_id=kek_id, wrapped=wrapped)
            for key in by_record[record_id]:
                self.world.held[key].append(record)

    def _prefetch_for_merges(self, records: list[ParsedRecord]) -> None:
        """The stored current records of every profile a record of this batch might
        merge, in one query, so a merge needs no round trip of its own. Over-reading is
        cheap: payloads are decrypted only when a merge happens."""
        if self.source.is_third_party:
            return  # third-party data never merges
        world = self.world
        candidates = set()
        for record in records:
            matched = {world.owner[k.key] for k in record.identifiers if k.key in world.owner}
            previous = world.current.get(record.external_key)
            if previous is not None and previous.profile_id:
                matched.add(previous.profile_id)
            if matched and (len(matched) > 1 or len(record.identifiers) + (previous is not None) > 1):
                candidates |= matched
        self._read_stored_current([pid for pid in candidates if pid in world.profiles])

    # --- reads while deciding ---------------------------------------------------------------
    def attributes_of(self, profile_id) -> dict:
        attributes = self.world.attributes
        if profile_id not in attributes:
            attributes[profile_id] = {
                (name, source_id): AttributeRow(row_id, profile_id, name, source_id, observed_at)
                for row_id, name, source_id, observed_at in AttributeValue.objects.filter(
                    profile_id=profile_id).values_list("id", "name", "source_id", "observed_at")}
        return attributes[profile_id]

    def stored_current_of(self, owners, *, retired: set) -> list:
        """(observed_at, id, source id, attributes) of the stored current records under
        these profile ids, less those this batch replaced (`retired`); decrypted once per batch."""
        self._read_stored_current([owner for owner in owners if owner not in self.stored_current])
        current = []
        for owner in owners:
            for entry in self.stored_current[owner]:
                if entry[1] in retired:
                    continue
                if entry[3] is None:
                    entry[3] = record_payload_read(_StoredPayload(owner, entry[4]), dek=self.world.deks[owner],
                                                   cipher=self.cipher).get("attributes", {})
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

    def forget_stored(self, *profile_ids) -> None:
        """Stored rows changed outside the batch's memory (a merge through the database)."""
        for profile_id in profile_ids:
            self.stored_current.pop(profile_id, None)
            self.world.attributes.pop(profile_id, None)

    def identity_counts(self, profile_id) -> Counter:
        return Counter(Identity.objects.filter(profile_id=profile_id).values_list("kind", flat=True))

    def identities_of_kind(self, profile_id, kind: str, *, dropped: list) -> list[tuple]:
        """(id, kind, namespace, blind index, priority, last seen) of a profile's stored
        identities of one kind, less those the batch dropped."""
        return list(Identity.objects.filter(profile_id=profile_id, kind=kind).exclude(id__in=dropped).values_list(
            "id", "kind", "namespace", "blind_index", "priority", "last_seen_at"))


class _StoredPayload:
    """A stored record's payload, as record_payload_read takes it (owner and ciphertext)."""

    __slots__ = ("id", "profile_id", "payload")

    def __init__(self, profile_id, payload):
        self.id, self.profile_id, self.payload = None, profile_id, payload
