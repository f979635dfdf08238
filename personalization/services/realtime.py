"""Real-time personalization: refreshing the people whose events just arrived.

Between nightly fits the served run's models stay fixed, so a person's derived data is
their current history run through them, with the pipeline's own code:
- RFM features (`features.features_rows`, counted up to now) and segment assignment
  (`segments.membership_rows`: the nearest centroid of the run's segmentation), for people
  who allow `analytics`;
- recommendations: their current history times the item-item model (`score_rows`, so
  explanations are built by the same code, what they bought is excluded and `as_of`
  names their newest event), for people who allow `personalization`.
Consent is checked when the refresh runs and again under the write lock; the refreshed
people are announced on the `recommendations.updated` webhook topic (ids only) when a
live subscription asked for it. Events reach here coalesced (services/realtime_pending.py);
a grant of `personalization` refreshes the person straight away. Only counts are logged.
"""

from __future__ import annotations

import logging
import time
from hashlib import sha256
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from cdp.core.advisory import advisory_locks
from cdp.core.broker import enqueue, task_named
from cdp.core.event_hooks import on_commit_collect
from cdp.core.observability import RECOMMENDATIONS_REFRESH_LAG
from cdp.core.outbox import outbox_put_many
from cdp.webhooks.selectors import topic_subscribed
from consent import policy
from personalization.db import rows_write
from personalization.locks import derived_data_write_lock
from personalization.models import (
    PipelineArtifact,
    PipelineRun,
    ProfileFeatures,
    Recommendation,
    RunStatus,
    Segmentation,
    SegmentMembership,
)
from personalization.services import features, segments
from personalization.services.recommendations import ARTIFACT, PURPOSE, ROW_FIELDS, artifact_load, score_rows

logger = logging.getLogger(__name__)
REFRESH_TASK = "personalization.recommendations_refresh"
UPDATED_TOPIC = "recommendations.updated"
DEFAULT_TOP_K = 10
# One task scores at most this many people; a larger set (a bulk import) is split.
REFRESH_BATCH = 500


def succeeded_run() -> PipelineRun | None:
    return PipelineRun.objects.filter(status=RunStatus.SUCCEEDED).order_by("-id").first()


def served_run() -> PipelineRun | None:
    """The newest succeeded run, when it still holds its model."""
    run = succeeded_run()
    if run is None or not PipelineArtifact.objects.filter(run_id=run.id, name=ARTIFACT).exists():
        return None
    return run


def recommendations_refresh(*, profile_ids, committed_at: float | dict | None = None) -> int:
    """Refresh these people's features, segment and recommendations with the newest run's
    models; returns how many got a recommendation list. `committed_at`: when their events
    committed (epoch seconds; one for all, or per profile id string) for the lag histogram.

    Without a succeeded run nothing happens (the next run computes everyone); a run that
    keeps no model (nothing to learn from) refreshes features and segments only.
    """
    run = succeeded_run()
    ids = sorted({UUID(str(pid)) for pid in profile_ids})
    if run is None or not ids:
        return 0
    _segments_refresh(run, ids)
    served = PipelineArtifact.objects.filter(run_id=run.id, name=ARTIFACT).exists()
    refreshed = _recommendations_rescore(run, ids) if served else set()
    if committed_at is not None:
        now = time.time()
        for pid in ids:
            at = committed_at if isinstance(committed_at, float | int) else committed_at.get(str(pid))
            if at is not None:
                RECOMMENDATIONS_REFRESH_LAG.observe(max(0.0, now - at))
    logger.info("recommendations_refreshed", extra={"run_id": run.id, "profiles": len(refreshed)})
    return len(refreshed)


def _person_locks(ids: list) -> None:
    # Two refreshes of one person take turns: each replaces the person's whole rows.
    advisory_locks([sha256(f"recommendations-refresh:{pid}".encode()).hexdigest() for pid in ids])


def _segments_refresh(run: PipelineRun, ids: list) -> None:
    """Features up to now and the nearest segment of the run's segmentation."""
    allowed = sorted(policy.allowed(ids, segments.PURPOSE))
    if not allowed:
        return
    rows = features.features_rows(run_id=run.id, profile_ids=allowed, as_of=timezone.now())
    seg = Segmentation.objects.filter(run_id=run.id).first()
    with transaction.atomic():
        derived_data_write_lock()
        _person_locks(allowed)
        still = policy.allowed(allowed, segments.PURPOSE)
        ProfileFeatures.objects.filter(run_id=run.id, profile_id__in_array=allowed).delete()
        rows_write(ProfileFeatures, features.FIELDS, [row for row in rows if row[1] in still])
        if seg is not None:
            # From the features just written, in this transaction: the same rows the
            # pipeline's assignment reads.
            SegmentMembership.objects.filter(segmentation=seg, profile_id__in_array=allowed).delete()
            rows_write(SegmentMembership, segments.MEMBERSHIP_FIELDS,
                       segments.membership_rows(seg, run_id=run.id, profile_ids=sorted(still)))


def _recommendations_rescore(run: PipelineRun, ids: list) -> set:
    allowed = sorted(policy.allowed(ids, PURPOSE))
    rows = score_rows(run.id, allowed, artifact_load(run.id), top_k=int(run.params.get("top_k", DEFAULT_TOP_K)),
                      current=True) if allowed else []
    with transaction.atomic():
        derived_data_write_lock()
        _person_locks(allowed)
        still = policy.allowed(allowed, PURPOSE)
        Recommendation.objects.filter(run_id=run.id, profile_id__in_array=allowed).delete()
        rows_write(Recommendation, ROW_FIELDS, [row for row in rows if row[1] in still])
        refreshed = {row[1] for row in rows if row[1] in still}
        if refreshed and topic_subscribed(UPDATED_TOPIC):
            # Ids only, as every topic; written only while someone listens (a refresh per
            # event would otherwise fill the outbox for nobody).
            outbox_put_many([(UPDATED_TOPIC, {"profile_id": str(pid)}) for pid in sorted(refreshed)])
    return refreshed


def recommendations_refresh_schedule(profile_ids: set, committed_at: float | None = None) -> None:
    """After a commit: queue one refresh for these people now (deduplicated), in batches."""
    ids = sorted({str(pid) for pid in profile_ids})
    for start in range(0, len(ids), REFRESH_BATCH):
        enqueue(task_named(REFRESH_TASK), ids[start:start + REFRESH_BATCH], committed_at)


def personalization_grant_handle(*, profile_id, purpose: str) -> None:
    """Consent's GRANT hook (inside its transaction): compute the list once it commits,
    straight away (not through the coalescing window: the person is waiting for it)."""
    if purpose == PURPOSE:
        # One refresh for all the grants of a transaction (a consent batch grants many).
        on_commit_collect(recommendations_refresh_schedule, {profile_id})
