"""Reads for the assignment endpoint's fast path."""

from __future__ import annotations

from uuid import UUID

from django.db.models import Exists, OuterRef, Subquery

from campaigns.errors import CampaignUnknown
from campaigns.models import Assignment, Campaign
from cdp.models import Profile


def campaign_for_person(*, key: str, profile_id: UUID) -> tuple[Campaign, dict | None, Assignment | None]:
    """The campaign, the person's status and their assignment in one round trip (the
    endpoint answers at 100 requests/s; each query is a round trip to PostgreSQL)."""
    assignment = Assignment.objects.filter(campaign_id=OuterRef("pk"), profile_id=profile_id)
    profile = Profile.objects.filter(pk=profile_id)
    campaign = Campaign.objects.filter(key=key).annotate(
        person_status=Subquery(profile.values("status")[:1]),
        person_merged_into=Subquery(profile.values("merged_into_id")[:1]),
        assigned=Exists(assignment), arm=Subquery(assignment.values("variant")[:1]),
        arm_propensity=Subquery(assignment.values("propensity")[:1]),
        arm_withdrawn_at=Subquery(assignment.values("withdrawn_at")[:1]),
    ).first() if isinstance(key, str) and len(key) <= 64 else None
    if campaign is None:
        raise CampaignUnknown("No campaign has this key.")
    person = None if campaign.person_status is None else {"status": campaign.person_status,
                                                          "merged_into_id": campaign.person_merged_into}
    existing = None
    if campaign.assigned:
        existing = Assignment(campaign=campaign, profile_id=profile_id, variant=campaign.arm,
                              propensity=campaign.arm_propensity, withdrawn_at=campaign.arm_withdrawn_at)
    return campaign, person, existing
