"""Reading consent data: states, the ledger, receipts, the access log, data-subject
requests and ledger verifications. Pseudonymous only.

Part of consent's public interface (see consent/__init__.py): the pages in `web` read
consent through these functions, never its tables. Readers that hand a person's consent
data to someone take the `accessor` and write the access-log row themselves
(consent.services.access), so no caller can forget it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from uuid import UUID

from django.db.models import Q, QuerySet
from django.utils import timezone

from cdp.core.http.pagination import Page, paginate
from consent import registry
from consent.errors import ConsentError, ConsentErrorCode, ProfileErased, ProfileMerged, ProfileUnknown
from consent.events import (
    CONFIGURATION_ACTIONS,
    DSR_APPROVAL_RULE_SET,
    NOTICE_PUBLISHED,
    PURPOSE_BASIS_SET,
    RETENTION_RULE_SET,
    operator_action_event,
)
from consent.ledger import genesis_link
from consent.models import (
    AccessKind,
    AccessLog,
    ChainHead,
    Channel,
    ConsentEvent,
    ConsentState,
    DataSubjectRequest,
    DsrStatus,
    DsrType,
    LedgerCheckpoint,
    LedgerVerification,
)
from consent.notices import DEFAULT_TEXTS, notice_current, notice_text  # noqa: F401  (public reads of the notices)
from consent.policy import consent_decisions, effective_states  # noqa: F401  (public: the decisions' words)
from consent.purposes import PURPOSES
from consent.receipts import controller_details, receipts_for_events  # noqa: F401  (public: the controller)
from consent.services.access import Accessor, personal_data_read, subject_data_read
from consent.services.verification import LEDGER_VERIFIED, ledger_verification_progress

OPEN_DSR = (DsrStatus.RECEIVED, DsrStatus.AWAITING_APPROVAL, DsrStatus.IN_PROGRESS)
# The names people read for consent's codes (the console's labels start from these).
CHANNEL_NAMES = dict(Channel.choices)
DSR_TYPE_NAMES = dict(DsrType.choices)
DSR_STATUS_NAMES = dict(DsrStatus.choices)
ACCESS_KIND_NAMES = dict(AccessKind.choices)
PURPOSE_TITLES = {purpose: title for purpose, (title, _body) in DEFAULT_TEXTS.items()}
CONFIGURATION_TITLES = {PURPOSE_BASIS_SET: "Legal basis", NOTICE_PUBLISHED: "Notice published",
                        RETENTION_RULE_SET: "Retention rule",
                        DSR_APPROVAL_RULE_SET: "Approval of data-subject requests"}


def _iso(value) -> str | None:
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def profile_canonical(profile_id, *, follow_merge: bool = False) -> UUID:
    """The profile id consent work applies to; the right error for unknown/erased/merged ids.

    Without a registered CANONICAL handler (consent alone) every id is taken as active.
    """
    pid = UUID(str(profile_id))
    if not registry.has_handlers(registry.CANONICAL):
        return pid
    answer = registry.run(registry.CANONICAL, profile_id=pid)[0]
    if answer["status"] == "unknown":
        raise ProfileUnknown("No profile has this id.")
    if answer["status"] == "erased":
        raise ProfileErased("The profile was erased.")
    if answer["status"] == "merged":
        if follow_merge:
            return UUID(str(answer["profile_id"]))
        raise ProfileMerged("The profile was merged into another.",
                            extra={"merged_into": str(answer["profile_id"])})
    return pid


def consent_state_list(*, profile_id, accessor: Accessor) -> list[dict]:
    """Every purpose for one person, as CONTRACT.md shapes it (plus status and expiry).

    Honours the accessor's GPC signal first (the list shows its opt-out) and logs the read.
    """
    subject_data_read(accessor=accessor, profile_id=profile_id, fields=["consents"], purpose="consent_read")
    return [{"purpose": s["purpose"], "granted": s["granted"], "notice_version": s["notice_version"],
             "basis": s["basis"], "status": s["status"], "expires_at": _iso(s["expires_at"]),
             "updated_at": _iso(s["updated_at"])} for s in effective_states(profile_id)]


def consent_event_as_dict(event: ConsentEvent) -> dict:
    return {"id": str(event.id), "profile_id": str(event.profile_id), "position": event.seq,
            "purpose": event.purpose, "granted": event.granted, "notice_version": event.notice_version,
            "basis": event.basis, "channel": event.channel, "actor": event.actor, "source": event.source or None,
            "jurisdiction": event.jurisdiction or None, "language": event.language or None,
            "evidence": {"ip_hash": event.ip_hash or None, "user_agent_hash": event.user_agent_hash or None,
                         "note": event.evidence_note or None},
            "occurred_at": _iso(event.occurred_at), "recorded_at": _iso(event.recorded_at)}


def consent_events_query(*, profile_id=None, purpose: str | None = None, since: datetime | None = None,
                         until: datetime | None = None) -> QuerySet:
    events = ConsentEvent.objects.all()
    if profile_id is not None:
        events = events.filter(profile_id=profile_id)
    if purpose:
        events = events.filter(purpose=purpose)
    if since is not None:
        events = events.filter(recorded_at__gte=since)
    if until is not None:
        events = events.filter(recorded_at__lt=until)
    return events


def subject_known(profile_id) -> bool:
    """Whether the ledger names this id (an erased or never-resolved subject included)."""
    return ChainHead.objects.filter(profile_id=profile_id).exists()


def subject_records(*, subject_ids: list) -> dict:
    """What consent holds on these ids (a person and the ids merged into them), newest first:
    ledger events, access-log entries (a query: the console pages through them) and
    data-subject requests."""
    return {
        "events": list(ConsentEvent.objects.filter(profile_id__in=subject_ids).order_by("-recorded_at", "-seq")),
        "accesses": AccessLog.objects.filter(profile_id__in=subject_ids).order_by("-at", "-id"),
        "requests": list(DataSubjectRequest.objects.filter(profile_id__in=subject_ids).order_by("-received_at")),
    }




def consent_events_page(*, query_params: Mapping, accessor: Accessor, profile_id=None, purpose: str | None = None,
                        since: datetime | None = None, visible: Callable[[Iterable], set] | None = None) -> Page:
    """A page of the ledger, oldest first, of the people `visible` (a key's boundary; None:
    everyone) keeps; one access-log row per person on the page."""
    if purpose and purpose not in PURPOSES:
        raise ConsentError("Unknown purpose.", code=ConsentErrorCode.PURPOSE_UNKNOWN)

    def kept(events: list) -> list:
        seen = visible({e.profile_id for e in events})
        return [e for e in events if e.profile_id in seen]

    page = paginate(consent_events_query(profile_id=profile_id, purpose=purpose, since=since),
                    query_params=query_params, ordering=("recorded_at", "id"), keep=kept if visible else None)
    personal_data_read(accessor=accessor, profile_ids=[e.profile_id for e in page.rows], fields=["consent_events"],
                       purpose="consent_ledger_read")
    return page


def consent_receipt(*, profile_id, event_id, accessor: Accessor) -> dict:
    """One ledger event's Kantara receipt; logged as a read of the person's consent."""
    event = ConsentEvent.objects.filter(id=event_id, profile_id=profile_id).first()
    if event is None:
        raise ProfileUnknown("This profile has no consent event with this id.", code=ConsentErrorCode.EVENT_UNKNOWN)
    subject_data_read(accessor=accessor, profile_id=profile_id, fields=["consent_receipt"], purpose="consent_read")
    # The receipt's words read the person's whole history (a refusal is declined or withdrawn).
    history = list(ConsentEvent.objects.filter(profile_id=profile_id, purpose=event.purpose))
    return next(r for r in receipts_for_events(history) if r["consentReceiptID"] == str(event.id))


def consent_receipt_list(*, profile_id, accessor: Accessor) -> list[dict]:
    """Every receipt of the person's ledger, oldest first; logged as one read."""
    events = list(ConsentEvent.objects.filter(profile_id=profile_id).order_by("seq"))
    subject_data_read(accessor=accessor, profile_id=profile_id, fields=["consent_receipts"], purpose="consent_read")
    return receipts_for_events(events)


def consent_history(*, profile_ids) -> list[dict]:
    events = ConsentEvent.objects.filter(profile_id__in=list(profile_ids)).order_by("profile_id", "seq")
    return [consent_event_as_dict(e) for e in events]


def previous_links(events: list[ConsentEvent]) -> dict:
    """(profile id, position) → the link of the event before it in its chain, or the chain's
    genesis link for position 1: what an outside checker needs to follow each chain."""
    wanted = [(e.profile_id, e.seq - 1) for e in events if e.seq > 1]
    found = {}
    for start in range(0, len(wanted), 500):
        part = wanted[start:start + 500]
        query = Q()
        for pid, seq in part:
            query |= Q(profile_id=pid, seq=seq)
        found.update({(pid, seq + 1): link for pid, seq, link in
                      ConsentEvent.objects.filter(query).values_list("profile_id", "seq", "link")})
    for event in events:
        if event.seq == 1:
            found[(event.profile_id, 1)] = genesis_link(event.profile_id)
    return found


# --- exports ----------------------------------------------------------------------------------------

EXPORT_FIELDS = {
    "history": ["id", "profile_id", "position", "purpose", "granted", "notice_version", "basis", "channel",
                "actor", "source", "jurisdiction", "language", "ip_hash", "user_agent_hash", "occurred_at",
                "recorded_at", "evidence_note", "previous_link", "link"],
    "current": ["profile_id", "purpose", "granted", "notice_version", "expires_at", "event_id", "updated_at"],
}


def consent_export_rows(*, kind: str, since: datetime | None, until: datetime | None) -> Iterator[dict]:
    if kind == "history":
        # Every field the link covers, the link (an HMAC-SHA256) and the link before it, so
        # each chain can be followed outside Tessera (and recomputed by a holder of the key).
        query = consent_events_query(since=since, until=until).order_by("recorded_at", "id")
        chunk: list[ConsentEvent] = []
        for event in query.iterator(chunk_size=2000):
            chunk.append(event)
            if len(chunk) == 2000:
                yield from _history_rows(chunk)
                chunk = []
        yield from _history_rows(chunk)
        return
    states = ConsentState.objects.all()
    if since is not None:
        states = states.filter(updated_at__gte=since)
    if until is not None:
        states = states.filter(updated_at__lt=until)
    for state in states.order_by("profile_id", "purpose").iterator(chunk_size=5000):
        yield {"profile_id": str(state.profile_id), "purpose": state.purpose, "granted": state.granted,
               "notice_version": state.notice_version, "expires_at": _iso(state.expires_at),
               "event_id": str(state.event_id) if state.event_id else None, "updated_at": _iso(state.updated_at)}


def consent_event_evidence(event: ConsentEvent, previous_link: str | None) -> dict:
    row = consent_event_as_dict(event)
    evidence = row.pop("evidence")
    return {**row, "ip_hash": evidence["ip_hash"], "user_agent_hash": evidence["user_agent_hash"],
            "evidence_note": evidence["note"], "previous_link": previous_link, "link": event.link}


def _history_rows(events: list[ConsentEvent]) -> Iterator[dict]:
    links = previous_links(events)
    for event in events:
        row = consent_event_evidence(event, links.get((event.profile_id, event.seq)))
        yield {name: row[name] for name in EXPORT_FIELDS["history"]}


def consent_export_stream(*, kind: str, fmt: str, since: datetime | None, until: datetime | None,
                          accessor: Accessor) -> Iterator[str]:
    """The export's lines; the export (everyone's consent) is logged as one operator action."""
    if kind not in EXPORT_FIELDS:
        raise ConsentError("kind must be current or history.", code=ConsentErrorCode.INVALID_FORMAT)
    if fmt not in ("csv", "jsonl"):
        raise ConsentError("format must be csv or jsonl.", code=ConsentErrorCode.INVALID_FORMAT)
    operator_action_event(actor=accessor.actor, action="consent_export", detail={
        "kind": kind, "format": fmt, "from": _iso(since), "to": _iso(until)})
    rows = consent_export_rows(kind=kind, since=since, until=until)
    if fmt == "jsonl":
        return (json.dumps(row, separators=(",", ":")) + "\n" for row in rows)
    return _csv_lines(EXPORT_FIELDS[kind], rows)


def _csv_lines(header: list[str], rows) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    yield buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
        yield buffer.getvalue()


# --- access log ------------------------------------------------------------------------------------------


def access_log_search(*, profile_id=None, actor: str | None = None, kind: str | None = None,
                      purpose: str | None = None, since: datetime | None = None,
                      until: datetime | None = None, actor_prefix: str | None = None,
                      purposes: Iterable[str] | None = None) -> QuerySet:
    """Newest first. `actor_prefix` ("api_key:") finds every actor of a kind; `purposes` any of
    several reasons or actions (a search by words resolves to these codes)."""
    conditions = {"profile_id": profile_id, "actor": actor, "actor__startswith": actor_prefix, "kind": kind,
                  "purpose": purpose, "at__gte": since, "at__lt": until}
    entries = AccessLog.objects.filter(**{k: v for k, v in conditions.items() if v not in (None, "")})
    if purposes is not None:
        entries = entries.filter(purpose__in=list(purposes))
    return entries.order_by("-at", "-id")


def access_log_purposes() -> list[str]:
    """Every reason or action the access log holds (the console's filter offers these)."""
    return sorted(set(AccessLog.objects.values_list("purpose", flat=True).distinct()))


def configuration_changes() -> QuerySet:
    """Staff changes to consent configuration, newest first; each entry's detail has before and after."""
    return access_log_search(kind=AccessKind.OPERATOR_ACTION).filter(purpose__in=CONFIGURATION_ACTIONS)


def access_log_for_subjects(*, subject_ids: list, limit: int = 200) -> list[AccessLog]:
    """The newest access-log entries about a person (and the ids merged into them), for the
    person themselves: not logged again, or every look at the list would add to it."""
    return list(AccessLog.objects.filter(profile_id__in=subject_ids).order_by("-at", "-id")[:limit])


def access_log_as_dict(entry: AccessLog) -> dict:
    return {"id": entry.id, "at": _iso(entry.at), "kind": entry.kind, "actor": entry.actor,
            "profile_id": str(entry.profile_id) if entry.profile_id else None, "fields": entry.fields,
            "purpose": entry.purpose, "detail": entry.detail}


# --- data-subject requests ---------------------------------------------------------------------------


def dsr_list_for_profile(*, profile_id, limit: int = 50) -> list[DataSubjectRequest]:
    return list(DataSubjectRequest.objects.filter(profile_id=profile_id).order_by("-received_at")[:limit])


def dsr_for_profile(*, profile_id, request_id) -> DataSubjectRequest | None:
    """One of the person's own requests; another person's id finds nothing."""
    return DataSubjectRequest.objects.filter(profile_id=profile_id, id=request_id).first()


def dsr_is_open(dsr: DataSubjectRequest) -> bool:
    return dsr.status in OPEN_DSR


def dsr_search(*, statuses: Iterable[str] | None = None, request_type: str | None = None,
               channel: str | None = None, since: datetime | None = None, until: datetime | None = None,
               overdue: bool = False, reference: str | None = None) -> QuerySet:
    """Requests by status, type, channel, date received and reference (the start of the id):
    open ones by due date, any other selection newest first."""
    conditions = {"type": request_type, "channel": channel, "received_at__gte": since, "received_at__lt": until}
    requests = DataSubjectRequest.objects.filter(**{k: v for k, v in conditions.items() if v not in (None, "")})
    if statuses is not None:
        requests = requests.filter(status__in=list(statuses))
    if overdue:
        requests = requests.filter(status__in=OPEN_DSR, due_at__lt=timezone.now())
    if reference:
        try:  # a whole id, or the 8 characters the queue shows
            requests = requests.filter(id=UUID(reference))
        except ValueError:
            lowest = reference.lower().ljust(32, "0")[:32]
            highest = reference.lower().ljust(32, "f")[:32]
            try:
                requests = requests.filter(id__gte=UUID(lowest), id__lte=UUID(highest))
            except ValueError:
                requests = requests.none()
    open_only = statuses is not None and set(statuses) <= set(OPEN_DSR)
    return requests.order_by("due_at", "id") if open_only or overdue else requests.order_by("-received_at", "-id")


def dsr_rows(requests: Iterable[DataSubjectRequest]) -> list[dict]:
    """Each request with whether it is open, overdue, and the days left."""
    now = timezone.now()
    rows = []
    for request in requests:
        open_ = request.status in OPEN_DSR
        rows.append({"request": request, "open": open_, "overdue": open_ and request.due_at < now,
                     "days_left": (request.due_at - now).days if open_ else None})
    return rows


def dsr_channels() -> list[str]:
    return sorted(set(DataSubjectRequest.objects.values_list("channel", flat=True).distinct()))


def dsr_counts() -> dict:
    now = timezone.now()
    open_ = DataSubjectRequest.objects.filter(status__in=OPEN_DSR)
    return {"open": open_.count(), "overdue": open_.filter(due_at__lt=now).count(),
            "awaiting_approval": open_.filter(status=DsrStatus.AWAITING_APPROVAL).count(),
            "due_soon": open_.filter(due_at__gte=now, due_at__lt=now + timedelta(days=7)).count()}


# --- ledger verification ---------------------------------------------------------------------------


def ledger_status() -> dict:
    """The last verification's log entry, the one running now and the newest checkpoint
    (every verification: ledger_verifications)."""
    verified = access_log_search(kind=AccessKind.OPERATOR_ACTION, purpose=LEDGER_VERIFIED)
    return {
        "last": verified.first(), "running": ledger_verification_active(),
        "checkpoint": LedgerCheckpoint.objects.order_by("-created_at").first(),
    }


def ledger_verifications(*, outcome: str = "", since: datetime | None = None,
                         until: datetime | None = None) -> QuerySet:
    """Every verification's log entry, newest first: "intact" or "broken" ones only, between two times."""
    entries = access_log_search(kind=AccessKind.OPERATOR_ACTION, purpose=LEDGER_VERIFIED, since=since, until=until)
    if outcome == "intact":
        entries = entries.filter(detail__intact=True)
    elif outcome == "broken":
        entries = entries.exclude(detail__intact=True)
    return entries


def ledger_verification_active() -> dict | None:
    """The verification queued or running now, with its progress."""
    verification = LedgerVerification.objects.filter(active=True).first()
    if verification is None:
        return None
    checked = ledger_verification_progress(verification) or 0
    total = max(verification.events_total, 1)
    return {"verification": verification, "checked": checked, "total": verification.events_total,
            "percent": min(100, round(100 * checked / total))}
