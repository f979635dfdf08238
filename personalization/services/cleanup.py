"""Deleting and exporting what personalization derived about people.

Registered with consent.registry (see apps.py), so consent's own transaction calls them:
a `personalization` withdrawal deletes the person's recommendations and explanations, an
`analytics` withdrawal their features, segment memberships and any recommendation that
used their segment; erasure deletes all of it; a merge drops what the absorbed profile
had. Reads and writes only personalization tables (ids, numbers, item ids); logs counts.
"""

from __future__ import annotations

import logging

from consent import policy
from personalization import db  # noqa: F401 (registers the __in_array lookup)
from personalization.locks import derived_data_delete_lock
from personalization.models import (
    PipelineArtifact,
    Prediction,
    ProfileFeatures,
    Recommendation,
    RefreshPending,
    RunStatus,
    Segmentation,
    SegmentMembership,
)
from personalization.selectors import prediction_as_dict
from personalization.services.artifacts import artifact_serve

logger = logging.getLogger(__name__)
MEMBERSHIP_VERSIONS_KEPT = 2
_BATCH = 5000


def personalization_withdrawal_handle(*, profile_id, purpose: str) -> None:
    if purpose not in ("personalization", "analytics"):
        return
    derived_data_delete_lock()
    deleted = {}
    if purpose == "personalization":
        deleted["recommendations"] = Recommendation.objects.filter(profile_id=profile_id).delete()[0]
    else:
        deleted["features"] = ProfileFeatures.objects.filter(profile_id=profile_id).delete()[0]
        deleted["predictions"] = Prediction.objects.filter(profile_id=profile_id).delete()[0]
        deleted["memberships"] = SegmentMembership.objects.filter(profile_id=profile_id).delete()[0]
        # A segment-based recommendation was made from analytics data too.
        used = [pk for pk, explanation in Recommendation.objects.filter(profile_id=profile_id)
                .values_list("id", "explanation") if "analytics" in (explanation or {}).get("purposes", [])]
        deleted["recommendations"] = Recommendation.objects.filter(id__in=used).delete()[0]
    if any(deleted.values()):  # a withdrawal with nothing derived to delete is not news (an import has thousands)
        logger.info("personalization_withdrawal", extra={"purpose": purpose,
                                                         "tables": sorted(k for k, n in deleted.items() if n)})


def personalization_profile_erase(*, profile_id) -> dict:
    return _derived_data_delete([profile_id])


def personalization_profiles_merged(*, pairs) -> None:
    # The absorbed ids are no longer people of their own; the next run scores the
    # survivors with the merged history. One lock and three statements for all the
    # merges of a batch.
    _derived_data_delete([absorbed_id for _survivor_id, absorbed_id in pairs])


def _derived_data_delete(profile_ids: list) -> dict:
    derived_data_delete_lock()
    return {
        "recommendations": Recommendation.objects.filter(profile_id__in_array=profile_ids).delete()[0],
        "segment_memberships": SegmentMembership.objects.filter(profile_id__in_array=profile_ids).delete()[0],
        "features": ProfileFeatures.objects.filter(profile_id__in_array=profile_ids).delete()[0],
        "predictions": Prediction.objects.filter(profile_id__in_array=profile_ids).delete()[0],
        # Only an id waiting for its real-time refresh, but erasure leaves no trace of the person.
        "refresh_pending": RefreshPending.objects.filter(profile_id__in_array=profile_ids).delete()[0],
    }


def personalization_profile_export(*, profile_id, aliases=()) -> dict:
    ids = [profile_id, *aliases]
    memberships = (SegmentMembership.objects.filter(profile_id__in=ids)
                   .select_related("segment", "segmentation").order_by("-segmentation__created_at"))
    recommendations = Recommendation.objects.filter(profile_id__in=ids).order_by("-run_id", "rank")
    predictions = Prediction.objects.filter(profile_id__in=ids).order_by("-run_id")
    return {"personalization": {
        "segments": [{"segment": m.segment.name, "rfm_score": m.rfm_score,
                      "segmented_at": m.segmentation.created_at.isoformat()} for m in memberships],
        "recommendations": [{"item_id": r.item_id, "title": r.title, "rank": r.rank, "score": r.score,
                             "explanation": r.explanation, "generated_at": r.created_at.isoformat()}
                            for r in recommendations],
        "predictions": [prediction_as_dict(p) for p in predictions],
    }}


def derived_data_retire(*, current_run_id: int) -> None:
    """After a run succeeds: only its recommendations are served, older ones go, and
    memberships are kept for the newest two segmentations only."""
    Recommendation.objects.exclude(run_id=current_run_id).delete()
    ProfileFeatures.objects.exclude(run_id=current_run_id).delete()
    # A run that could not predict (too little data) leaves the previous predictions served.
    if Prediction.objects.filter(run_id=current_run_id).exists():
        Prediction.objects.exclude(run_id=current_run_id).delete()
    # The served run keeps its model, without its people: events between fits are scored
    # with it (realtime.py).
    PipelineArtifact.objects.exclude(run_id=current_run_id).delete()
    artifact_serve(run_id=current_run_id)
    kept = list(Segmentation.objects.filter(run__status=RunStatus.SUCCEEDED).order_by("-created_at")
                .values_list("id", flat=True)[:MEMBERSHIP_VERSIONS_KEPT])
    SegmentMembership.objects.exclude(segmentation_id__in=kept).delete()
    for segmentation_id in kept[1:]:
        # The previous version is kept for comparison, but only for people who still allow
        # analytics (consent can also lapse without a withdrawal, e.g. by expiry).
        ids = list(SegmentMembership.objects.filter(segmentation_id=segmentation_id)
                   .values_list("profile_id", flat=True))
        gone = sorted(set(ids) - policy.allowed(ids, "analytics"))
        for start in range(0, len(gone), _BATCH):
            SegmentMembership.objects.filter(segmentation_id=segmentation_id,
                                             profile_id__in=gone[start:start + _BATCH]).delete()
    # The row counts are whole populations (the last run's people): they stay out of the logs.
    logger.info("personalization_retired", extra={"run_id": current_run_id})


def derived_data_of_run_delete(*, run_id: int) -> None:
    """A failed run serves nothing: drop its rows (its segmentation's figures stay for audit)."""
    Recommendation.objects.filter(run_id=run_id).delete()
    ProfileFeatures.objects.filter(run_id=run_id).delete()
    Prediction.objects.filter(run_id=run_id).delete()
    PipelineArtifact.objects.filter(run_id=run_id).delete()
    SegmentMembership.objects.filter(segmentation__run_id=run_id).delete()
