"""Reviewing merge conflicts: resolution refused a link, and a person decides.

Two answers: the refusal was right (`merge_conflict_approve`: keep the profiles apart),
or, for a link the identity rules held because a less trusted source made it
(cdp.services.identity_rules), the link is right (`merge_conflict_apply`: merge the
profiles, or attach the held address). Protection rules that encode facts (two ids of
one CRM, a pair an operator separated) cannot be overridden here.
"""

from __future__ import annotations

from uuid import UUID

from django.db import transaction
from django.utils import timezone

from cdp.core.advisory import advisory_locks
from cdp.core.errors import ApplicationError, NotFound
from cdp.core.outbox import outbox_put
from cdp.errors import CdpErrorCode
from cdp.models import ConflictStatus, Identity, MergeConflict, Profile, ProfileStatus, SourceRecord
from cdp.services import identity_rules
from cdp.services.merges import identities_trim_to_caps, profile_merge
from cdp.services.profiles import identities_add, profile_dek, profile_get_live, profiles_touch
from cdp.services.records import external_key_for, parse_identifiers, phone_region
from cdp.services.source_records import record_payload_read
from consent.services.access import operator_action_event

APPLICABLE_REASONS = frozenset({identity_rules.UNTRUSTED_CONTACT, identity_rules.UNTRUSTED_MERGE})


def _open_conflict(conflict_id: UUID) -> MergeConflict:
    conflict = MergeConflict.objects.select_for_update().filter(id=conflict_id).first()
    if conflict is None:
        raise NotFound("No merge conflict has this id.")
    if conflict.status != ConflictStatus.OPEN:
        raise ApplicationError("This conflict was already reviewed.", code=CdpErrorCode.ALREADY_RESOLVED, status=409)
    return conflict


def _close(conflict: MergeConflict, *, actor: str, action: str) -> None:
    conflict.status, conflict.resolved_at = ConflictStatus.RESOLVED, timezone.now()
    conflict.save(update_fields=["status", "resolved_at"])
    operator_action_event(actor=actor, action=action, profile_id=conflict.profile_id,
                          detail={"conflict_id": str(conflict.id), "reason": conflict.reason})


@transaction.atomic
def merge_conflict_approve(*, conflict_id: UUID, actor: str) -> MergeConflict:
    """The refusal was right: keep the profiles apart and close the conflict."""
    conflict = _open_conflict(conflict_id)
    _close(conflict, actor=actor, action="merge_conflict_approved")
    return conflict


@transaction.atomic
def merge_conflict_apply(*, conflict_id: UUID, actor: str) -> MergeConflict:
    """The held link is right: make it, and close the conflict.

    A held merge merges the profiles still active (the oldest survives, as in
    resolution); a held address is attached to the profile its record went to, keeping
    the provenance of the source that sent it (so it still cannot open sign-in where
    the rules say it may not).
    """
    conflict = _open_conflict(conflict_id)
    if conflict.reason not in APPLICABLE_REASONS:
        raise ApplicationError("Only links held for the source's assurance can be applied; this refusal is a "
                               "merge-protection rule.", code=CdpErrorCode.NOT_APPLICABLE, status=409)
    if conflict.reason == identity_rules.UNTRUSTED_MERGE:
        _merge_held(conflict)
    else:
        _attach_held_contacts(conflict)
    _close(conflict, actor=actor, action="merge_conflict_applied")
    return conflict


def _merge_held(conflict: MergeConflict) -> None:
    ids = [conflict.profile_id, *(UUID(p) for p in conflict.other_profiles)]
    live = list(Profile.objects.filter(id__in=ids, status=ProfileStatus.ACTIVE).order_by("created_at", "id")
                .values_list("id", flat=True))
    survivor, *absorbed = live
    for profile_id in absorbed:
        profile_merge(survivor_id=survivor, absorbed_id=profile_id, reason="reviewed_link",
                      trigger_record_id=conflict.record_id)


def _attach_held_contacts(conflict: MergeConflict) -> None:
    record = SourceRecord.objects.select_related("source").filter(pk=conflict.record_id).first()
    if record is None or record.profile_id is None:
        raise ApplicationError("The record this link came with is gone.", code=CdpErrorCode.RECORD_GONE, status=409)
    source = record.source
    dek = profile_dek(profile_get_live(record.profile_id))
    payload = record_payload_read(record, dek=dek)
    contacts = {kind: value for kind, value in payload.get("identifiers", {}).items()
                if kind in identity_rules.CONTACT_KINDS}
    region = phone_region(payload.get("attributes") or {})  # as the record was read when it came
    keys, _ = parse_identifiers(contacts, source_key=source.key, region=region)
    advisory_locks(sorted(k.blind_index for k in keys))
    profile = profile_get_live(record.profile_id, for_update=True)
    taken = {(kind, index) for kind, index in Identity.objects.filter(
        blind_index__in=[k.blind_index for k in keys], namespace="").values_list("kind", "blind_index")}
    identities_add(profile=profile, keys=[k for k in keys if (k.kind, k.blind_index) not in taken], record=record,
                   dek=dek, now=timezone.now())
    identities_trim_to_caps(profile_id=profile.id)
    profiles_touch([profile.id])
    outbox_put(topic="profile.updated", payload={"profile_id": str(profile.id)})


def conflict_results_describe(*, source_key: str, records: list, results: list[dict]) -> list[dict]:
    """Batch results whose `conflict` names what was refused: `reason` (as in
    GET /merge-conflicts), `record_id` (the stored record) and `conflict_id`.

    Read after the batch is stored, for its conflict results only (normally none).
    """
    wanted = {}
    for result in results:
        if result["status"] == "conflict":
            external_id = str(records[result["index"]]["external_id"]).strip()
            wanted[external_key_for(source_key=source_key, external_id=external_id)] = result
    if not wanted:
        return results
    record_ids = dict(SourceRecord.objects.filter(source__key=source_key, external_key__in=wanted, is_current=True)
                      .values_list("external_key", "id"))
    latest = {}
    for conflict in MergeConflict.objects.filter(record_id__in=record_ids.values()).order_by("created_at"):
        latest[conflict.record_id] = conflict  # the newest conflict of each record wins
    for external_key, result in wanted.items():
        conflict = latest.get(record_ids.get(external_key))
        if conflict is not None:
            result.update(conflict_id=str(conflict.id), reason=conflict.reason, record_id=str(conflict.record_id))
    return results
