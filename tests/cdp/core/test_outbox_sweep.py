"""With tasks in-process there is no beat: the periodic sweeps run after responses, at
most once per TESSERA_IN_PROCESS_SWEEP_SECONDS in a process."""

from __future__ import annotations

import time

import pytest

from cdp.core import outbox

pytestmark = pytest.mark.django_db


@pytest.fixture
def sweeps(settings, monkeypatch):
    ran: list[float] = []
    monkeypatch.setattr(outbox, "_sweeps", [lambda: ran.append(time.monotonic())])
    monkeypatch.setattr(outbox, "_last_sweep", {"at": time.monotonic()})
    settings.TASKS_IN_PROCESS = True
    settings.TESSERA_IN_PROCESS_SWEEP_SECONDS = 1
    return ran


def test_sweeps_run_after_a_response_once_their_interval_has_passed(client, sweeps):
    client.get("/healthz")
    assert sweeps == []  # not yet due
    time.sleep(1.05)
    client.get("/healthz")
    client.get("/healthz")
    assert len(sweeps) == 1


def test_no_in_process_sweep_when_a_broker_and_beat_run_them(client, sweeps, settings):
    settings.TASKS_IN_PROCESS = False
    time.sleep(1.05)
    client.get("/healthz")
    assert sweeps == []


def test_the_relay_and_the_dsr_sweep_are_registered():
    from cdp.webhooks.tasks import relay_sweep
    from consent.services.dsr import dsr_process_pending

    assert relay_sweep in outbox._sweeps and dsr_process_pending in outbox._sweeps
