"""The pipeline run's life: planning profile-id ranges, chunk bookkeeping, stage gates,
finishing, failing, dead letters, and the in-process runner.

Reads profile ids (never personal data) and writes PipelineRun, PipelineChunk and
PipelineDeadLetter rows; error messages stored or logged hold ids, counts and error
types only. The stage work itself lives in features.py, segments.py, recommendations.py
and ../privacy.py; the Celery graph over it lives in ../tasks.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from cdp.core.errors import ApplicationError
from cdp.models import Profile, ProfileStatus
from personalization.errors import PipelineActive
from personalization.models import (
    ChunkStatus,
    PipelineChunk,
    PipelineDeadLetter,
    PipelineRun,
    Recommendation,
    RunStatus,
    SegmentMembership,
    Stage,
)
from personalization.services.cleanup import derived_data_of_run_delete, derived_data_retire

logger = logging.getLogger(__name__)

ORDER = (Stage.FEATURES, Stage.SEGMENTS_FIT, Stage.SEGMENTS_ASSIGN, Stage.RECOMMENDER_FIT,
         Stage.RECOMMENDATIONS, Stage.PREDICTIONS, Stage.RELEASES, Stage.DONE)
NEXT = dict(zip(ORDER, ORDER[1:]))
PREVIOUS = dict(zip(ORDER[1:], ORDER))
FANOUT = (Stage.FEATURES, Stage.SEGMENTS_ASSIGN, Stage.RECOMMENDATIONS)
GLOBAL = (Stage.SEGMENTS_FIT, Stage.RECOMMENDER_FIT, Stage.PREDICTIONS, Stage.RELEASES)
COUNT_NAMES = {Stage.FEATURES: "featured", Stage.SEGMENTS_ASSIGN: "segmented", Stage.RECOMMENDATIONS: "scored"}

DEFAULT_PARAMS = {
    "chunk_size": 2000,     # profiles per task: a retry redoes at most this much
    "k": 4,                 # segments: public (chosen offline with evaluate_segmentation)
    "top_k": 10,
    "seed": 42,
}
# A running run whose heartbeat is older than this is re-dispatched by the watchdog:
# longer than any task's hard time limit, so a slow task is never mistaken for a lost one.
STALL_SECONDS = 20 * 60  # default of TESSERA_PIPELINE_STALL_SECONDS
MEMBERSHIP_VERSIONS_KEPT = 2


@dataclass(frozen=True)
class ChunkRange:
    run_id: int
    stage: str
    index: int
    lower: object
    upper: object
    params: dict

    def profile_ids(self) -> list:
        """Active profiles in [lower, upper), in id order."""
        queryset = Profile.objects.filter(status=ProfileStatus.ACTIVE)
        if self.lower is not None:
            queryset = queryset.filter(id__gte=self.lower)
        if self.upper is not None:
            queryset = queryset.filter(id__lt=self.upper)
        return list(queryset.order_by("id").values_list("id", flat=True))


# --- creating and planning ----------------------------------------------------------------------


def pipeline_run_create(*, trigger: str = "command", params: dict | None = None) -> PipelineRun:
    """A new pending run; refuses while another is pending or running (one at a time)."""
    merged = {**DEFAULT_PARAMS, **(params or {})}
    try:
        with transaction.atomic():
            return PipelineRun.objects.create(trigger=trigger, params=merged)
    except IntegrityError:
        active = PipelineRun.objects.filter(active=True).values_list("id", flat=True).first()
        raise PipelineActive(f"Pipeline run {active} is still in progress.") from None


@transaction.atomic
def pipeline_run_plan(*, run_id: int) -> PipelineRun:
    """Split the active profiles into id ranges, one chunk per range per fan-out stage.

    Ranges are planned once, so every stage fans out over the same ranges; a profile
    created later inside a range is simply picked up by that range. Safe to call twice.
    """
    run = PipelineRun.objects.select_for_update().get(id=run_id)
    if run.stage != Stage.PLANNED:
        return run
    ids = list(Profile.objects.filter(status=ProfileStatus.ACTIVE).order_by("id").values_list("id", flat=True))
    size = max(1, int(run.params.get("chunk_size", DEFAULT_PARAMS["chunk_size"])))
    lowers = ids[::size] or [None]
    bounds = [(None if i == 0 else lower, lowers[i + 1] if i + 1 < len(lowers) else None)
              for i, lower in enumerate(lowers)]
    PipelineChunk.objects.bulk_create([
        PipelineChunk(run=run, stage=stage, index=i, lower=lower, upper=upper)
        for stage in FANOUT for i, (lower, upper) in enumerate(bounds)
    ])
    now = timezone.now()
    run.status, run.stage = RunStatus.RUNNING, Stage.FEATURES
    run.started_at = run.stage_started_at = run.heartbeat_at = now
    run.chunks_total = len(bounds)
    run.counts = {"profiles": len(ids)}
    # One reference time for the whole run, so a retried chunk computes the same recency.
    run.params = {**run.params, "as_of": now.isoformat()}
    run.save()
    # The profile count stays on the run (internal); logs leave the host and carry no population.
    logger.info("pipeline_planned", extra={"run_id": run.id, "chunks": len(bounds)})
    return run


# --- chunks -------------------------------------------------------------------------------------


def pipeline_chunk_start(*, run_id: int, stage: str, index: int) -> ChunkRange | None:
    """Mark a chunk as being worked on; None when it is already done or the run ended."""
    run = PipelineRun.objects.filter(id=run_id).values("status", "params").first()
    if run is None or run["status"] != RunStatus.RUNNING:
        return None
    now = timezone.now()
    started = PipelineChunk.objects.filter(run_id=run_id, stage=stage, index=index).exclude(
        status=ChunkStatus.DONE).update(status=ChunkStatus.RUNNING, attempts=F("attempts") + 1, started_at=now)
    if not started:
        return None
    PipelineRun.objects.filter(id=run_id).update(heartbeat_at=now)
    chunk = PipelineChunk.objects.get(run_id=run_id, stage=stage, index=index)
    return ChunkRange(run_id, stage, index, chunk.lower, chunk.upper, run["params"])


def pipeline_chunk_claim_write(chunk: ChunkRange) -> bool:
    """Inside the chunk's write transaction: lock its row; False if a duplicate finished first.

    Two deliveries of one chunk (a redelivery while the first is still running) both
    compute, but only the first to get here writes: the second finds `done` and rolls back.
    """
    status = (PipelineChunk.objects.select_for_update().filter(
        run_id=chunk.run_id, stage=chunk.stage, index=chunk.index).values_list("status", flat=True).first())
    return status is not None and status != ChunkStatus.DONE


def pipeline_chunk_finish(chunk: ChunkRange, *, count: int, skipped: int = 0) -> None:
    """Inside the chunk's write transaction: the rows and the `done` mark commit together."""
    PipelineChunk.objects.filter(run_id=chunk.run_id, stage=chunk.stage, index=chunk.index).update(
        status=ChunkStatus.DONE, count=count, skipped=skipped, finished_at=timezone.now())


def pipeline_chunks(*, run_id: int, stage: str, pending_only: bool = False) -> list[int]:
    queryset = PipelineChunk.objects.filter(run_id=run_id, stage=stage)
    if pending_only:
        queryset = queryset.exclude(status=ChunkStatus.DONE)
    return list(queryset.order_by("index").values_list("index", flat=True))


def pipeline_stage_ready(*, run_id: int, stage: str) -> bool:
    """Every chunk of the fan-out stage done? A failed chunk has already failed the run."""
    rows = PipelineChunk.objects.filter(run_id=run_id, stage=stage).values("status").annotate(n=Count("id"))
    states = {row["status"]: row["n"] for row in rows}
    return sum(states.values()) == states.get(ChunkStatus.DONE, 0)


# --- stages -------------------------------------------------------------------------------------


@transaction.atomic
def pipeline_stage_advance(*, run_id: int, stage: str) -> bool:
    """Move a running run from `stage` to the next one; False if another task already did.

    The compare-and-set makes a duplicate chord callback harmless: only the task that
    moves the stage goes on to dispatch the next one.
    """
    run = PipelineRun.objects.select_for_update().get(id=run_id)
    if run.status != RunStatus.RUNNING or run.stage != stage:
        return False
    now = timezone.now()
    run.timings = {**run.timings, stage: round((now - run.stage_started_at).total_seconds(), 3)}
    if stage in COUNT_NAMES:
        totals = PipelineChunk.objects.filter(run_id=run_id, stage=stage).aggregate(
            count=Sum("count"), skipped=Sum("skipped"))
        run.counts = {**run.counts, COUNT_NAMES[stage]: totals["count"] or 0,
                      f"{COUNT_NAMES[stage]}_skipped_no_consent": totals["skipped"] or 0}
    run.stage = NEXT[stage]
    run.stage_started_at = run.heartbeat_at = now
    run.save(update_fields=["timings", "counts", "stage", "stage_started_at", "heartbeat_at"])
    return True


def pipeline_counts_add(*, run_id: int, **counts) -> None:
    with transaction.atomic():
        run = PipelineRun.objects.select_for_update().get(id=run_id)
        run.counts = {**run.counts, **counts}
        run.save(update_fields=["counts"])


def pipeline_warning_add(*, run_id: int, stage: str, code: str, message: str) -> None:
    """Something the run skipped without failing (a refused DP release, too few profiles)."""
    with transaction.atomic():
        run = PipelineRun.objects.select_for_update().get(id=run_id)
        run.errors = [*run.errors, {"stage": stage, "chunk": None, "code": code, "message": message[:500],
                                    "severity": "warning", "at": timezone.now().isoformat()}]
        run.save(update_fields=["errors"])


def pipeline_stage_execute(*, run_id: int, stage: str) -> None:
    """Run one global stage's service (each is idempotent: a second call finds its output)."""
    _service(stage)(run_id=run_id)


def pipeline_chunk_execute(*, run_id: int, stage: str, index: int) -> int:
    return _service(stage)(run_id=run_id, chunk_index=index)


# Imported on first use: scikit-learn and scipy take seconds to import, and a features
# worker never needs them. (It also breaks a cycle: each of these imports this module.)
_SERVICES = {
    Stage.FEATURES: ("personalization.services.features", "features_compute"),
    Stage.SEGMENTS_FIT: ("personalization.services.segments", "segmentation_fit"),
    Stage.SEGMENTS_ASSIGN: ("personalization.services.segments", "segments_assign"),
    Stage.RECOMMENDER_FIT: ("personalization.services.recommendations", "recommender_fit"),
    Stage.RECOMMENDATIONS: ("personalization.services.recommendations", "recommendations_compute"),
    Stage.PREDICTIONS: ("personalization.services.predictions", "predictions_compute"),
    Stage.RELEASES: ("personalization.privacy", "statistics_release_for_run"),
}


def _service(stage: str) -> Callable:
    module, name = _SERVICES[stage]
    return getattr(import_module(module), name)


# --- finishing and failing ----------------------------------------------------------------------


@transaction.atomic
def pipeline_run_finish(*, run_id: int) -> bool:
    """Close a run whose stages are all done and retire what it replaces.

    Deletes the run's model artifact, the recommendations and features of every other
    run (only the newest succeeded run is served), and memberships of segmentations
    beyond the newest two (the previous one is kept for comparison, pruned to people who
    still allow analytics). Logs counts only.
    """
    run = PipelineRun.objects.select_for_update().get(id=run_id)
    if run.status != RunStatus.RUNNING or run.stage != Stage.DONE:
        return False
    now = timezone.now()
    # Measured before derived_data_retire strips the people from the model (imported here:
    # it imports this module).
    run.quality = import_module("personalization.services.recommendation_quality").recommendations_quality(
        run_id=run.id)
    run.status, run.active, run.finished_at = RunStatus.SUCCEEDED, None, now
    run.timings = {**run.timings, "total": round((now - run.started_at).total_seconds(), 3)}
    run.save()
    derived_data_retire(current_run_id=run.id)
    transaction.on_commit(served_tables_analyze)
    logger.info("pipeline_succeeded", extra={"run_id": run.id, "timings": run.timings})
    return True


def served_tables_analyze() -> None:
    """Fresh planner statistics for what the API reads, which a run has just replaced
    wholesale: the recommendations endpoint's plan must not wait for autovacuum (which
    may be off, or behind after a large run)."""
    if connection.vendor != "postgresql":
        return
    tables = ", ".join(connection.ops.quote_name(model._meta.db_table) for model in (Recommendation, SegmentMembership))
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {tables}")


def pipeline_run_fail(*, run_id: int, stage: str, code: str, message: str, chunk_index: int | None = None) -> None:
    """Mark the run failed (nothing of it is served) and drop what it wrote."""
    with transaction.atomic():
        run = PipelineRun.objects.select_for_update().filter(id=run_id).first()
        if run is None:
            return
        error = {"stage": stage, "chunk": chunk_index, "code": code, "message": message[:500],
                 "at": timezone.now().isoformat()}
        run.errors = [*run.errors, error]
        if run.status in (RunStatus.PENDING, RunStatus.RUNNING):
            run.status, run.active, run.finished_at = RunStatus.FAILED, None, timezone.now()
        run.save(update_fields=["errors", "status", "active", "finished_at"])
        if run.status == RunStatus.FAILED:
            derived_data_of_run_delete(run_id=run.id)
    logger.warning("pipeline_failed", extra={"run_id": run_id, "stage": stage, "code": code, "chunk": chunk_index})


def _task_failure(stage: str, chunk_index: int | None, retries: int, error_type: str) -> str:
    """What operators read on /ops/ (the task's own name stays in the dead letter)."""
    part = f", part {chunk_index + 1}," if chunk_index is not None else ""
    name = dict(Stage.choices).get(stage, stage or "A task")
    return f"{name}{part} failed after {retries} retries ({error_type})."


def pipeline_dead_letter_record(*, task_name: str, task_id: str, arguments: dict, retries: int,
                                error: BaseException) -> PipelineDeadLetter:
    """Keep a task that failed for good, then fail its run with the same error."""
    run_id = arguments.get("run_id")
    stage = arguments.get("stage", "")
    letter = PipelineDeadLetter.objects.create(
        run_id=run_id if run_id and PipelineRun.objects.filter(id=run_id).exists() else None,
        task_name=task_name, task_id=task_id or "", arguments=arguments, stage=stage,
        chunk_index=arguments.get("chunk_index"), retries=retries,
        error_type=type(error).__name__, error_message=error_message(error),
    )
    if run_id:
        pipeline_run_fail(run_id=run_id, stage=stage, code="task_failed", chunk_index=arguments.get("chunk_index"),
                          message=_task_failure(stage, arguments.get("chunk_index"), retries, letter.error_type))
    return letter


def error_message(error: BaseException) -> str:
    """Our own errors carry safe sentences; anything else is named by type only, because a
    database error's text can quote the row it choked on."""
    if isinstance(error, ApplicationError):
        return error.message[:500]
    return type(error).__name__


def pipeline_runs_stalled(*, now=None) -> list[int]:
    """Active runs with no progress for STALL_SECONDS: their current step may have been lost."""
    now = now or timezone.now()
    cutoff = now - timezone.timedelta(seconds=getattr(settings, "TESSERA_PIPELINE_STALL_SECONDS", STALL_SECONDS))
    stalled = PipelineRun.objects.filter(active=True).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, created_at__lt=cutoff))
    ids = list(stalled.values_list("id", flat=True))
    PipelineRun.objects.filter(id__in=ids).update(heartbeat_at=now)
    return ids


# --- progress and the in-process runner ---------------------------------------------------------


def pipeline_progress(*, run_id: int) -> dict:
    """Units done of units total (every chunk of every fan-out stage + each global stage)."""
    run = PipelineRun.objects.get(id=run_id)
    chunks_done = PipelineChunk.objects.filter(run_id=run_id, status=ChunkStatus.DONE).count()
    position = ORDER.index(run.stage) if run.stage in ORDER else -1
    globals_done = sum(1 for stage in GLOBAL if position > ORDER.index(stage))
    return {
        "id": run.id, "status": run.status, "stage": run.stage,
        "done": chunks_done + globals_done, "total": run.chunks_total * len(FANOUT) + len(GLOBAL),
        "counts": run.counts, "timings": run.timings, "errors": run.errors,
    }


def pipeline_run_sync(*, run_id: int, on_stage: Callable[[str, float], None] | None = None,
                      on_progress: Callable[[int], None] | None = None) -> PipelineRun:
    """Run every stage in this process, in order (no broker, or `run_pipeline --sync`).

    The same services the Celery tasks call, so in-process and distributed runs store
    exactly the same rows. A failure fails the run and is re-raised.
    """
    pipeline_run_plan(run_id=run_id)
    stage = Stage.FEATURES
    try:
        while stage != Stage.DONE:
            started = time.perf_counter()
            if stage in FANOUT:
                for index in pipeline_chunks(run_id=run_id, stage=stage, pending_only=True):
                    pipeline_chunk_execute(run_id=run_id, stage=stage, index=index)
                    if on_progress:
                        on_progress(1)
            else:
                pipeline_stage_execute(run_id=run_id, stage=stage)
                if on_progress:
                    on_progress(1)
            if on_stage:
                on_stage(stage, time.perf_counter() - started)
            pipeline_stage_advance(run_id=run_id, stage=stage)
            stage = NEXT[stage]
    except BaseException as error:
        pipeline_run_fail(run_id=run_id, stage=stage, code="stage_failed",
                          message=f"{Stage(stage).label} failed: {error_message(error)}.")
        raise
    pipeline_run_finish(run_id=run_id)
    return PipelineRun.objects.get(id=run_id)
