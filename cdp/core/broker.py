"""Queuing work from a request without depending on the broker.

What a request hands to the broker is always written to the database first (outbox rows,
pending DSRs, queued verifications), and a periodic sweep finds it there again. So a
broker that does not answer must neither fail nor hold up the request: `enqueue` tries
once, without Celery's publish retries and with short socket timeouts (settings), and
after a failure does not try again for a few seconds (the circuit breaker shared by the
process). The work then waits in the database for the sweep (beat's schedule; with tasks
in-process, `cdp.core.outbox`'s sweep after responses), and the next publish after the
broker returns goes through: no restart.
"""

from __future__ import annotations

import logging

# Celery's current app is the project's (cdp/__init__.py creates it before any cdp.core
# module loads): named so, this package depends on no module above it.
from celery import current_app as app
from django.conf import settings
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from cdp.core.cache import breaker

logger = logging.getLogger(__name__)

# What publishing raises when the broker (or Redis as result backend) does not answer;
# kombu turns socket errors into its OperationalError.
BROKER_UNREACHABLE = (KombuOperationalError, RedisConnectionError, RedisTimeoutError)
BROKER = "broker"


def enqueue(task, *args, **kwargs) -> bool:
    """Queue `task(*args, **kwargs)` now if the broker answers; False when it did not
    (logged; the caller's sweep picks the work up later). With tasks in-process it runs
    here, as `task.delay` would."""
    return enqueue_in(task, None, *args, **kwargs)


def enqueue_in(task, countdown: float | None, *args, **kwargs) -> bool:
    """`enqueue`, for a worker to run `countdown` seconds from now (in-process: at once)."""
    if settings.TASKS_IN_PROCESS or task.app.conf.task_always_eager:
        task.delay(*args, **kwargs)
        return True
    state = breaker(BROKER)
    if not state.closed():
        logger.info("task_not_queued", extra={"task": task.name, "reason": "broker_unreachable"})
        return False
    timeout = settings.TESSERA_SERVICE_TIMEOUT_SECONDS
    try:
        with task.app.pool.acquire(block=True, timeout=timeout) as connection:
            _connect(connection, timeout)
            # Nothing in a request reads a task's result: not subscribing to it keeps the
            # result backend (Redis too) out of the request as well.
            task.apply_async(args, kwargs, connection=connection, retry=False, ignore_result=True,
                             countdown=countdown)
    except (*BROKER_UNREACHABLE, OSError):
        state.failed()
        logger.warning("task_not_queued", extra={"task": task.name, "reason": "broker_unreachable"})
        return False
    state.succeeded()
    return True


def task_named(name: str):
    """The registered task called `name`. A service that queues work names its task rather
    than importing the app's tasks module: tasks wrap services, so that import would be a
    cycle (tasks → services → tasks)."""
    if name not in app.tasks:
        # Outside a worker the tasks modules are imported on demand: autodiscover them now.
        app.loader.import_default_modules()
    return app.tasks[name]


def broker_reachable(timeout: float) -> bool:
    """Whether the broker accepts a connection now (for /readyz); also resets the breaker."""
    state = breaker(BROKER)
    try:
        with app.connection_for_write(url=settings.CELERY_BROKER_URL) as connection:
            _connect(connection, timeout)
    except Exception:  # any failure to connect means "not reachable" here
        state.failed()
        return False
    state.succeeded()
    return True


def _connect(connection, timeout: float) -> None:
    # One immediate retry at most: kombu's default (retry for the whole connect timeout,
    # two seconds apart) is for workers, not for a request.
    connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
