"""Queuing from a request with the broker away: no error, no wait, work left for the sweep."""

from __future__ import annotations

import socket
import time

import pytest

from cdp.core import cache as cache_module
from cdp.core.broker import broker_reachable, enqueue


@pytest.fixture
def broker_away(settings, monkeypatch):
    from cdp.celery import app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(cache_module, "_breakers", {})
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)  # Celery's conf.broker_url prefers it
    settings.TASKS_IN_PROCESS = False
    saved_url, saved_eager = app.conf.broker_url, app.conf.task_always_eager
    settings.CELERY_BROKER_URL = app.conf.broker_url = f"redis://127.0.0.1:{port}/0"
    app.conf.task_always_eager = False
    app._pool = None
    app.amqp._producer_pool = None
    yield app
    app.conf.broker_url, app.conf.task_always_eager = saved_url, saved_eager
    app._pool = None
    app.amqp._producer_pool = None


def test_enqueue_with_the_broker_away_returns_false_at_once(broker_away):
    from cdp.webhooks.tasks import webhooks_relay

    started = time.monotonic()
    assert enqueue(webhooks_relay) is False
    assert enqueue(webhooks_relay) is False  # the breaker is open: not even a connection attempt
    assert time.monotonic() - started < 2
    assert broker_reachable(timeout=0.5) is False

