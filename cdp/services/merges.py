"""Merging profiles and undoing merges.

Moving data between profiles re-encrypts it under the receiving profile's data key, so
one key always covers all of one person's data. Reads and writes ciphertexts, ids and
blind indexes; logs nothing personal.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
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
from cdp.services.profiles import (
    IDENTITY_FIELD,
    profile_dek,
    profiles_touch,
)
from cdp.services.source_records import PAYLOAD_FIELD, record_payload_move, record_payload_read
from consent.services import consent_profiles_merged, consent_profiles_merged_many
from consent.services.access import operator_action_event


def _lock_profiles(ids) -> dict:
    # One statement, stable order: concurrent merges over the same profiles cannot deadlock.
    rows = Profile.objects.select_for_update(of=("self",)).select_related("data_key").filter(
        id__in=list(ids)).order_by("id")
    return {p.id: p for p in rows}


def _move_identities(identities, *, old_dek, new_profile_id, new_dek) -> None:
    for identity in identities:
        identity.value = crypto.reencrypt_value(identity.value, field=IDENTITY_FIELD, old_dek=old_dek,
                                                old_owner=identity.profile_id, new_dek=new_dek,
                                                new_owner=new_profile_id)
        identity.profile_id = new_profile_id
    bulk_update_fields(Identity, identities, ["value", "profile"])


def _move_records(records, *, old_dek, new_profile_id, new_dek) -> None:
    for record in records:
        record_payload_move(record, old_dek=old_dek, new_profile_id=new_profile_id, new_dek=new_dek)
    bulk_update_fields(SourceRecord, records, ["payload", "profile"])


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
    profiles = _lock_profiles([survivor_id, absorbed_id])
    survivor, absorbed = profiles.get(survivor_id), profiles.get(absorbed_id)
    if survivor is None or absorbed is None:
        raise NotFound("No profile has this id.")
    if survivor.status != ProfileStatus.ACTIVE or absorbed.status != ProfileStatus.ACTIVE:
        raise Conflict("Only active profiles can be merged.", code=CdpErrorCode.PROFILE_NOT_ACTIVE)
    survivor_dek, absorbed_dek = profile_dek(survivor), profile_dek(absorbed)

    records = list(SourceRecord.objects.filter(profile_id=absorbed_id))
    identities = list(Identity.objects.filter(profile_id=absorbed_id))
    absorbed_profiles = [str(absorbed_id)] + [
        str(pid) for pid in Profile.objects.filter(merged_into_id=absorbed_id).values_list("id", flat=True)]

    _move_records(records, old_dek=absorbed_dek, new_profile_id=survivor_id, new_dek=survivor_dek)
    _move_identities(identities, old_dek=absorbed_dek, new_profile_id=survivor_id, new_dek=survivor_dek)
    Event.objects.filter(profile_id=absorbed_id).update(profile_id=survivor_id)
    # Path compression: ids merged into the absorbed profile now point at the survivor.
    Profile.objects.filter(merged_into_id=absorbed_id).update(merged_into_id=survivor_id)
    Profile.objects.filter(id=absorbed_id).update(status=ProfileStatus.MERGED, merged_into_id=survivor_id,
                                                  updated_at=timezone.now())
    AttributeValue.objects.filter(profile_id=absorbed_id).delete()
    attributes_rebuild(profile_id=survivor_id, dek=survivor_dek)
    identities_trim_to_caps(profile_id=survivor_id)

    merge = Merge.objects.create(
        survivor_id=survivor_id, absorbed_id=absorbed_id, reason=reason, trigger_record_id=trigger_record_id,
        moved_records=[str(r.id) for r in records], moved_identities=[i.id for i in identities],
        absorbed_profiles=absorbed_profiles,
    )
    consent_profiles_merged(survivor_id=survivor_id, absorbed_id=absorbed_id)
    profiles_touch([survivor_id, absorbed_id])
    outbox_put(topic="profile.merged", payload={"profile_id": str(survivor_id),
                                                "merged_profile_id": str(absorbed_id), "merge_id": str(merge.id)})
    return merge


@dataclass
class MergeStep:
    """One merge identity resolution decided in memory, to be stored by merges_apply."""

    survivor_id: uuid.UUID
    absorbed_id: uuid.UUID
    survivor_dek: bytes
    absorbed_dek: bytes
    merge_id: uuid.UUID
    created_at: datetime
    moved_records: list      # ids of the caller's own rows that already moved (stored under the survivor)
    moved_identities: list   # likewise, identity ids


class _MovedRow:
    __slots__ = ("id", "profile_id", "payload", "value")

    def __init__(self, row_id, profile_id, ciphertext):
        self.id, self.profile_id, self.payload, self.value = row_id, profile_id, ciphertext, ciphertext

    @property
    def pk(self):
        return self.id


def merges_apply(steps: list[MergeStep], *, cipher: crypto.ValueCipher) -> None:
    """Store several merges at once: what profile_merge does, in a fixed number of
    statements (plus consent's own work for each merge).

    For identity resolution, which decided the merges in memory, holds both profiles
    locked, and has already moved its own new rows (listed in the steps). So this neither
    locks nor re-checks the profiles, and leaves out two things the caller does itself:
    the survivor's attribute rows (rebuilt in memory from the same records, the absorbed
    profile's deleted) and trimming to identifier caps (resolution never takes this path
    for a merge that would exceed one). No profile may appear in two steps: a chain of
    merges is applied as successive calls, in order.
    """
    if not steps:
        return
    by_absorbed = {step.absorbed_id: step for step in steps}
    absorbed_ids = list(by_absorbed)
    involved = {step.survivor_id for step in steps} | set(absorbed_ids)
    if len(involved) != 2 * len(steps):
        raise ValueError("merges_apply takes merges that share no profile")
    moved_records, moved_identities = defaultdict(list), defaultdict(list)

    rows = []
    for record_id, owner, payload in rows_any_of(SourceRecord, ("id", "profile_id", "payload"), "profile_id",
                                                 absorbed_ids):
        step = by_absorbed[owner]
        value = cipher.decrypt(step.absorbed_dek, owner_id=owner, field=PAYLOAD_FIELD, ciphertext=payload)
        rows.append(_MovedRow(record_id, step.survivor_id, cipher.encrypt(
            step.survivor_dek, owner_id=step.survivor_id, field=PAYLOAD_FIELD, value=value)))
        moved_records[owner].append(str(record_id))
    bulk_update_fields(SourceRecord, rows, ["payload", "profile"])

    rows = []
    for identity_id, owner, ciphertext in rows_any_of(Identity, ("id", "profile_id", "value"), "profile_id",
                                                      absorbed_ids):
        step = by_absorbed[owner]
        value = cipher.decrypt(step.absorbed_dek, owner_id=owner, field=IDENTITY_FIELD, ciphertext=ciphertext)
        rows.append(_MovedRow(identity_id, step.survivor_id, cipher.encrypt(
            step.survivor_dek, owner_id=step.survivor_id, field=IDENTITY_FIELD, value=value)))
        moved_identities[owner].append(identity_id)
    bulk_update_fields(Identity, rows, ["value", "profile"])

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
        (step.merge_id, step.survivor_id, step.absorbed_id, "shared_identifier", None,
         moved_records[step.absorbed_id] + [str(r) for r in step.moved_records],
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
    _move_records(records, old_dek=survivor_dek, new_profile_id=absorbed.id, new_dek=absorbed_dek)
    _move_identities(identities, old_dek=survivor_dek, new_profile_id=absorbed.id, new_dek=absorbed_dek)
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
            _move_records([record], old_dek=survivor_dek, new_profile_id=absorbed.id, new_dek=absorbed_dek)
            _move_identities(introduced, old_dek=survivor_dek, new_profile_id=absorbed.id, new_dek=absorbed_dek)
