"""Campaigns' side of consent work (registered in CampaignsConfig.ready)."""

from __future__ import annotations

from uuid import UUID

from django.utils import timezone

from campaigns.models import Assignment


def campaigns_withdrawal_handle(*, profile_id: UUID, purpose: str) -> None:
    """Withdrawing a campaign's purpose takes the person out of every campaign under it at
    once: marked withdrawn, they leave the adaptive allocation and the results, and are
    answered the control content from then on."""
    Assignment.objects.filter(profile_id=profile_id, campaign__purpose=purpose, withdrawn_at__isnull=True).update(
        withdrawn_at=timezone.now())


def campaigns_profile_erase(*, profile_id: UUID) -> dict:
    deleted, _ = Assignment.objects.filter(profile_id=profile_id).delete()
    return {"campaign_assignments": deleted}


def campaigns_profile_export(*, profile_id: UUID, aliases: list[UUID]) -> dict:
    rows = (Assignment.objects.filter(profile_id__in=[profile_id, *aliases]).select_related("campaign")
            .order_by("assigned_at"))
    return {"campaigns": [{
        "campaign": row.campaign.key, "name": row.campaign.name, "purpose": row.campaign.purpose,
        "variant": row.campaign.variants[row.variant]["key"], "assigned_at": row.assigned_at.isoformat(),
        "propensity": row.propensity,
        "withdrawn_at": row.withdrawn_at.isoformat() if row.withdrawn_at else None,
    } for row in rows]}


def campaigns_profiles_merged(*, pairs: list[tuple[UUID, UUID]]) -> None:
    """A merged-away profile's assignments move to the survivor, except in campaigns where
    the survivor already takes part: there the survivor's arm stands (sticky) and the
    absorbed one's row goes, so one person is never counted twice."""
    for survivor, absorbed in pairs:
        taken = set(Assignment.objects.filter(profile_id=survivor).values_list("campaign_id", flat=True))
        Assignment.objects.filter(profile_id=absorbed, campaign_id__in=taken).delete()
        Assignment.objects.filter(profile_id=absorbed).update(profile_id=survivor)
