""""Verify now": checking the whole ledger as a task, with progress, one at a time.

A ledger of a million events takes most of a minute to verify, longer than a web request
may run, so the console asks for a verification and a worker runs it (in the request
itself when tasks run in-process). Progress (events checked) goes to the cache, which
the web processes share with the workers whenever Redis is configured. The outcome is
kept on the LedgerVerification row and written to the access log as an operator action:
who asked, when, the counts or the first finding (pseudonymous ids, codes, positions).
"""

from __future__ import annotations

from datetime import timedelta

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from cdp.core.broker import enqueue, task_named
from consent.events import operator_action_event
from consent.ledger import CheckpointInvalid, ledger_verify
from consent.models import ConsentEvent, LedgerVerification, VerificationStatus
from consent.services.checkpoints import checkpoint_latest, checkpoint_load

LEDGER_VERIFIED = "ledger_verified"
# Past the task's time limit a verification still marked active was lost with its worker.
STALE_AFTER = timedelta(hours=2)
LEDGER_VERIFICATION_TASK = "consent.ledger_verification_run"  # consent.tasks.ledger_verification_run
PROGRESS_EVERY = 20_000


def ledger_verification_request(*, actor: str) -> tuple[LedgerVerification, bool]:
    """Queue a verification; (the verification, whether it is new). While one is queued
    or running, asking again returns that one instead of starting a second."""
    _fail_stale()
    try:
        with transaction.atomic():
            verification = LedgerVerification.objects.create(requested_by=actor[:120])
            transaction.on_commit(lambda: _enqueue(verification.id))
    except IntegrityError:
        return LedgerVerification.objects.get(active=True), False
    verification.refresh_from_db()  # in-process tasks have already run it
    return verification, True


def _enqueue(verification_id: int) -> None:
    enqueue(task_named(LEDGER_VERIFICATION_TASK), verification_id)


def _fail_stale() -> None:
    LedgerVerification.objects.filter(active=True, requested_at__lt=timezone.now() - STALE_AFTER).update(
        status=VerificationStatus.FAILED, active=None, finished_at=timezone.now(),
        detail={"intact": False, "code": "verification_lost",
                "message": "The verification did not finish (its worker stopped); run it again."})


def ledger_verification_run(*, verification_id: int) -> LedgerVerification | None:
    """Run a queued verification (again, if its worker died mid-run); None if it is done."""
    updated = LedgerVerification.objects.filter(id=verification_id, active=True).update(
        status=VerificationStatus.RUNNING, started_at=timezone.now(), events_total=ConsentEvent.objects.count())
    if not updated:
        return None
    detail = ledger_verification_outcome(on_progress=lambda events: cache.set(
        progress_key(verification_id), events, timeout=int(STALE_AFTER.total_seconds())))
    verification = LedgerVerification.objects.get(id=verification_id)
    with transaction.atomic():
        verification.status = VerificationStatus.PASSED if detail.get("intact") else VerificationStatus.FAILED
        verification.detail, verification.finished_at, verification.active = detail, timezone.now(), None
        verification.save(update_fields=["status", "detail", "finished_at", "active"])
        operator_action_event(actor=verification.requested_by, action=LEDGER_VERIFIED, detail=detail)
    cache.delete(progress_key(verification_id))
    return verification


def ledger_verification_outcome(*, on_progress=None) -> dict:
    """Verify the whole ledger, the policy's other inputs and the newest (signed) checkpoint
    file, if any: the counts, or the first finding."""
    checkpoint = None
    path = checkpoint_latest()
    try:
        checkpoint = checkpoint_load(path) if path else None
    except (OSError, UnicodeDecodeError, CheckpointInvalid) as error:
        message = str(error) if isinstance(error, CheckpointInvalid) else \
            "The newest ledger checkpoint file cannot be read."
        return {"intact": False, "code": "checkpoint_invalid", "message": message}
    report = ledger_verify(checkpoint=checkpoint, chunk_size=PROGRESS_EVERY, on_progress=on_progress)
    detail = {"intact": report.intact, "events": report.events, "subjects": report.subjects,
              "states": report.states, "checkpoint_subjects": report.checkpoint_subjects,
              "checkpoint": checkpoint["created_at"] if checkpoint else None,
              "checkpoint_signed": checkpoint["signed"] if checkpoint else None,
              "seconds": round(report.seconds, 3)}
    if report.finding is not None:
        finding = report.finding
        detail.update(code=finding.code, message=finding.message, position=finding.position,
                      event_id=finding.event_id, subject=finding.profile_id)
    return detail


def progress_key(verification_id: int) -> str:
    return f"consent:ledger-verification:{verification_id}:events-checked"


def ledger_verification_progress(verification: LedgerVerification) -> int | None:
    """Events checked so far by a running verification (None when unknown)."""
    return cache.get(progress_key(verification.id))
