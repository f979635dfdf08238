"""Outages, as an operator's bad night would go (issue 23): every scenario reports what
integrators saw (answers by status code, requests accepted during the outage), records
lost and duplicated (0) and the time to recover. bench/faults.py prints the same."""

from __future__ import annotations

import harness
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]


@pytest.fixture
def served(product):
    product.serve(workers=2)
    yield product
    product.stop()
    product.processes.clear()


def test_redis_down_ingestion_and_reads_keep_answering_and_outbox_work_drains_after(product, monkeypatch):
    # DEBUG on only so that the test's receiver may be plain http (production refuses it).
    monkeypatch.setitem(product.env, "DEBUG", "true")
    served = product
    served.serve(workers=2)
    served.work()  # a worker with beat: the drain after Redis returns
    report = harness.redis_outage(served)
    print(report.line(), report.notes)
    assert set(report.outage_statuses) == {200}, report.notes["by request"]
    assert report.accepted_during_outage == 4 * 4
    status, failed = report.notes["readyz during outage"]
    assert status == 503 and set(failed) == {"broker", "cache"}
    assert report.notes["slowest request during outage (s)"] < 1.0  # no request waits on a dead socket
    assert report.lost == 0 and report.duplicated == 0
    assert report.recovery_seconds is not None  # drained, with no restart of anything but Redis


def test_postgres_restart_answers_503_with_retry_after_and_loses_nothing(served):
    report = harness.postgres_restart(served)
    print(report.line())
    assert 500 not in report.statuses, report.statuses
    assert report.outage_statuses[503] > 0, report.outage_statuses  # the outage was seen, and said so
    assert set(report.statuses) <= {200, 503}, report.statuses
    assert report.lost == 0 and report.duplicated == 0
    assert report.notes["lookup during outage"] == (503, "2", "unavailable")
    status, retry_after, body = report.notes["segment during outage"]
    assert (status, body["success"], body["code"]) == (503, False, "unavailable") and retry_after == "2"


def test_runserver_holds_a_bounded_number_of_database_connections(product):
    product.runserver()
    try:
        report = harness.runserver_connections(product, requests=150)
    finally:
        product.stop()
        product.processes.clear()
    print(report.line(), report.notes)
    assert report.statuses == {200: 150}, report.statuses
    assert report.notes["peak connections"] <= 10  # DATABASE_POOL_MAX_SIZE


def test_broker_away_during_a_pipeline_run_the_run_still_finishes(product, monkeypatch):
    monkeypatch.setitem(product.env, "TESSERA_PIPELINE_STALL_SECONDS", "6")
    monkeypatch.setitem(product.env, "TESSERA_PIPELINE_WATCHDOG_SECONDS", "2")
    product.work()
    try:
        report = harness.broker_away_during_pipeline(product)
    finally:
        product.stop()
        product.processes.clear()
    print(report.line(), report.notes)
    assert report.notes["status"] == "succeeded", report.notes
    assert report.notes["run_pipeline exit"] == 0, report.notes
