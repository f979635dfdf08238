""""Verify now" as a task: one at a time, progress, outcome on the row and in the access log."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from consent.ledger import ledger_verify
from consent.models import AccessLog, ChainHead, LedgerVerification
from consent.services import consent_set
from consent.services.verification import (
    ledger_verification_progress,
    ledger_verification_request,
    ledger_verification_run,
    progress_key,
)

# Transactional: the request queues the task on commit, as in production (in-process here).
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ledger():
    people = [uuid.uuid4() for _ in range(3)]
    for person in people:
        consent_set(profile_id=person, purpose="analytics", granted=True)
        consent_set(profile_id=person, purpose="marketing", granted=True)
    return people


def test_a_verification_runs_and_records_its_outcome(ledger):
    verification, started = ledger_verification_request(actor="staff:7")
    assert started  # tasks run in-process here: it has already finished
    assert verification.status == "passed" and verification.active is None
    assert verification.detail["intact"] is True and verification.detail["events"] == 6
    assert verification.events_total == 6 and verification.finished_at >= verification.started_at
    entry = AccessLog.objects.get(purpose="ledger_verified")
    assert entry.actor == "staff:7" and entry.detail == verification.detail


def test_a_broken_ledger_fails_the_verification_with_the_first_finding(ledger):
    ChainHead.objects.filter(profile_id=ledger[0]).update(mac="0" * 64)
    verification, _ = ledger_verification_request(actor="staff:7")
    assert verification.status == "failed"
    assert verification.detail["code"] == "head_forged" and verification.detail["subject"] == str(ledger[0])


def test_only_one_verification_at_a_time(ledger):
    running = LedgerVerification.objects.create(requested_by="staff:1")  # queued, its worker busy
    again, started = ledger_verification_request(actor="staff:2")
    assert not started and again.id == running.id
    assert LedgerVerification.objects.count() == 1
    ledger_verification_run(verification_id=running.id)
    assert ledger_verification_run(verification_id=running.id) is None  # a redelivered task does nothing
    assert AccessLog.objects.filter(purpose="ledger_verified").count() == 1
    _, started = ledger_verification_request(actor="staff:2")
    assert started


def test_a_verification_lost_with_its_worker_does_not_block_the_next(ledger):
    lost = LedgerVerification.objects.create(requested_by="staff:1")
    LedgerVerification.objects.filter(id=lost.id).update(requested_at=timezone.now() - timedelta(hours=3))
    fresh, started = ledger_verification_request(actor="staff:2")
    assert started and fresh.status == "passed"
    lost.refresh_from_db()
    assert lost.status == "failed" and lost.active is None and lost.detail["code"] == "verification_lost"


def test_progress_is_reported_while_verifying(ledger):
    heard: list[int] = []
    report = ledger_verify(chunk_size=2, on_progress=heard.append)
    assert report.intact and heard == [2, 4, 6]
    verification = LedgerVerification.objects.create(requested_by="staff:1")
    cache.set(progress_key(verification.id), 4)
    assert ledger_verification_progress(verification) == 4
