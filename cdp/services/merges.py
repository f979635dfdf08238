"""Merging profiles and undoing merges.

Moving data between profiles re-encrypts it under the receiving profile's data key, so
one key always covers all of one person's data. Reads and writes ciphertexts, ids and
blind indexes; logs nothing personal.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cdp import crypto
from cdp.core.bulk import bulk_update_fields, insert_rows, rows_any_of, update_mapped
from cdp.core.errors import Conflict, NotFound
from cdp.core.identifiers import GLOBAL_KINDS
from cdp.core.outbox import outbox_put, outbox_put_many
from cdp.errors import CdpErrorCode
from cdp.models import (
    AttributeValue,
    Event,
    Identity,
    Merge,
    MergeBlock,
    Profile,
    ProfileStatus,
    SourceRecord,
)
from cdp.services.attributes import attributes_rebuild
from cdp.services.profiles import identity_value_move, profile_dek, profiles_touch
from cdp.services.source_records import record_payload_move, record_payload_read
from consent.services import consent_profiles_merged_many
from consent.services.access import operator_action_event


def _lock_profiles(ids) -> dict:
    # One statement, stable order: concurrent merges over the same profiles cannot deadlock.
    rows = Profile.objects.select_for_update(of=("self",)).select_related("data_key").filter(
        id__in=list(ids)).order_by("id")
    return {p.id: p for p in rows}


# The one way a stored row moves to another profile: (the function that re-encrypts and
# repoints it, the column it encrypts). Resolution moves its unsaved rows with the same.
_MOVES = {SourceRecord: (record_payload_move, "payload"), Identity: (identity_value_move, "value")}


def _move(model, rows, *, old_dek, new_profile_id, new_dek) -> None:
    move, column = _MOVES[model]
    cipher = crypto.ValueCipher()
    for row in rows:
        move(row, old_dek=old_dek, new_profile_id=new_profile_id, new_dek=new_dek, cipher=cipher)
    bulk_update_fields(model, rows, [column, "profile"])


def identities_trim_to_caps(*, profile_id) -> None:
    """Drop the lowest-priority global identifiers beyond the configured caps."""
    caps = settings.TESSERA_IDENTIFIER_CAPS
    by_kind = defaultdict(list)
    for identity in Identity.objects.filter(profile_id=profile_id, kind__in=list(caps)):
        by_kind[identity.kind].append(identity)
    doomed = []
    for kind, identities in by_kind.items():
        identities.sort(key=lambda i: (i.priority, i.last_seen_at, i.id), reverse=True)
        doomed.extend(i.id for i in identities[caps[kind]:])
    if doomed:
        Identity.objects.filter(id__in=doomed).delete()


@transaction.atomic
def profile_merge(*, survivor_id, absorbed_id, reason: str = "shared_identifier", trigger_record_id=None) -> Merge:
    """Move everything of the absorbed profile to the survivor (merges_apply), rebuild the
    survivor's attributes and trim its identifiers to the caps."""
    profiles = _lock_profiles([survivor_id, absorbed_id])
    survivor, absorbed = profiles.get(survivor_id), profiles.get(absorbed_id)
    if survivor is None or absorbed is None:
        raise NotFound("No profile has this id.")
    if survivor.status != ProfileStatus.ACTIVE or absorbed.status != ProfileStatus.ACTIVE:
        raise Conflict("Only active profiles can be merged.", code=CdpErrorCode.PROFILE_NOT_ACTIVE)
    survivor_dek = profile_dek(survivor)
    step = MergeStep(survivor_id=survivor.id, absorbed_id=absorbed.id, survivor_dek=survivor_dek,
                     absorbed_dek=profile_dek(absorbed), merge_id=uuid.uuid4(), created_at=timezone.now(),
                     reason=reason, trigger_record_id=trigger_record_id)
    merges_apply([step], cipher=crypto.ValueCipher())
    AttributeValue.objects.filter(profile_id=absorbed.id).delete()
    attributes_rebuild(profile_id=survivor.id, dek=survivor_dek)
    identities_trim_to_caps(profile_id=survivor.id)
    return Merge.objects.get(pk=step.merge_id)


@dataclass
class MergeStep:
    """One merge to store with merges_apply."""

    survivor_id: uuid.UUID
    absorbed_id: uuid.UUID
    survivor_dek: bytes
    absorbed_dek: bytes
    merge_id: uuid.UUID
    created_at: datetime
    reason: str = "shared_identifier"
    trigger_record_id: uuid.UUID | None = None
    # Rows of the caller's own that it already moved (stored under the survivor), by id:
    # identity resolution moves its batch's unsaved rows in memory.
    moved_records: list = field(default_factory=list)
    moved_identities: list = field(default_factory=list)


class _MovedRow:
    __slots__ = ("id", "profile_id", "payload", "value")

    def __init__(self, row_id, profile_id, ciphertext):
        self.id, self.profile_id, self.payload, self.value = row_id, profile_id, ciphertext, ciphertext

    @property
    def pk(self):
        return self.id


def _move_stored(model, by_absorbed: dict, cipher: crypto.ValueCipher) -> dict:
    """Move every stored row of the absorbed profiles to their survivors; their ids by
    absorbed profile."""
    move, column = _MOVES[model]
    rows, moved = [], defaultdict(list)
    for row_id, owner, ciphertext in rows_any_of(model, ("id", "profile_id", column), "profile_id", list(by_absorbed)):
        step = by_absorbed[owner]
        row = _MovedRow(row_id, owner, ciphertext)
        move(row, old_dek=step.absorbed_dek, new_profile_id=step.survivor_id, new_dek=step.survivor_dek,
             cipher=cipher)
        rows.append(row)
        moved[owner].append(row_id)
    bulk_update_fields(model, rows, [column, "profile"])
    return moved


def merges_apply(steps: list[MergeStep], *, cipher: crypto.ValueCipher) -> None:
    """Store merges: move records, identities and events, mark the absorbed profiles
    merged (and those merged into them before), write the Merge rows, merge consents,
    touch both profiles and announce each merge; a fixed number of statements for all
    the steps (plus consent's own work for each merge).

    The caller holds both profiles of each step locked and checked, and rebuilds the
    survivors' attribute rows and trims them to the identifier caps itself
    (profile_merge from the database, identity resolution in memory, which never takes
    this path for a merge that would exceed a cap). No profile may appear in two steps:
    a chain of merges is applied as successive calls, in order.
    """
    if not steps:
        return
    by_absorbed = {step.absorbed_id: step for step in steps}
    absorbed_ids = list(by_absorbed)
    involved = {step.survivor_id for step in steps} | set(absorbed_ids)
    if len(involved) != 2 * len(steps):
        raise ValueError("merges_apply takes merges that share no profile")
    moved_records = _move_stored(SourceRecord, by_absorbed, cipher)
    moved_identities = _move_stored(Identity, by_absorbed, cipher)

    absorbed_before = defaultdict(list)
    for profile_id, merged_into in rows_any_of(Profile, ("id", "merged_into_id"), "merged_into_id", absorbed_ids):
        absorbed_before[merged_into].append(str(profile_id))

    survivor_of = {step.absorbed_id: step.survivor_id for step in steps}
    update_mapped(Event, "profile", "profile", survivor_of)
    # Path compression: ids merged into an absorbed profile now point at its survivor.
    update_mapped(Profile, "merged_into", "merged_into", survivor_of)
    update_mapped(Profile, "id", "merged_into", survivor_of, status=ProfileStatus.MERGED, updated_at=timezone.now())

    insert_rows(Merge, ("id", "survivor_id", "absorbed_id", "reason", "trigger_record_id", "moved_records",
                        "moved_identities", "absorbed_profiles", "created_at", "undone_at"), [
        (step.merge_id, step.survivor_id, step.absorbed_id, step.reason, step.trigger_record_id,
         [str(r) for r in moved_records[step.absorbed_id] + list(step.moved_records)],
         moved_identities[step.absorbed_id] + list(step.moved_identities),
         [str(step.absorbed_id)] + absorbed_before[step.absorbed_id], step.created_at, None)
        for step in steps])
    consent_profiles_merged_many([(step.survivor_id, step.absorbed_id) for step in steps])
    profiles_touch(involved)
    outbox_put_many([("profile.merged", {"profile_id": str(step.survivor_id),
                                         "merged_profile_id": str(step.absorbed_id), "merge_id": str(step.merge_id)})
                     for step in steps])


@transaction.atomic
def merge_undo(*, merge_id, actor: str = "system") -> Merge:
    """Restore both profiles and their identities as before the merge.

    Records that reached the survivor after the merge are re-resolved by their own
    identifiers, and the pair is blocked from merging again automatically.
    """
    merge = Merge.objects.select_for_update().filter(pk=merge_id).first()
    if merge is None:
        raise NotFound("No merge has this id.")
    if merge.undone_at is not None:
        raise Conflict("This merge was already undone.", code=CdpErrorCode.ALREADY_UNDONE)
    profiles = _lock_profiles([merge.survivor_id, merge.absorbed_id])
    survivor, absorbed = profiles[merge.survivor_id], profiles[merge.absorbed_id]
    if survivor.status != ProfileStatus.ACTIVE:
        raise Conflict("The surviving profile was merged or erased since; undo that first.",
                       code=CdpErrorCode.SURVIVOR_NOT_ACTIVE)
    if absorbed.status != ProfileStatus.MERGED or absorbed.merged_into_id != survivor.id or \
            absorbed.data_key_id is None:
        raise Conflict("The absorbed profile can no longer be restored.", code=CdpErrorCode.ABSORBED_NOT_RESTORABLE)
    survivor_dek, absorbed_dek = profile_dek(survivor), profile_dek(absorbed)

    records = list(SourceRecord.objects.filter(id__in=merge.moved_records, profile_id=survivor.id))
    identities = list(Identity.objects.filter(id__in=merge.moved_identities, profile_id=survivor.id))
    _move(SourceRecord, records, old_dek=survivor_dek, new_profile_id=absorbed.id, new_dek=absorbed_dek)
    _move(Identity, identities, old_dek=survivor_dek, new_profile_id=absorbed.id, new_dek=absorbed_dek)
    Event.objects.filter(profile_id=survivor.id, origin_profile_id__in=merge.absorbed_profiles).update(
        profile_id=absorbed.id)
    Profile.objects.filter(id__in=[p for p in merge.absorbed_profiles if p != str(absorbed.id)],
                           merged_into_id=survivor.id).update(merged_into_id=absorbed.id)
    Profile.objects.filter(id=absorbed.id).update(status=ProfileStatus.ACTIVE, merged_into_id=None)
    low, high = sorted([survivor.id, absorbed.id], key=str)
    MergeBlock.objects.get_or_create(profile_low_id=low, profile_high_id=high, defaults={"merge": merge})

    _reresolve_later_records(merge, survivor=survivor, absorbed=absorbed,
                             survivor_dek=survivor_dek, absorbed_dek=absorbed_dek)
    attributes_rebuild(profile_id=survivor.id, dek=survivor_dek)
    attributes_rebuild(profile_id=absorbed.id, dek=absorbed_dek)

    merge.undone_at = timezone.now()
    merge.save(update_fields=["undone_at"])
    operator_action_event(actor=actor, action="merge.undone", profile_id=survivor.id,
                          detail={"merge_id": str(merge.id), "restored_profile_id": str(absorbed.id)})
    profiles_touch([survivor.id, absorbed.id])
    outbox_put(topic="profile.unmerged", payload={"profile_id": str(survivor.id),
                                                  "restored_profile_id": str(absorbed.id), "merge_id": str(merge.id)})
    return merge


def _reresolve_later_records(merge, *, survivor, absorbed, survivor_dek, absorbed_dek) -> None:
    """A record that arrived after the merge goes where its identifiers point now.

    It moves to the restored profile (with the identities it introduced) when its
    identifiers match that profile and none of the survivor's own.
    """
    later = SourceRecord.objects.filter(profile_id=survivor.id, received_at__gt=merge.created_at).exclude(
        id__in=merge.moved_records).select_related("source")
    owner_of = {
        (i.kind, i.namespace, i.blind_index): (i.profile_id, i.record_id)
        for i in Identity.objects.filter(profile_id__in=[survivor.id, absorbed.id])
    }
    for record in later:
        payload = record_payload_read(record, dek=survivor_dek)
        matches_absorbed = matches_survivor = False
        for kind, value in payload.get("identifiers", {}).items():
            namespace = "" if kind in GLOBAL_KINDS else record.source.key
            key = (kind, namespace, crypto.blind_index(kind=kind, namespace=namespace, normalized_value=value))
            owner, introduced_by = owner_of.get(key, (None, None))
            if owner == absorbed.id:
                matches_absorbed = True
            elif owner == survivor.id and introduced_by != record.id:
                matches_survivor = True
        if matches_absorbed and not matches_survivor:
            introduced = list(Identity.objects.filter(record_id=record.id, profile_id=survivor.id))
            _move(SourceRecord, [record], old_dek=survivor_dek, new_profile_id=absorbed.id, new_dek=absorbed_dek)
            _move(Identity, introduced, old_dek=survivor_dek, new_profile_id=absorbed.id, new_dek=absorbed_dek)
