"""The Celery app. With no CELERY_BROKER_URL, tasks run in-process (eager)."""

from __future__ import annotations

import os
import time

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_init, worker_process_init
from django.conf import settings

from cdp.core.gc_tuning import gc_tune
from cdp.core.observability import TASK_LATENCY, TASKS

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")

app = Celery("tessera")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

_started: dict[str, float] = {}


@worker_init.connect
@worker_process_init.connect
def _gc_tune(**_):
    # The worker (solo pool) or each pool process, once the app is loaded: see gc_tuning.
    gc_tune(settings.TESSERA_GC_GEN0_THRESHOLD)


@task_prerun.connect
def _task_started(task_id=None, **_):
    _started[task_id] = time.perf_counter()


@task_postrun.connect
def _task_finished(task_id=None, task=None, state=None, **_):
    started = _started.pop(task_id, None)
    TASKS.labels(task.name, state or "UNKNOWN").inc()
    if started is not None:
        TASK_LATENCY.labels(task.name).observe(time.perf_counter() - started)
