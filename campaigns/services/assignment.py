"""Sticky, consent-checked assignment.

A person's arm is drawn once, by hashing the campaign's salt with their profile id into
[0, 1) and reading it against the allocation of that moment, and is stored with the
propensity it had (for off-policy estimates and the SRM test). No consent for the campaign's
purpose, outside the audience, or the campaign not running: the control content with
`in_experiment: false`, nothing stored, never a participant. A withdrawn participant stays
out (their row is marked, not reused).

Reads the campaign, consent (through consent.policy), segment memberships or non-personal
attributes (plaintext) for the audience, and exposure events for frequency caps; writes
Assignment rows. Decrypts nothing; logs nothing personal.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from uuid import UUID

from django.db import IntegrityError, transaction
from django.utils import timezone

from campaigns.models import Assignment, Campaign
from cdp.models import AttributeValue, Event
from consent import policy
from consent.services.access import Accessor, personal_data_read
from personalization.models import SegmentMembership

EXPOSURE_EVENT = "Experiment Viewed"  # Segment's name; the campaign key travels as the event's item_id


def bucket(salt: str, profile_id: UUID) -> float:
    """A uniform number in [0, 1) fixed by the salt and the person."""
    digest = hashlib.sha256(f"{salt}:{profile_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def arm_for(u: float, weights: list[float]) -> int:
    total = 0.0
    for index, weight in enumerate(weights):
        total += weight
        if u < total:
            return index
    return len(weights) - 1


def _uuid(value) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def _answer(campaign: Campaign, variant: int, *, in_experiment: bool, propensity: float | None,
            reason: str | None, capped: bool = False) -> dict:
    return {"campaign": campaign.key, "variant": campaign.variants[variant]["key"], "in_experiment": in_experiment,
            "propensity": propensity, "reason": reason, "capped": capped}


def _control(campaign: Campaign, reason: str) -> dict:
    return _answer(campaign, 0, in_experiment=False, propensity=None, reason=reason)


def _matches(condition: dict, value) -> bool:
    op, target = condition.get("op", "eq"), condition.get("value")
    if op == "exists":
        return value is not None
    if op == "eq":
        return value == target
    if op == "ne":
        return value != target
    if op == "in":
        return value in target
    return value not in target  # not_in


def audience_members(campaign: Campaign, profile_ids: list[UUID]) -> set[UUID]:
    """Those of the people the campaign's audience includes."""
    profile_ids = [_uuid(pid) for pid in profile_ids]
    if not campaign.audience:
        return set(profile_ids)
    if "segment" in campaign.audience:
        return set(SegmentMembership.objects.filter(segment_id=campaign.audience["segment"],
                                                    profile_id__in=profile_ids).values_list("profile_id", flat=True))
    conditions = campaign.audience["rule"]
    names = {c["attribute"] for c in conditions}
    latest: dict[tuple, object] = {}
    rows = (AttributeValue.objects.filter(profile_id__in=profile_ids, name__in=names, is_personal=False)
            .order_by("observed_at").values_list("profile_id", "name", "value_plain"))
    for pid, name, value in rows:
        latest[(pid, name)] = value  # the newest observation wins
    return {pid for pid in profile_ids
            if all(_matches(c, latest.get((pid, c["attribute"]))) for c in conditions)}


def _capped(campaign: Campaign, profile_id: UUID, now) -> bool:
    if not campaign.frequency_cap:
        return False
    seen = Event.objects.filter(profile_id=profile_id, occurred_at__gte=now - timedelta(hours=campaign.frequency_hours),
                                type="custom", name=EXPOSURE_EVENT, item_id=campaign.key).count()
    return seen >= campaign.frequency_cap


def _row(campaign: Campaign, profile_id: UUID, now) -> Assignment:
    index = arm_for(bucket(campaign.salt, profile_id), campaign.weights)
    return Assignment(campaign=campaign, profile_id=profile_id, variant=index, propensity=campaign.weights[index],
                      weights_version=campaign.weights_version, assigned_at=now)


def _draw(campaign: Campaign, profile_id: UUID, now) -> Assignment:
    row = _row(campaign, profile_id, now)
    try:
        with transaction.atomic():
            row.save(force_insert=True)
            return row
    except IntegrityError:  # a concurrent request drew it first: theirs stands
        return Assignment.objects.get(campaign=campaign, profile_id=profile_id)


_UNREAD = object()


def assignment_get(*, campaign: Campaign, profile_id: UUID, accessor: Accessor | None, existing=_UNREAD) -> dict:
    """One person's answer (the single-person path: one consent round trip on PostgreSQL).
    `existing`: their assignment when the caller read it already (None: none). The answer
    tells whether the person consented, so it is a read of their data: logged for
    `accessor` (None only for the system's own reads, which show it to nobody)."""
    now = timezone.now()
    profile_id = _uuid(profile_id)
    if accessor is not None:
        personal_data_read(accessor=accessor, profile_ids=[profile_id], fields=["campaign_assignment"],
                           purpose=campaign.purpose)
    if not campaign.running(now):
        return _control(campaign, "not_running")
    if existing is _UNREAD:
        existing = Assignment.objects.filter(campaign=campaign, profile_id=profile_id).first()
    if existing is not None and existing.withdrawn_at is not None:
        return _control(campaign, "withdrawn")
    if not policy.is_allowed(profile_id, campaign.purpose):
        return _control(campaign, "no_consent")
    if existing is None:
        if not audience_members(campaign, [profile_id]):
            return _control(campaign, "not_in_audience")
        existing = _draw(campaign, profile_id, now)
    return _answer(campaign, existing.variant, in_experiment=True, propensity=existing.propensity, reason=None,
                   capped=_capped(campaign, profile_id, now))


def assignments_get(*, campaign: Campaign, profile_ids: list[UUID], accessor: Accessor | None) -> dict[UUID, dict]:
    """The same answers for many people at once (an email send): consent and the audience
    are read for the whole list in a few queries. Frequency caps are per-exposure and not
    applied here (a send is one exposure). Logged for `accessor` as assignment_get is."""
    now = timezone.now()
    profile_ids = [_uuid(pid) for pid in profile_ids]
    if accessor is not None and profile_ids:
        personal_data_read(accessor=accessor, profile_ids=profile_ids, fields=["campaign_assignment"],
                           purpose=campaign.purpose)
    if not campaign.running(now):
        return {pid: _control(campaign, "not_running") for pid in profile_ids}
    existing = {a.profile_id: a for a in Assignment.objects.filter(campaign=campaign, profile_id__in=profile_ids)}
    allowed = policy.allowed(profile_ids, campaign.purpose)
    new = [pid for pid in profile_ids if pid not in existing and pid in allowed]
    members = audience_members(campaign, new) if new else set()
    drawn = [pid for pid in new if pid in members]
    if drawn:  # one statement for the whole send; a concurrent request's draw stands
        Assignment.objects.bulk_create([_row(campaign, pid, now) for pid in drawn], ignore_conflicts=True)
        existing.update({a.profile_id: a for a in Assignment.objects.filter(campaign=campaign, profile_id__in=drawn)})
    answers = {}
    for pid in profile_ids:
        row = existing.get(pid)
        if row is not None and row.withdrawn_at is not None:
            answers[pid] = _control(campaign, "withdrawn")
        elif pid not in allowed:
            answers[pid] = _control(campaign, "no_consent")
        elif row is None:
            answers[pid] = _control(campaign, "not_in_audience")
        else:
            answers[pid] = _answer(campaign, row.variant, in_experiment=True, propensity=row.propensity, reason=None)
    return answers
