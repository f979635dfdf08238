"""Data-subject requests: access, portability, erasure, rectification.

The workflow lives here; the data work is done by the handlers other apps register
(consent.registry: RESOLVE, EXPORT, ERASE, RECTIFY). A request is resolved to a profile
when it arrives (identifiers are never stored, only their kinds), gets a due date 30
days out, runs at once unless compliance officers require their approval for
its type, and keeps an append-only audit trail.

Personal values a request carries (rectification changes) or produces (the access
export) are sealed with AES-GCM under the request's own data key, wrapped by the master
key; the key is deleted once the values are no longer needed (after a rectification
runs, when an erasure of the person runs, or by retention), which shreds them.
Reading a sealed export is logged in the access log. Logs nothing personal.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from uuid import UUID

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import OperationalError, transaction
from django.utils import timezone

from cdp.core import crypto_primitives as crypto
from cdp.core.broker import enqueue, task_named
from cdp.core.outbox import outbox_put
from consent import registry
from consent.errors import ConsentError, ConsentErrorCode
from consent.events import (
    DSR_APPROVAL_RULE_SET,
    configuration_changed_event,
    operator_action_event,
)
from consent.models import (
    AccessLog,
    ConsentEvent,
    DataSubjectRequest,
    DsrApprovalRule,
    DsrAuditEntry,
    DsrStatus,
    DsrType,
    ServedNotice,
)
from consent.policy import effective_states
from consent.receipts import receipts_for_events
from consent.selectors import access_log_as_dict, consent_decisions, consent_event_as_dict
from consent.services.access import Accessor, personal_data_read

logger = logging.getLogger(__name__)

DUE_DAYS = 30
DSR_PROCESS_TASK = "consent.dsr_process"  # consent.tasks.dsr_process
MAX_EXTENSION_DAYS = 60  # GDPR art. 12(3): two further months where necessary
_SEAL_CHANGES = "dsr.changes"
_SEAL_RESULT = "dsr.result"


class DsrNotFound(ConsentError):
    status = 404
    code = ConsentErrorCode.DSR_UNKNOWN.value
    title = "Not found"


# --- sealing -------------------------------------------------------------------------------------------


def _keyring() -> crypto.KeyRing:
    return crypto.KeyRing(list(settings.TESSERA_MASTER_KEYS))


def _seal(request: DataSubjectRequest, field: str, value) -> bytes:
    ring = _keyring()
    if request.sealed_key is None:
        request.sealed_kek_id, request.sealed_key = ring.wrap(crypto.new_data_key(), context=f"dsr:{request.id}")
    dek = ring.unwrap(request.sealed_kek_id, bytes(request.sealed_key), context=f"dsr:{request.id}")
    plaintext = json.dumps(value, cls=DjangoJSONEncoder, separators=(",", ":")).encode()
    return crypto.encrypt_field(dek, plaintext, aad=crypto.field_aad(str(request.id), field))


def _unseal(request: DataSubjectRequest, field: str, ciphertext) -> object | None:
    if request.sealed_key is None or ciphertext is None:
        return None
    dek = _keyring().unwrap(request.sealed_kek_id, bytes(request.sealed_key), context=f"dsr:{request.id}")
    return json.loads(crypto.decrypt_field(dek, bytes(ciphertext), aad=crypto.field_aad(str(request.id), field)))


def _shred(request: DataSubjectRequest, *, keep_result: bool = False) -> None:
    request.sealed_changes = None
    if not keep_result:
        request.sealed_key, request.sealed_kek_id, request.sealed_result = None, "", None


# --- the workflow --------------------------------------------------------------------------------------


def _audit(request: DataSubjectRequest, *, actor: str, action: str, detail: dict | None = None) -> None:
    DsrAuditEntry.objects.create(request=request, at=timezone.now(), actor=actor[:120], action=action,
                                 detail=detail or {})


def dsr_approval_required(request_type: str) -> bool:
    return DsrApprovalRule.objects.filter(type=request_type, requires_approval=True).exists()


@transaction.atomic
def dsr_approval_rule_as_dict(rule: DsrApprovalRule | None) -> dict | None:
    return None if rule is None else {"type": rule.type, "requires_approval": rule.requires_approval}


@transaction.atomic
def dsr_approval_rule_set(*, request_type: str, requires_approval: bool, actor: str) -> DsrApprovalRule:
    """A compliance officer decides whether a request type waits for approval; logged with before and after."""
    if request_type not in DsrType.values:
        raise ConsentError("type must be access, portability, erasure or rectification.",
                           code=ConsentErrorCode.DSR_TYPE_UNKNOWN)
    before = dsr_approval_rule_as_dict(DsrApprovalRule.objects.select_for_update().filter(type=request_type).first())
    rule, _ = DsrApprovalRule.objects.update_or_create(type=request_type,
                                                       defaults={"requires_approval": bool(requires_approval)})
    configuration_changed_event(actor=actor, action=DSR_APPROVAL_RULE_SET, before=before,
                                after=dsr_approval_rule_as_dict(rule))
    return rule


@transaction.atomic
def dsr_submit(*, request_type: str, channel: str, actor: str, identifiers: dict | None = None,
               source: str | None = None, profile_id=None, changes: dict | None = None,
               filed_by_key: str = "", visible: Callable[[list], set] | None = None) -> DataSubjectRequest:
    """Receive a request from a verified requester (an API key holder, a signed-in person).

    Resolves the person now; schedules processing after commit unless approval is required.
    `visible` is the filer's boundary (the API passes its key's): a person it leaves out is
    treated exactly as an unknown one (`found: false`, nothing exported or changed).
    `filed_by_key` owns the request (dsr_get).
    """
    if request_type not in DsrType.values:
        raise ConsentError("type must be access, portability, erasure or rectification.",
                           code=ConsentErrorCode.DSR_TYPE_UNKNOWN)
    changes = changes or {}
    if request_type == DsrType.RECTIFICATION and not (changes.get("attributes") or changes.get("identifiers")):
        raise ConsentError("A rectification names the changes: attributes and/or identifiers.",
                           code=ConsentErrorCode.DSR_CHANGES_REQUIRED)
    if profile_id is None and identifiers:
        try:
            found = [pid for result in registry.run(registry.RESOLVE, identifiers=identifiers, source=source)
                     for pid in result]
        except ValueError as error:
            raise ConsentError("An identifier is not valid.", code=str(error) or "invalid_identifier") from None
        profile_id = found[0] if found else None
    if profile_id is not None and visible is not None and not visible([profile_id]):
        profile_id = None
    now = timezone.now()
    request = DataSubjectRequest(type=request_type, channel=channel, requested_by=actor[:120],
                                 filed_by_key=filed_by_key,
                                 profile_id=UUID(str(profile_id)) if profile_id else None,
                                 identifier_kinds=sorted(set(identifiers or {}) - {"country"}),
                                 received_at=now, due_at=now + timedelta(days=DUE_DAYS))
    if request_type == DsrType.RECTIFICATION:
        request.sealed_changes = _seal(request, _SEAL_CHANGES, {"attributes": changes.get("attributes") or {},
                                                                "identifiers": changes.get("identifiers") or {}})
    approval = dsr_approval_required(request_type)
    request.status = DsrStatus.AWAITING_APPROVAL if approval else DsrStatus.RECEIVED
    request.save(force_insert=True)
    _audit(request, actor=actor, action="received",
           detail={"channel": channel, "found": request.profile_id is not None, "kinds": request.identifier_kinds})
    if not approval:
        _schedule(request.id)
    return request


def _schedule(request_id) -> None:
    # robust: the request is committed either way, and the pending sweep re-dispatches it.
    transaction.on_commit(lambda: enqueue(task_named(DSR_PROCESS_TASK), str(request_id)), robust=True)


@transaction.atomic
def dsr_approve(*, request_id, actor: str) -> DataSubjectRequest:
    request = _locked(request_id)
    if request.status != DsrStatus.AWAITING_APPROVAL:
        raise ConsentError("Only a request awaiting approval can be approved.", code=ConsentErrorCode.DSR_NOT_PENDING,
                           status=409)
    request.status = DsrStatus.RECEIVED
    request.save(update_fields=["status"])
    _audit(request, actor=actor, action="approved")
    operator_action_event(actor=actor, action="dsr_approved", profile_id=request.profile_id,
                          detail={"request_id": str(request.id), "type": request.type})
    _schedule(request.id)
    return request


@transaction.atomic
def dsr_reject(*, request_id, actor: str, reason: str) -> DataSubjectRequest:
    """Reject with a reason the person will read (it must not hold personal data)."""
    request = _locked(request_id)
    if request.status not in (DsrStatus.RECEIVED, DsrStatus.AWAITING_APPROVAL):
        raise ConsentError("Only a request not yet processed can be rejected.", code=ConsentErrorCode.DSR_NOT_PENDING,
                           status=409)
    request.status, request.reason, request.completed_at = DsrStatus.REJECTED, reason[:500], timezone.now()
    _shred(request)
    request.save(update_fields=["status", "reason", "completed_at", "sealed_changes", "sealed_key",
                                "sealed_kek_id", "sealed_result"])
    _audit(request, actor=actor, action="rejected", detail={"reason": reason[:500]})
    operator_action_event(actor=actor, action="dsr_rejected", profile_id=request.profile_id,
                          detail={"request_id": str(request.id), "type": request.type})
    _outbox_completed(request)
    return request


@transaction.atomic
def dsr_extend(*, request_id, actor: str, days: int, reason: str) -> DataSubjectRequest:
    request = _locked(request_id)
    if request.status in (DsrStatus.COMPLETED, DsrStatus.REJECTED, DsrStatus.FAILED):
        raise ConsentError("A finished request cannot be extended.", code=ConsentErrorCode.DSR_NOT_PENDING, status=409)
    if request.extended:
        raise ConsentError("This request was already extended once.", code=ConsentErrorCode.DSR_ALREADY_EXTENDED,
                           status=409)
    if not 1 <= days <= MAX_EXTENSION_DAYS:
        raise ConsentError(f"An extension is 1 to {MAX_EXTENSION_DAYS} days.", code="invalid_extension")
    request.due_at += timedelta(days=days)
    request.extended = True
    request.save(update_fields=["due_at", "extended"])
    _audit(request, actor=actor, action="extended", detail={"days": days, "reason": reason[:500]})
    operator_action_event(actor=actor, action="dsr_extended", profile_id=request.profile_id,
                          detail={"request_id": str(request.id), "days": days})
    return request


def _locked(request_id) -> DataSubjectRequest:
    request = DataSubjectRequest.objects.select_for_update().filter(pk=request_id).first()
    if request is None:
        raise DsrNotFound("No request has this id.")
    return request


def dsr_process(*, request_id) -> DataSubjectRequest | None:
    """Carry out a received request; safe to run twice (a finished request is left alone).

    A transient database error propagates (the task retries; the request stays
    `in_progress`, which a retry resumes); any other error marks the request `failed`.
    """
    with transaction.atomic():
        request = _locked(request_id)
        if request.status not in (DsrStatus.RECEIVED, DsrStatus.IN_PROGRESS):
            return request
        request.status = DsrStatus.IN_PROGRESS
        request.save(update_fields=["status"])
        _audit(request, actor="system", action="started")
    try:
        with transaction.atomic():
            request = _locked(request_id)
            summary = _run(request)
            request.status, request.completed_at, request.summary = DsrStatus.COMPLETED, timezone.now(), summary
            request.save()
            _audit(request, actor="system", action="completed", detail=_codes_only(summary))
            _outbox_completed(request)
    except OperationalError:
        raise
    except Exception as error:  # recorded, never left "in progress" for ever
        logger.exception("dsr_failed", extra={"request_id": str(request_id), "error": type(error).__name__})
        with transaction.atomic():
            request = _locked(request_id)
            request.status, request.reason = DsrStatus.FAILED, f"Processing failed ({type(error).__name__})."
            request.save(update_fields=["status", "reason"])
            _audit(request, actor="system", action="failed", detail={"error": type(error).__name__})
            _outbox_completed(request)
    return request


def dsr_process_pending(*, stale_after: timedelta = timedelta(minutes=10)) -> int:
    """Re-dispatch requests that were received or started but not finished (a lost task)."""
    cutoff = timezone.now() - stale_after
    ids = list(DataSubjectRequest.objects.filter(status__in=[DsrStatus.RECEIVED, DsrStatus.IN_PROGRESS],
                                                 received_at__lt=cutoff).values_list("id", flat=True)[:500])
    for request_id in ids:
        task_named(DSR_PROCESS_TASK).delay(str(request_id))
    return len(ids)


def _codes_only(summary: dict | None) -> dict:
    return {k: v for k, v in (summary or {}).items() if isinstance(v, (int, bool)) or k == "found"}


def _outbox_completed(request: DataSubjectRequest) -> None:
    payload = {"request_id": str(request.id), "type": request.type, "status": request.status}
    if request.profile_id:
        payload["profile_id"] = str(request.profile_id)
    outbox_put(topic="dsr.completed", payload=payload)


def _run(request: DataSubjectRequest) -> dict:
    if request.profile_id is None or not _is_live(request.profile_id):
        _shred(request)
        return {"found": False}
    if request.type in (DsrType.ACCESS, DsrType.PORTABILITY):
        document = dsr_export_build(profile_id=request.profile_id)
        request.sealed_result = _seal(request, _SEAL_RESULT, document)
        return {"found": True, "sections": sorted(document["data"].keys())}
    if request.type == DsrType.ERASURE:
        summary = {"found": True}
        for result in registry.run(registry.ERASE, profile_id=request.profile_id):
            for name, count in (result or {}).items():
                summary[name] = summary.get(name, 0) + count if isinstance(count, int) else count
        summary["dsr_results_shredded"] = dsr_results_shred(profile_id=request.profile_id, keep=request.id)
        summary["consent_ledger"] = "kept"
        _shred(request)
        return summary
    changes = _unseal(request, _SEAL_CHANGES, request.sealed_changes) or {}
    summary = {"found": True}
    for result in registry.run(registry.RECTIFY, profile_id=request.profile_id,
                               attributes=changes.get("attributes") or {},
                               identifiers=changes.get("identifiers") or {}):
        for name, count in (result or {}).items():
            summary[name] = summary.get(name, 0) + count
    _shred(request)  # the new values now live (encrypted) with the profile; no copy stays here
    return summary


def _is_live(profile_id) -> bool:
    if not registry.has_handlers(registry.CANONICAL):
        return True
    return registry.run(registry.CANONICAL, profile_id=profile_id)[0]["status"] == "active"


def dsr_results_shred(*, profile_id, keep=None) -> int:
    """Erasure: shred every sealed export and pending change of this person's requests."""
    requests = DataSubjectRequest.objects.filter(profile_id=profile_id).exclude(sealed_key=None)
    if keep is not None:
        requests = requests.exclude(id=keep)
    return requests.update(sealed_key=None, sealed_kek_id="", sealed_result=None, sealed_changes=None)


def dsr_results_purge(*, older_than) -> int:
    """Retention: shred sealed exports of requests completed before a time."""
    return DataSubjectRequest.objects.filter(completed_at__lt=older_than).exclude(sealed_key=None).update(
        sealed_key=None, sealed_kek_id="", sealed_result=None, sealed_changes=None)


# --- the access export ----------------------------------------------------------------------------------


def dsr_export_build(*, profile_id) -> dict:
    """One JSON document with everything held about the person.

    The other apps contribute through EXPORT handlers (profile, identities, records with
    lineage, events, segments, recommendations...); consent adds the consent history
    with receipts, the current states, served notices, DSR history and who accessed
    the person's data.
    """
    pid = UUID(str(profile_id))
    alias_ids = [UUID(str(a)) for result in registry.run(registry.ALIASES, profile_id=pid) for a in result]
    data: dict = {}
    for contribution in registry.run(registry.EXPORT, profile_id=pid, aliases=alias_ids):
        data.update(contribution or {})
    data.update(_consent_sections(pid, alias_ids))
    return {"format": "tessera-access-export/1", "generated_at": timezone.now().isoformat(),
            "profile_id": str(pid), "data": data}


def _consent_sections(pid: UUID, alias_ids: list[UUID]) -> dict:
    subjects = [pid, *alias_ids]
    events = list(ConsentEvent.objects.filter(profile_id__in=subjects).order_by("profile_id", "seq"))
    words = consent_decisions(events)  # declined (a first refusal) or withdrawn (after a grant)
    return {
        "consents": [{k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in s.items()}
                     for s in effective_states(pid)],
        "consent_history": [{**consent_event_as_dict(e), "decision": words[e.id]} for e in events],
        "consent_receipts": receipts_for_events(events),
        "served_notices": [
            {"purpose": n.purpose, "notice_version": n.notice_version, "language": n.language,
             "channel": n.channel, "served_at": n.served_at.isoformat()}
            for n in ServedNotice.objects.filter(profile_id__in=subjects).order_by("served_at")],
        "data_subject_requests": [dsr_as_dict(r, with_result=False) for r in
                                  DataSubjectRequest.objects.filter(profile_id__in=subjects).order_by("received_at")],
        "access_log": [access_log_as_dict(entry) for entry in
                       AccessLog.objects.filter(profile_id__in=subjects).order_by("at", "id")],
    }


# --- reading requests ------------------------------------------------------------------------------------


def dsr_get(*, request_id, filed_by_key: str | None = None) -> DataSubjectRequest:
    """The request; with `filed_by_key`, only if that key filed it (else unknown, so a
    request's existence does not leak to other keys)."""
    request = DataSubjectRequest.objects.filter(pk=request_id).first()
    if request is None or (filed_by_key is not None and request.filed_by_key != filed_by_key):
        raise DsrNotFound("No request has this id.")
    return request


def dsr_as_dict(request: DataSubjectRequest, *, with_result: bool = True, reader: str | None = None,
                with_export: bool = True) -> dict:
    """The contract's shape; the export is unsealed (and the read logged) only on request.

    Without `with_export` an access or portability request shows its status alone (no
    `result`): the API gives the export only to keys with `dsr:export`.
    """
    body = {"id": str(request.id), "type": request.type, "status": request.status,
            "due_at": request.due_at.isoformat(), "received_at": request.received_at.isoformat(),
            "extended": request.extended,
            "completed_at": request.completed_at.isoformat() if request.completed_at else None}
    if request.reason:
        body["reason"] = request.reason
    exports = request.type in (DsrType.ACCESS, DsrType.PORTABILITY)
    if with_result and request.status == DsrStatus.COMPLETED and (with_export or not exports):
        body["result"] = dsr_result(request, reader=reader or "unknown")
    return body


def dsr_result(request: DataSubjectRequest, *, reader: str) -> dict:
    summary = request.summary or {}
    if not summary.get("found"):
        return {"found": False}
    if request.type in (DsrType.ACCESS, DsrType.PORTABILITY):
        document = _unseal(request, _SEAL_RESULT, request.sealed_result)
        if document is None:
            return {"found": True, "expired": True}  # shredded by retention or a later erasure
        personal_data_read(accessor=Accessor(actor=reader), profile_ids=[request.profile_id],
                           fields=document.get("data", {}).keys(), purpose=f"dsr_{request.type}",
                           detail={"request_id": str(request.id)})
        return document
    return summary


def dsr_audit_trail(*, request_id) -> list[dict]:
    return [{"at": e.at.isoformat(), "actor": e.actor, "action": e.action, "detail": e.detail}
            for e in DsrAuditEntry.objects.filter(request_id=request_id).order_by("at", "id")]
