"""Deciding: where each record of a batch goes, which people merge, which identifiers
and attribute values a profile takes.

`Decider` keeps the batch's clock, what it created and touched, and which profiles'
stored rows it has merged (its own state); it updates the `World` it was loaded with as
it decides, and hands every row to the `Writer`. The row work itself (encrypting
values, filling and rebuilding attributes, moving rows on a merge) is the domain's one
implementation (attributes.py, profiles.py, source_records.py, merges.py).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from cdp import crypto
from cdp.core.errors import Conflict
from cdp.core.ids import new_uuid4
from cdp.errors import CdpErrorCode
from cdp.models import Assurance, ProfileStatus, RecordStatus, Source
from cdp.services import identity_rules
from cdp.services.attributes import attribute_row_fill, attribute_rows_rebuilt
from cdp.services.merges import profile_merge
from cdp.services.profiles import identity_value_encrypt
from cdp.services.records import IdentifierKey, ParsedRecord
from cdp.services.resolution.loading import Loader, World
from cdp.services.resolution.rows import (
    AttributeRow,
    IdentityRow,
    ProfileState,
    Provenance,
    RecordRow,
    attribute_row_new,
)
from cdp.services.resolution.writing import Writer
from cdp.services.source_records import record_payload_move, record_payload_read, record_payload_write

TICK = timedelta(microseconds=1)


class Decider:
    def __init__(self, source: Source, world: World, loader: Loader, writer: Writer, *, defer_merges: bool):
        self.source, self.world, self.loader, self.writer = source, world, loader, writer
        self.defer_merges = defer_merges
        self.now = writer.now
        # Received-at clock: a record stored after a merge of this batch is received after
        # it (merge_undo re-resolves exactly those records), so merges advance the clock.
        # After the locks: a merge another batch committed before them is older than ours.
        self.clock = max(self.now, timezone.now())
        self.caps = settings.TESSERA_IDENTIFIER_CAPS
        self.cipher = writer.cipher
        self.touched: set = set()
        self.created: set = set()
        self.profiles_created = 0
        self.retired: set = set()                            # stored records no longer current
        self.held_keys: dict[object, bytes] = {}             # record id -> data key, held in this batch
        # Stored rows of a profile absorbed in this batch stay under its id until the
        # batch is stored: members[p] = the profile ids whose stored rows are p's now.
        self.members: dict[object, set] = {}

    def flush(self, *, final: bool = False) -> None:
        self.writer.flush(current=self.world.current, final=final)
        # Everything is stored now: stored rows sit under their own profile again.
        self.members.clear()
        self.loader.stored_current.clear()

    # --- where a record goes ----------------------------------------------------------------
    def resolve(self, record: ParsedRecord) -> tuple[str, object, list]:
        """(status, profile id or None, the profiles merged into it) for one record."""
        previous = self.world.current.get(record.external_key)
        if previous is not None and record.digest_matches(previous.payload_digest):
            return ("unchanged" if previous.profile_id else "held"), previous.profile_id, []
        matched = self._matched_profiles(record, previous)
        if self.source.is_third_party:
            return self._resolve_third_party(record, previous, matched)
        return self._resolve_first_party(record, previous, matched)

    def _matched_profiles(self, record: ParsedRecord, previous: RecordRow | None) -> list:
        matched = []
        if previous is not None and previous.profile_id:
            matched.append(previous.profile_id)  # the same external id is the same entity
        for key in record.identifiers:
            profile_id = self.world.owner.get(key.key)
            if profile_id is not None and profile_id not in matched:
                matched.append(profile_id)
        return matched

    def _resolve_third_party(self, record, previous, matched) -> tuple:
        # Third-party data never creates a profile, merges people or adds identifiers.
        if not matched:
            self._store_held(record, previous)
            return "held", None, []
        target = self._oldest(matched)
        self._store_attached(record, previous, target, add_identities=False)
        return "updated", target, []

    def _resolve_first_party(self, record, previous, matched) -> tuple:
        if not matched:
            target = self._create_profile()
            self._store_attached(record, previous, target)
            return "created", target, []
        violation = self._protection_violation(matched, record)
        if violation is None:
            survivor = self._oldest(matched)
            others = [p for p in matched if p != survivor]
            for absorbed in others:
                self._merge(survivor, absorbed)
            if self._store_attached(record, previous, survivor):
                # A link the rules refused, queued for an operator with its reason.
                self.writer.conflict_add(survivor, identity_rules.UNTRUSTED_CONTACT, [], record.external_key)
                return "conflict", survivor, others
            return ("merged" if others else "updated"), survivor, others
        target = self._conflict_target(matched, record)
        self._store_attached(record, previous, target)
        self.writer.conflict_add(target, violation, [p for p in matched if p != target], record.external_key)
        return "conflict", target, []

    def _protection_violation(self, matched: list, record: ParsedRecord) -> str | None:
        profiles = self.world.profiles
        for i, first in enumerate(matched):
            for second in matched[i + 1:]:
                if frozenset((first, second)) in self.world.blocks:
                    return "merge_blocked"
        scoped: dict[tuple, set] = defaultdict(set)
        for profile_id in matched:
            for slot, index in profiles[profile_id].scoped.items():
                scoped[slot].add(index)
        for key in record.identifiers:
            if key.is_source_scoped:
                scoped[(key.kind, key.namespace)].add(key.blind_index)
        if any(len(indexes) > 1 for indexes in scoped.values()):
            return "conflicting_source_ids"
        with_contacts = sum(1 for pid in matched if identity_rules.contacts_held(profiles[pid].counts))
        if identity_rules.merge_refused(assurance=self.source.assurance, profiles_with_contacts=with_contacts):
            return identity_rules.UNTRUSTED_MERGE
        return None

    def _conflict_target(self, matched: list, record: ParsedRecord):
        """The record goes to the profile its source-scoped id names; a new scoped id
        that clashes with the best match's own gets a profile of its own."""
        owner = self.world.owner
        for key in record.identifiers:
            if key.is_source_scoped and key.key in owner:
                return owner[key.key]
        if self.source.assurance == Assurance.CLIENT:
            # A public write key's record stays with the visitor it knows by its own ids,
            # never with the person its contact identifier names.
            for key in record.identifiers:
                if key.kind not in identity_rules.CONTACT_KINDS and key.key in owner:
                    return owner[key.key]
        anchor = self._oldest(matched)
        clashes = any(
            key.is_source_scoped and self.world.profiles[anchor].scoped.get((key.kind, key.namespace)) not in
            (None, key.blind_index) for key in record.identifiers)
        return self._create_profile() if clashes else anchor

    def _oldest(self, profile_ids: list):
        profiles = self.world.profiles
        return min(profile_ids, key=lambda pid: (profiles[pid].created_at or self.now, str(pid)))

    # --- merging ----------------------------------------------------------------------------
    def _merge(self, survivor, absorbed) -> None:
        world = self.world
        state, gone = world.profiles[survivor], world.profiles[absorbed]
        if state.status != ProfileStatus.ACTIVE or gone.status != ProfileStatus.ACTIVE:
            raise Conflict("Only active profiles can be merged.", code=CdpErrorCode.PROFILE_NOT_ACTIVE)
        combined = state.counts + gone.counts
        if not self.defer_merges or any(combined[kind] > cap for kind, cap in self.caps.items()):
            self._merge_now(survivor, absorbed)  # identifiers must be trimmed: rare, slow path
        else:
            self._merge_in_memory(survivor, absorbed)
        world.profiles.pop(absorbed)
        for key in world.keys_of.pop(absorbed, ()):
            if world.owner.get(key) == absorbed:
                world.owner[key] = survivor
                world.keys_of[survivor].add(key)
        for external_key in world.current_of.pop(absorbed, ()):
            record = world.current.get(external_key)
            if record is not None and record.profile_id == absorbed:
                record.profile_id = survivor
                world.current_of[survivor].add(external_key)
        state.scoped.update(gone.scoped)
        world.blocks = {pair if absorbed not in pair else frozenset(survivor if p == absorbed else p for p in pair)
                        for pair in world.blocks}
        self.touched.discard(absorbed)
        self.created.discard(absorbed)
        self.touched.add(survivor)

    def _merge_now(self, survivor, absorbed) -> None:
        """Store everything so far, then merge through profile_merge (which trims to caps)."""
        self.flush()
        profile_merge(survivor_id=survivor, absorbed_id=absorbed)
        self.world.profiles[survivor].counts = self.loader.identity_counts(survivor)
        self.loader.forget_stored(survivor, absorbed)
        self.clock = max(self.clock, timezone.now()) + TICK  # later records: received after the merge

    def _merge_in_memory(self, survivor, absorbed) -> None:
        """What profile_merge does, decided now and stored with the batch (the Writer's
        merges_apply); the survivor's attributes are rebuilt from both profiles' current
        records, as attributes_rebuild does, so the rest of the batch builds on them."""
        state, deks = self.world.profiles[survivor], self.world.deks
        merged_at = self.clock + TICK
        self.clock = merged_at + TICK
        self.writer.merge_add(survivor=survivor, absorbed=absorbed, survivor_dek=deks[survivor],
                              absorbed_dek=deks[absorbed], merged_at=merged_at)
        members = self.members.setdefault(survivor, {survivor})
        members |= self.members.pop(absorbed, {absorbed})
        state.counts = state.counts + self.world.profiles[absorbed].counts
        current = self.loader.stored_current_of(members, retired=self.retired)
        current += [(row.observed_at, row.id, row.source_id, row.plain.get("attributes", {}))
                    for row in self.writer.rows_of[survivor] if row.is_current]
        rows = attribute_rows_rebuilt(profile_id=survivor, records=current, dek=state.dek,
                                      new_row=attribute_row_new, cipher=self.cipher)
        self.writer.attributes_replace(survivor, absorbed, rows)
        self.world.attributes.pop(absorbed, None)
        self.world.attributes[survivor] = {(row.name, row.source_id): row for row in rows}

    # --- the rows of a record ---------------------------------------------------------------
    def _create_profile(self):
        # Profiles of one batch are created a microsecond apart, in record order, so "the
        # oldest survives" also decides between them, now and in later batches.
        self.profiles_created += 1
        created_at = self.now + TICK * self.profiles_created
        profile_id, dek = self.writer.profile_new(created_at)
        self.world.profiles[profile_id] = ProfileState(profile_id, created_at, ProfileStatus.ACTIVE, dek)
        self.world.deks[profile_id] = dek
        self.loader.stored_current[profile_id] = []  # a new profile has no stored records
        self.world.attributes[profile_id] = {}
        self.created.add(profile_id)
        self.touched.add(profile_id)
        return profile_id

    def _new_record(self, record: ParsedRecord, previous, *, profile_id) -> RecordRow:
        if previous is not None and not previous.stored:
            previous.is_current = False  # two versions in one batch: both kept, the later current
        elif previous is not None:
            self.writer.retired_records.append(previous.id)
            self.retired.add(previous.id)
        row = RecordRow(new_uuid4(), self.source.id, record.external_key, profile_id,
                        RecordStatus.ATTACHED if profile_id else RecordStatus.HELD, record.digest, True,
                        record.observed_at, stored=False, received_at=self.clock, plain=record.payload())
        self.writer.record_add(row)
        self.world.current[record.external_key] = row
        if profile_id:
            self.world.current_of[profile_id].add(record.external_key)
        return row

    def _store_held(self, record: ParsedRecord, previous) -> None:
        row = self._new_record(record, previous, profile_id=None)
        # Held records are encrypted under their own key, owned by the record itself.
        row.held_key_id, dek = self.writer.data_key_new()
        record_payload_write(row, row.plain, dek=dek, cipher=self.cipher)
        self.held_keys[row.id] = dek
        self.writer.held_identifiers_add(row, record.identifiers)
        for key in record.identifiers:
            self.world.held[key.key].append(row)

    def _store_attached(self, record: ParsedRecord, previous, profile_id, *, add_identities: bool = True) -> bool:
        """Store the record under the profile; True when the rules refused one of its
        identifiers (the caller holds that link for review)."""
        state = self.world.profiles[profile_id]
        row = self._new_record(record, previous, profile_id=profile_id)
        record_payload_write(row, row.plain, dek=state.dek, cipher=self.cipher)
        self._upsert_attributes(profile_id, self.source.id, row.id, record.attributes, record.observed_at)
        refused = False
        if add_identities:
            contacts = identity_rules.contacts_held(state.counts)  # before this record's own
            for key in record.identifiers:
                owner = self.world.owner.get(key.key)
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
        stored = self.world.provenance.get(key.key)
        if stored is None or not identity_rules.outranks(self.source.assurance, stored[1]):
            return
        self.world.provenance[key.key] = (stored[0], self.source.assurance)
        self.writer.improved_provenance[stored[0]] = Provenance(stored[0], self.source.id, self.source.assurance)

    def _claim_slot(self, state: ProfileState, key: IdentifierKey) -> bool:
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

    def _yield_lowest(self, state: ProfileState, key: IdentifierKey) -> bool:
        """At the cap, the lowest-priority identifier (trust, then recency) yields."""
        writer = self.writer
        if writer.merges:
            self.flush()  # the stored identities below must include what merges moved
        candidates = [(priority, last_seen_at, pk, (pk, kind, namespace, index))
                      for pk, kind, namespace, index, priority, last_seen_at in self.loader.identities_of_kind(
                          state.id, key.kind, dropped=writer.dropped_identities)]
        candidates += [(i.priority, i.last_seen_at, 0, i) for i in writer.identities_of[state.id] if i.kind == key.kind]
        if not candidates:
            return False
        priority, _, _, lowest = min(candidates, key=lambda c: (c[0], c[1], c[2]))
        if priority > self.source.trust:
            return False
        if isinstance(lowest, tuple):
            pk, kind, namespace, index = lowest
            writer.dropped_identities.append(pk)
        else:
            writer.identity_unadd(lowest)
            kind, namespace, index = lowest.kind, lowest.namespace, lowest.blind_index
        self.world.owner.pop((kind, namespace, index), None)
        return True

    def _add_identity(self, profile_id, key: IdentifierKey, record_id) -> None:
        value = identity_value_encrypt(dek=self.world.profiles[profile_id].dek, profile_id=profile_id,
                                       value=key.value, cipher=self.cipher)
        self.writer.identity_add(IdentityRow(profile_id, key, value, record_id, self.source, self.now))
        self.world.owner[key.key] = profile_id
        self.world.keys_of[profile_id].add(key.key)

    def _attach_held(self, profile_id, key: IdentifierKey) -> None:
        """Third-party records held for this identifier join the person now."""
        state = self.world.profiles[profile_id]
        for held in self.world.held.pop(key.key, []):
            if held.status != RecordStatus.HELD:
                continue
            if held.plain is None:
                dek = self.held_keys.get(held.id)
                if dek is None:
                    dek = crypto.data_key_unwrap(held.held_key_id, held.kek_id, held.wrapped)
                held.plain = record_payload_read(held, dek=dek, cipher=self.cipher)
            record_payload_move(held, new_profile_id=profile_id, new_dek=state.dek, payload=held.plain,
                                cipher=self.cipher)
            held.status = RecordStatus.ATTACHED
            self.writer.held_attached(held)
            self.world.current_of[profile_id].add(held.external_key)
            self._upsert_attributes(profile_id, held.source_id, held.id, held.plain.get("attributes", {}),
                                    held.observed_at)

    def _upsert_attributes(self, profile_id, source_id, record_id, attributes: dict, observed_at) -> None:
        if not attributes:
            return
        dek = self.world.profiles[profile_id].dek
        existing = self.loader.attributes_of(profile_id)
        for name, value in attributes.items():
            row = existing.get((name, source_id))
            if row is None:
                row = existing[(name, source_id)] = AttributeRow(None, profile_id, name, source_id)
                self.writer.attribute_add(row)
            elif row.observed_at > observed_at:
                continue  # an older observation never overwrites a newer one
            else:
                self.writer.attribute_changed(row)
            attribute_row_fill(row, dek=dek, value=value, record_id=record_id, observed_at=observed_at,
                               cipher=self.cipher)
