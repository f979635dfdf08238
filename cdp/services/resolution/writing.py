"""Writing: the rows a batch has decided on, held until they are stored together.

`Writer` holds what is still to store (its own state, emptied by each `flush`) and
stores it in a fixed number of statements: COPY for new rows (cdp.core.bulk.insert_rows),
one UPDATE each for changed ones, merges through merges.merges_apply. Moving the batch's
own unsaved rows into a survivor uses the same row functions as every other merge
(record_payload_move, identity_value_move). Writes ciphertexts; logs nothing.
"""

from __future__ import annotations

import uuid
from collections import defaultdict

from django.utils import timezone

from cdp import crypto
from cdp.core.bulk import any_of, bulk_update_fields, insert_rows, reserve_ids
from cdp.core.ids import new_uuid4
from cdp.models import (
    AttributeValue,
    DataKey,
    HeldIdentifier,
    Identity,
    MergeConflict,
    Profile,
    ProfileStatus,
    SourceRecord,
)
from cdp.services.merges import MergeStep, merges_apply
from cdp.services.profiles import identity_value_move
from cdp.services.resolution.rows import (
    ATTRIBUTE_COLUMNS,
    ATTRIBUTE_UPDATE,
    IDENTITY_COLUMNS,
    RECORD_COLUMNS,
    IdentityRow,
    PendingMerge,
    RecordRow,
)
from cdp.services.source_records import record_payload_move


class Writer:
    def __init__(self):
        self.now = timezone.now()
        self.cipher = crypto.ValueCipher()
        self.index_key_version = crypto.index_key_version()
        self._reset()

    def _reset(self) -> None:
        self.new_keys: list[tuple] = []                      # (id, kek id, wrapped)
        self.new_profiles: list[tuple] = []                  # (id, data key id, created at)
        self.new_records: list[RecordRow] = []
        self.rows_of: dict[object, list[RecordRow]] = defaultdict(list)  # profile id -> its rows to store
        self.retired_records: list = []
        self.new_identities: list[IdentityRow] = []
        self.identities_of: dict[object, list[IdentityRow]] = defaultdict(list)
        self.dropped_identities: list = []
        self.improved_provenance: dict = {}                  # stored identity id -> its new Provenance
        self.new_held_identifiers: list[tuple] = []          # (record id, kind, namespace, blind index)
        self.attached_held: list[RecordRow] = []
        self.new_attributes: dict[object, dict] = defaultdict(dict)      # profile id -> {(name, source): row}
        self.changed_attributes: dict[object, dict] = defaultdict(dict)  # profile id -> {row id: row}
        self.replaced_attributes: set = set()                # profiles whose stored attribute rows go
        self.conflicts: list[tuple] = []                     # (id, profile id, reason, others, external key)
        self.merges: list[PendingMerge] = []

    # --- what to store ----------------------------------------------------------------------
    def data_key_new(self) -> tuple:
        """A new data key (its id and plaintext), stored with the batch."""
        key_id, kek_id, wrapped, dek = crypto.data_key_material_new()
        self.new_keys.append((key_id, kek_id, wrapped))
        return key_id, dek

    def data_key_forget(self, key_id) -> None:
        self.new_keys = [k for k in self.new_keys if k[0] != key_id]

    def profile_new(self, created_at) -> tuple:
        """A new profile (its id and data key)."""
        key_id, dek = self.data_key_new()
        profile_id = new_uuid4()
        self.new_profiles.append((profile_id, key_id, created_at))
        return profile_id, dek

    def record_add(self, row: RecordRow) -> None:
        self.new_records.append(row)
        if row.profile_id:
            self.rows_of[row.profile_id].append(row)

    def held_identifiers_add(self, row: RecordRow, keys) -> None:
        self.new_held_identifiers += [(row.id, key.kind, key.namespace, key.blind_index) for key in keys]

    def held_attached(self, held: RecordRow) -> None:
        """A held record now under a profile (its payload already moved)."""
        if not held.stored:  # held earlier in this same batch: never stored as held
            self.data_key_forget(held.held_key_id)
            self.new_held_identifiers = [h for h in self.new_held_identifiers if h[0] != held.id]
            held.held_key_id = None
        else:
            self.attached_held.append(held)
        self.rows_of[held.profile_id].append(held)

    def identity_add(self, identity: IdentityRow) -> None:
        self.new_identities.append(identity)
        self.identities_of[identity.profile_id].append(identity)

    def identity_unadd(self, identity: IdentityRow) -> None:
        self.new_identities.remove(identity)
        self.identities_of[identity.profile_id].remove(identity)

    def attribute_add(self, row) -> None:
        self.new_attributes[row.profile_id][(row.name, row.source_id)] = row

    def attribute_changed(self, row) -> None:
        if row.id is not None:
            self.changed_attributes[row.profile_id][row.id] = row

    def attributes_replace(self, survivor, absorbed, rows: list) -> None:
        """The survivor's attribute rows are these now; both profiles' stored ones go."""
        self.replaced_attributes |= {survivor, absorbed}
        for profile_id in (survivor, absorbed):
            self.new_attributes.pop(profile_id, None)
            self.changed_attributes.pop(profile_id, None)
        self.new_attributes[survivor] = {(row.name, row.source_id): row for row in rows}

    def conflict_add(self, profile_id, reason: str, others: list, external_key: str) -> None:
        self.conflicts.append((uuid.uuid4(), profile_id, reason, sorted(str(p) for p in others), external_key))

    def merge_add(self, *, survivor, absorbed, survivor_dek: bytes, absorbed_dek: bytes, merged_at) -> None:
        """A merge decided in memory: the batch's own rows of the absorbed profile move
        now (before they are ever stored), its stored rows when the batch is stored."""
        moved_records = self.rows_of.pop(absorbed, [])
        for row in moved_records:
            record_payload_move(row, new_profile_id=survivor, new_dek=survivor_dek, payload=row.plain,
                                cipher=self.cipher)
        self.rows_of[survivor] += moved_records
        moved_identities = self.identities_of.pop(absorbed, [])
        for identity in moved_identities:
            identity_value_move(identity, new_profile_id=survivor, new_dek=survivor_dek, value=identity.plain,
                                cipher=self.cipher)
        self.identities_of[survivor] += moved_identities
        self.merges.append(PendingMerge(survivor, absorbed, survivor_dek, absorbed_dek, uuid.uuid4(), merged_at,
                                        [row.id for row in moved_records], moved_identities))

    # --- storing ----------------------------------------------------------------------------
    def flush(self, *, current: dict, final: bool = False) -> None:
        """Store what the batch has decided so far. Rows get their auto-increment ids
        here only when something still needs them: a later step of this batch, or a
        merge listing the identities it moved. `current`: external key -> current row."""
        now = self.now
        if self.retired_records:
            SourceRecord.objects.filter(any_of(SourceRecord, "id", self.retired_records)).update(is_current=False)
        insert_rows(DataKey, ("id", "kek_id", "wrapped", "created_at", "rotated_at"),
                    [(key_id, kek_id, wrapped, now, None) for key_id, kek_id, wrapped in self.new_keys])
        insert_rows(Profile, ("id", "status", "merged_into_id", "data_key_id", "version", "created_at",
                              "updated_at", "erased_at"),
                    [(profile_id, ProfileStatus.ACTIVE, None, key_id, 1, created_at, now, None)
                     for profile_id, key_id, created_at in self.new_profiles])
        insert_rows(SourceRecord, RECORD_COLUMNS, [
            (r.id, r.source_id, r.external_key, r.profile_id, r.status, r.held_key_id, r.payload, r.payload_digest,
             r.is_current, r.observed_at, r.received_at) for r in self.new_records])
        for row in self.new_records:
            row.stored = True
        if self.dropped_identities:
            Identity.objects.filter(id__in=self.dropped_identities).delete()
        self._store_identities(with_ids=not final or bool(self.merges))
        if self.improved_provenance:
            bulk_update_fields(Identity, list(self.improved_provenance.values()), ["source", "assurance"])
        insert_rows(HeldIdentifier, ("record_id", "kind", "namespace", "blind_index"), self.new_held_identifiers)
        if self.attached_held:
            self._store_attached_held()
        if self.merges:
            self._store_merges()
        if self.replaced_attributes:
            AttributeValue.objects.filter(any_of(AttributeValue, "profile_id", self.replaced_attributes)).delete()
        self._store_attributes(with_ids=not final)
        insert_rows(MergeConflict, ("id", "record_id", "profile_id", "other_profiles", "reason", "status",
                                    "created_at", "resolved_at"), [
            (conflict_id, current[external_key].id, profile_id, others, reason, "open", now, None)
            for conflict_id, profile_id, reason, others, external_key in self.conflicts])
        self._reset()

    def _store_identities(self, *, with_ids: bool) -> None:
        rows, version, now = self.new_identities, self.index_key_version, self.now
        if with_ids:
            for identity, pk in zip(rows, reserve_ids(Identity, len(rows))):
                identity.id = pk
        values = [(i.id, i.profile_id, i.kind, i.namespace, i.blind_index, version, i.value, i.record_id, i.priority,
                   i.source_id, i.assurance, now, i.last_seen_at) for i in rows]
        _insert(Identity, IDENTITY_COLUMNS, values, with_ids=with_ids)

    def _store_attributes(self, *, with_ids: bool) -> None:
        rows = [row for rows in self.new_attributes.values() for row in rows.values()]
        if with_ids:
            for row, pk in zip(rows, reserve_ids(AttributeValue, len(rows))):
                row.id = pk
        values = [(a.id, a.profile_id, a.name, a.source_id, a.record_id, a.observed_at, a.is_personal,
                   a.value_cipher, a.value_plain) for a in rows]
        _insert(AttributeValue, ATTRIBUTE_COLUMNS, values, with_ids=with_ids)
        changed = [row for rows in self.changed_attributes.values() for row in rows.values()]
        if changed:
            bulk_update_fields(AttributeValue, changed, ATTRIBUTE_UPDATE)

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
                MergeStep(survivor_id=m.survivor, absorbed_id=m.absorbed, survivor_dek=m.survivor_dek,
                          absorbed_dek=m.absorbed_dek, merge_id=m.merge_id, created_at=m.merged_at,
                          moved_records=m.records, moved_identities=[i.id for i in m.identities if i.id is not None])
                for m in wave], cipher=self.cipher)


def _insert(model, columns: tuple, values: list[tuple], *, with_ids: bool) -> None:
    """Rows whose first column is an auto-increment id: given when something still
    needs it, else left to the database."""
    if with_ids:
        insert_rows(model, columns, values)
    else:
        insert_rows(model, columns[1:], [row[1:] for row in values])
