"""The pipeline as Celery tasks: thin wrappers over the services, ids and numbers only.

    pipeline_run ─► pipeline_run_plan ─► chord[features_compute × N ranges]
        └► segmentation_fit ─► chord[segments_assign × N]
            └► recommender_fit ─► chord[recommendations_compute × N]
                └► predictions_compute ─► statistics_release ─► (finish: status, timings, retire old rows)

Each stage task dispatches the next one after moving the run's stage with a
compare-and-set, so a duplicate chord callback (possible when a redelivered chunk counts
twice in the chord's counter) dispatches nothing. Chunk tasks are idempotent: a chunk's
rows and its `done` mark commit together. A callback arriving before every chunk is done
waits (retries) until they are. Transient errors are retried with exponential backoff and
jitter up to a cap; a task that fails for good is dead-lettered and fails its run. A run
whose heartbeat stops (a lost message) is re-dispatched by `pipeline_watchdog` from beat.
"""

from __future__ import annotations

import logging
import os

from celery import Task, chord, shared_task
from celery.signals import worker_init, worker_process_init
from django.db import InterfaceError, OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from threadpoolctl import threadpool_limits

from cdp.core.broker import BROKER_UNREACHABLE
from personalization.errors import PipelineActive
from personalization.models import PipelineRun, RunStatus, Stage
from personalization.services import pipeline, realtime, realtime_pending

logger = logging.getLogger(__name__)

TRANSIENT_ERRORS = (OperationalError, InterfaceError, ConnectionError, TimeoutError,
                    RedisConnectionError, RedisTimeoutError)
# A chunk is ~2,000 profiles: minutes would mean something is wrong.
CHUNK_LIMITS = {"time_limit": 300, "soft_time_limit": 270}
# A fit sees every profile; still well under the broker's visibility timeout (1,200 s), or
# a slow task would be handed to a second worker while the first still runs it.
STAGE_LIMITS = {"time_limit": 900, "soft_time_limit": 840}
GATE_COUNTDOWN = 5
GATE_MAX_WAITS = 720  # an hour of chunks still running behind an early callback


@worker_init.connect
@worker_process_init.connect
def _single_threaded_blas(**_) -> None:
    """One BLAS/OpenMP thread per worker process: workers scale by processes, and several
    processes each spawning a thread per core oversubscribe the CPU (implicit's ALS warns
    and slows when OpenBLAS threads; K-Means spins)."""
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    threadpool_limits(limits=1)


class PipelineTask(Task):
    """Retries transient errors; a task that still fails is dead-lettered and fails the run."""

    autoretry_for = TRANSIENT_ERRORS
    retry_backoff = 5
    retry_backoff_max = 120
    retry_jitter = True
    max_retries = 5
    acks_late = True
    reject_on_worker_lost = True
    stage = ""

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        arguments = {"stage": self.stage, **kwargs}
        try:
            pipeline.pipeline_dead_letter_record(task_name=self.name, task_id=task_id, arguments=arguments,
                                        retries=self.request.retries, error=exc)
        except Exception:  # the database may be what failed: the log keeps the fact
            logger.exception("dead_letter_not_recorded", extra={"task": self.name, "arguments": arguments})


def _task(name: str, stage: str, limits: dict, **options):
    return shared_task(base=PipelineTask, bind=True, name=f"personalization.{name}", stage=stage,
                       **limits, **options)


# --- starting -------------------------------------------------------------------------------------


@shared_task(name="personalization.pipeline_run", ignore_result=True, acks_late=True,
             autoretry_for=TRANSIENT_ERRORS, retry_backoff=5, max_retries=5)
def pipeline_run(trigger: str = "schedule", params: dict | None = None) -> int | None:
    """Beat's entry point: start a run unless one is already going."""
    try:
        run = pipeline.pipeline_run_create(trigger=trigger, params=params)
    except PipelineActive as active:
        logger.info("pipeline_run_skipped", extra={"reason": active.message})
        return None
    pipeline_run_plan.delay(run_id=run.id)
    return run.id


@_task("pipeline_run_plan", Stage.PLANNED, STAGE_LIMITS, ignore_result=True)
def pipeline_run_plan(self, run_id: int) -> None:
    pipeline.pipeline_run_plan(run_id=run_id)
    pipeline_dispatch(run_id)


# --- fan-out chunks ---------------------------------------------------------------------------
# Each runs its stage's service for one chunk (pipeline.pipeline_chunk_execute looks it up).


@_task("features_compute", Stage.FEATURES, CHUNK_LIMITS)
def features_compute(self, run_id: int, chunk_index: int) -> int:
    return pipeline.pipeline_chunk_execute(run_id=run_id, stage=Stage.FEATURES, index=chunk_index)


@_task("segments_assign", Stage.SEGMENTS_ASSIGN, CHUNK_LIMITS)
def segments_assign(self, run_id: int, chunk_index: int) -> int:
    return pipeline.pipeline_chunk_execute(run_id=run_id, stage=Stage.SEGMENTS_ASSIGN, index=chunk_index)


@_task("recommendations_compute", Stage.RECOMMENDATIONS, CHUNK_LIMITS)
def recommendations_compute(self, run_id: int, chunk_index: int) -> int:
    return pipeline.pipeline_chunk_execute(run_id=run_id, stage=Stage.RECOMMENDATIONS, index=chunk_index)


# --- global stages (each the chord callback of the fan-out before it) ------------------------


@_task("segmentation_fit", Stage.SEGMENTS_FIT, STAGE_LIMITS, ignore_result=True)
def segmentation_fit(self, run_id: int) -> None:
    _global_stage(self, run_id, Stage.SEGMENTS_FIT)


@_task("recommender_fit", Stage.RECOMMENDER_FIT, STAGE_LIMITS, ignore_result=True)
def recommender_fit(self, run_id: int) -> None:
    _global_stage(self, run_id, Stage.RECOMMENDER_FIT)


@_task("predictions_compute", Stage.PREDICTIONS, STAGE_LIMITS, ignore_result=True)
def predictions_compute(self, run_id: int) -> None:
    _global_stage(self, run_id, Stage.PREDICTIONS)


@_task("statistics_release", Stage.RELEASES, STAGE_LIMITS, ignore_result=True)
def statistics_release(self, run_id: int) -> None:
    _global_stage(self, run_id, Stage.RELEASES)


@_task("pipeline_run_finish", Stage.DONE, STAGE_LIMITS, ignore_result=True)
def pipeline_run_finish(self, run_id: int) -> None:
    pipeline.pipeline_run_finish(run_id=run_id)


def _global_stage(task: Task, run_id: int, stage: str) -> None:
    # A stage after a fan-out is that fan-out's chord callback; one after a global stage is
    # dispatched directly once the run has reached it.
    after = pipeline.PREVIOUS[stage] if pipeline.PREVIOUS[stage] in pipeline.FANOUT else None
    run = PipelineRun.objects.filter(id=run_id).values("status", "stage").first()
    if run is None or run["status"] != RunStatus.RUNNING:
        return
    if after is not None and run["stage"] == after:
        if not pipeline.pipeline_stage_ready(run_id=run_id, stage=after):
            raise task.retry(countdown=GATE_COUNTDOWN, max_retries=GATE_MAX_WAITS)
        if not pipeline.pipeline_stage_advance(run_id=run_id, stage=after):
            return  # a twin callback moved the stage and carries on
    elif run["stage"] != stage:
        return  # a stale duplicate: the run is past this stage
    pipeline.pipeline_stage_execute(run_id=run_id, stage=stage)
    if pipeline.pipeline_stage_advance(run_id=run_id, stage=stage):
        pipeline_dispatch(run_id)


# --- dispatching and the watchdog ------------------------------------------------------------

# The task of each stage; the order of the stages is pipeline.ORDER's alone.
CHUNK_TASKS = {Stage.FEATURES: features_compute, Stage.SEGMENTS_ASSIGN: segments_assign,
               Stage.RECOMMENDATIONS: recommendations_compute}
STAGE_TASKS = {Stage.SEGMENTS_FIT: segmentation_fit, Stage.RECOMMENDER_FIT: recommender_fit,
               Stage.PREDICTIONS: predictions_compute, Stage.RELEASES: statistics_release,
               Stage.DONE: pipeline_run_finish, Stage.PLANNED: pipeline_run_plan}


def pipeline_dispatch(run_id: int) -> None:
    """Enqueue what the run's current stage needs: its pending chunks as a chord whose
    callback is the next stage, or the stage's own task."""
    run = PipelineRun.objects.filter(id=run_id).values("status", "stage").first()
    if run is None or run["status"] not in (RunStatus.PENDING, RunStatus.RUNNING):
        return
    stage = run["stage"]
    try:
        if stage in CHUNK_TASKS:
            pending = pipeline.pipeline_chunks(run_id=run_id, stage=stage, pending_only=True)
            callback = STAGE_TASKS[pipeline.NEXT[stage]].si(run_id=run_id)
            if pending:
                chord([CHUNK_TASKS[stage].si(run_id=run_id, chunk_index=i) for i in pending])(callback)
            else:
                callback.delay()
        else:
            STAGE_TASKS[stage].delay(run_id=run_id)
    except BROKER_UNREACHABLE:
        # The run's stage is committed; only the message is missing, as when one is lost
        # with a worker: the watchdog dispatches the stage again once the broker answers.
        logger.warning("pipeline_dispatch_deferred", extra={"run_id": run_id, "stage": stage})


@shared_task(name="personalization.pipeline_watchdog", ignore_result=True)
def pipeline_watchdog() -> list[int]:
    """Re-dispatch runs whose progress stopped (every step is idempotent, so this is safe)."""
    stalled = pipeline.pipeline_runs_stalled()
    for run_id in stalled:
        logger.warning("pipeline_redispatched", extra={"run_id": run_id})
        pipeline_dispatch(run_id)
    return stalled


@shared_task(name="personalization.recommendations_refresh", ignore_result=True, acks_late=True,
             autoretry_for=TRANSIENT_ERRORS, retry_backoff=1, max_retries=5)
def recommendations_refresh(profile_ids: list[str], committed_at: float | None = None) -> int:
    """Rescore the people whose events just arrived (services/realtime.py)."""
    return realtime.recommendations_refresh(profile_ids=profile_ids, committed_at=committed_at)


@shared_task(name="personalization.recommendations_refresh_drain", ignore_result=True, acks_late=True,
             autoretry_for=TRANSIENT_ERRORS, retry_backoff=1, max_retries=5)
def recommendations_refresh_drain() -> int:
    """Refresh everyone whose events are waiting, once each (services/realtime_pending.py)."""
    return realtime_pending.refresh_pending_drain()
