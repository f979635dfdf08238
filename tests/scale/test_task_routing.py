"""Task routing: the pipeline's work on its own queue, so ingestion-adjacent work
(webhooks, DSRs, consent propagation) never waits behind a run; every task of ours is
acknowledged only once done (redelivered if its worker dies)."""

from __future__ import annotations

from cdp.celery import app

REALTIME = {"webhooks.webhook_deliver", "webhooks.webhooks_relay", "consent.dsr_process", "consent.dsr_process_pending",
            "personalization.recommendations_refresh",  # a person's refresh after their events: seconds
            "personalization.recommendations_refresh_drain"}


def _ours() -> dict:
    app.loader.import_default_modules()
    return {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}


def _queue(name: str) -> str:
    return app.amqp.router.route({}, name)["queue"].name


def test_ingestion_adjacent_work_never_shares_the_pipelines_queue():
    tasks = _ours()
    assert tasks.keys() >= REALTIME
    assert {_queue(name) for name in REALTIME} == {"realtime"}
    pipeline = {name for name in tasks if name.startswith("personalization.")} - REALTIME - {
        "personalization.pipeline_watchdog"}
    assert pipeline and {_queue(name) for name in pipeline} == {"pipeline"}
    # The watchdog re-dispatches stalled runs: it must not wait behind them.
    assert _queue("personalization.pipeline_watchdog") == "maintenance"


def test_every_task_goes_to_a_declared_queue_and_is_acknowledged_late():
    declared = set(app.amqp.queues)
    assert declared == {"realtime", "pipeline", "maintenance"}
    for name, task in _ours().items():
        assert _queue(name) in declared, name
        assert task.acks_late, name


def test_beat_schedules_only_tasks_that_exist():
    from django.conf import settings

    tasks = _ours()
    assert {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()} <= tasks.keys()
    assert "cdp.event_partitions_ensure" in {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
