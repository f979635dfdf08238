"""Real-time recommendations: rescoring the people whose events just arrived.

Between nightly fits the item-item model stays fixed, so a person's scores are their
current history times the model: `recommendations_refresh` loads the served run's model
(its artifact is kept while the run is served) and scores the people through the
pipeline's own `score_rows` with their histories as they are now, so explanations are
built by the same code, what they bought is excluded and `as_of` names their newest
event. `personalization` consent is checked when the refresh runs and again under the
write lock. The people of one ingestion transaction arrive as one set after its commit
(cdp.core.event_hooks), are queued as one task (on the `realtime` queue with a broker,
at once in-process without one), and a grant of `personalization` refreshes the person
straight away. Only counts are logged.
"""

from __future__ import annotations

import logging
import time
from hashlib import sha256
from uuid import UUID

from django.conf import settings
from django.db import transaction

from cdp.core.advisory import advisory_locks
from cdp.core.broker import enqueue, task_named
from cdp.core.event_hooks import on_commit_collect
from cdp.core.observability import RECOMMENDATIONS_REFRESH_LAG
from consent import policy
from personalization.db import rows_write
from personalization.locks import derived_data_write_lock
from personalization.models import PipelineArtifact, PipelineRun, Recommendation, RunStatus
from personalization.services.recommendations import ARTIFACT, PURPOSE, ROW_FIELDS, artifact_load, score_rows

logger = logging.getLogger(__name__)
REFRESH_TASK = "personalization.recommendations_refresh"
DEFAULT_TOP_K = 10
# One task scores at most this many people; a larger set (a bulk import) is split.
REFRESH_BATCH = 500


def served_run() -> PipelineRun | None:
    """The newest succeeded run, when it still holds its model."""
    run = PipelineRun.objects.filter(status=RunStatus.SUCCEEDED).order_by("-id").first()
    if run is None or not PipelineArtifact.objects.filter(run_id=run.id, name=ARTIFACT).exists():
        return None
    return run


def recommendations_refresh(*, profile_ids, committed_at: float | None = None) -> int:
    """Rescore these people with the served model; returns how many got a list.

    People without `personalization` get nothing written (their rows went with the
    withdrawal); without a served model nothing happens (the next run scores everyone).
    """
    run = served_run()
    ids = sorted({UUID(str(pid)) for pid in profile_ids})
    if run is None or not ids:
        return 0
    allowed = sorted(policy.allowed(ids, PURPOSE))
    rows = score_rows(run.id, allowed, artifact_load(run.id), top_k=int(run.params.get("top_k", DEFAULT_TOP_K)),
                      current=True) if allowed else []
    with transaction.atomic():
        derived_data_write_lock()
        # Two refreshes of one person take turns: each replaces the whole list.
        advisory_locks([sha256(f"recommendations-refresh:{pid}".encode()).hexdigest() for pid in allowed])
        still = policy.allowed(allowed, PURPOSE)
        Recommendation.objects.filter(run_id=run.id, profile_id__in_array=allowed).delete()
        rows_write(Recommendation, ROW_FIELDS, [row for row in rows if row[1] in still])
    if committed_at is not None:
        RECOMMENDATIONS_REFRESH_LAG.observe(max(0.0, time.time() - committed_at))
    refreshed = len({row[1] for row in rows if row[1] in still})
    logger.info("recommendations_refreshed", extra={"run_id": run.id, "profiles": refreshed})
    return refreshed


def recommendations_refresh_schedule(profile_ids: set, committed_at: float | None = None) -> None:
    """After a commit: queue one refresh for these people (deduplicated), in batches."""
    ids = sorted({str(pid) for pid in profile_ids})
    for start in range(0, len(ids), REFRESH_BATCH):
        enqueue(task_named(REFRESH_TASK), ids[start:start + REFRESH_BATCH], committed_at)


def events_refresh_schedule(profile_ids: set, committed_at: float | None = None) -> None:
    """After a commit that stored events: refresh the people they touched. Through a broker
    always (the ingestion request only queues one task); with tasks in-process only when
    TESSERA_REALTIME_IN_PROCESS is on, since the refresh then runs in the ingesting
    process and costs it most of its throughput (bench/realtime.py: 184 against 1,472
    messages/s)."""
    if settings.TASKS_IN_PROCESS and not settings.TESSERA_REALTIME_IN_PROCESS:
        return
    recommendations_refresh_schedule(profile_ids, committed_at)


def personalization_grant_handle(*, profile_id, purpose: str) -> None:
    """Consent's GRANT hook (inside its transaction): compute the list once it commits."""
    if purpose == PURPOSE:
        # One refresh for all the grants of a transaction (a consent batch grants many).
        on_commit_collect(recommendations_refresh_schedule, {profile_id})
