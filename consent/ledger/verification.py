"""Verifying the whole ledger: every chain, head, materialized state and subject, the
configuration chain and (optionally) a checkpoint, streamed so memory stays flat."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from uuid import UUID

from django.db import connection, transaction

from consent.ledger.chain import LINKED_FIELDS, genesis_link, ledger_key, link_compute
from consent.ledger.checkpoints import checkpoint_check
from consent.ledger.config import config_check
from consent.ledger.report import Finding, HeadRow, VerifyReport
from consent.models import DEFAULT_JURISDICTION, ChainHead, ConsentEvent, ConsentState, Subject


def _rows(model, fields: tuple[str, ...], order: tuple[str, ...], *, name: str, chunk_size: int) -> Iterator[tuple]:
    """Stream rows as tuples of Python values, in `order`, without loading them all."""
    quote = connection.ops.quote_name
    model_fields = [model._meta.get_field(f) for f in fields]
    sql = (f"SELECT {', '.join(quote(f.column) for f in model_fields)} FROM {quote(model._meta.db_table)} "  # noqa: S608
           f"ORDER BY {', '.join(quote(model._meta.get_field(f).column) for f in order)}")
    if connection.vendor == "postgresql":
        # psycopg already returns UUIDs, aware datetimes, bools and ints; a named
        # (server-side) cursor streams a million rows instead of loading them at once.
        connection.ensure_connection()
        with connection.connection.cursor(name=name) as cursor:
            cursor.itersize = chunk_size
            cursor.execute(sql)
            yield from cursor
        return
    converters = [_converter(f) for f in model_fields]
    with connection.cursor() as cursor:
        cursor.execute(sql)
        while rows := cursor.fetchmany(chunk_size):
            for row in rows:
                yield tuple(c(v) for c, v in zip(converters, row))


def _converter(model_field):
    internal = model_field.get_internal_type()
    if internal == "UUIDField":
        return lambda v: v if v is None or isinstance(v, UUID) else UUID(str(v))
    if internal == "DateTimeField":
        def to_datetime(v):
            if v is None:
                return None
            if isinstance(v, str):
                v = datetime.fromisoformat(v)
            return v if v.tzinfo else v.replace(tzinfo=UTC)
        return to_datetime
    if internal == "BooleanField":
        return bool
    if internal in ("PositiveBigIntegerField", "PositiveIntegerField"):
        return int
    return lambda v: v


_SEQ, _PID, _ID = LINKED_FIELDS.index("seq"), LINKED_FIELDS.index("profile_id"), LINKED_FIELDS.index("id")
_PURPOSE, _GRANTED = LINKED_FIELDS.index("purpose"), LINKED_FIELDS.index("granted")
_NOTICE, _LINK = LINKED_FIELDS.index("notice_version"), len(LINKED_FIELDS)
_OCCURRED = LINKED_FIELDS.index("occurred_at")
_END = object()
# What a state must equal, in this order, and how a mismatch is named.
_STATE_FIELDS = ("event", "decision", "notice version", "expiry", "time")


def ledger_verify(*, checkpoint: dict | None = None, chunk_size: int = 20000,
                  on_progress: Callable[[int], None] | None = None) -> VerifyReport:
    """Check every chain, every head, the materialized states and (optionally) a checkpoint.

    Chains are read in subject-id order and the states merged in alongside (both sorted
    by subject), so memory stays flat however long the ledger. Stops at the first
    finding: chains in subject-id order, events in chain order. `on_progress` hears the
    number of events checked so far, every `chunk_size` events.
    """
    started = time.perf_counter()
    report = VerifyReport()
    with transaction.atomic():  # one snapshot for configuration, events, heads, states and subjects
        lifetimes: dict = {}
        report.finding = config_check(lifetimes)
        heads = {pid: HeadRow(*rest) for pid, *rest in ChainHead.objects.values_list(
            "profile_id", "length", "last_link", "jurisdiction", "jurisdiction_changes", "mac").iterator(
            chunk_size=chunk_size)}
        if report.finding is None:
            events = _rows(ConsentEvent, (*LINKED_FIELDS, "link"), ("profile_id", "seq"),
                           name="ledger_verify_events", chunk_size=chunk_size)
            states = _rows(ConsentState, ("profile_id", "purpose", "event_id", "granted", "notice_version",
                                          "expires_at", "updated_at"),
                           ("profile_id", "purpose"), name="ledger_verify_states", chunk_size=chunk_size)
            report.finding = _verify_chains(events, states, heads, lifetimes, report, on_progress, chunk_size)
        if report.finding is None:
            report.finding = _heads_without_chain(heads, report)
        if report.finding is None:
            report.finding = _subjects_check(heads, chunk_size)
        if report.finding is None and checkpoint is not None:
            report.finding = checkpoint_check(checkpoint, heads, report)
    report.seconds = time.perf_counter() - started
    return report


def _verify_chains(events: Iterator[tuple], states: Iterator[tuple], heads: dict, lifetimes: dict,
                   report: VerifyReport, on_progress: Callable[[int], None] | None, every: int):
    key = ledger_key()
    pending_state = next(states, _END)
    current, expected_seq, previous, last = None, 0, "", {}

    def close(pid) -> Finding | None:
        nonlocal pending_state
        finding = _head_check(pid, expected_seq, previous, heads.get(pid), key)
        if finding:
            return finding
        report.checked_heads.add(pid)
        recorded = {}
        while pending_state is not _END and pending_state[0] <= pid:
            state_pid, purpose, *state = pending_state
            report.states += 1
            if state_pid < pid:
                return _state_finding(state_pid, purpose, state[0], missing=False)
            recorded[purpose] = tuple(state)
            pending_state = next(states, _END)
        for purpose in sorted(set(recorded) | set(last)):
            expected = _replayed_state(last.get(purpose), lifetimes)
            if recorded.get(purpose) != expected:
                event_id = (expected or recorded.get(purpose))[0]
                return _state_finding(pid, purpose, event_id, missing=purpose not in recorded,
                                      recorded=recorded.get(purpose), expected=expected)
        return None

    for row in events:
        pid = row[_PID]
        if pid != current:
            if current is not None and (finding := close(current)):
                return finding
            current, expected_seq, previous, last = pid, 0, genesis_link(pid, key=key), {}
            report.subjects += 1
        report.events += 1
        if on_progress is not None and report.events % every == 0:
            on_progress(report.events)
        seq, event_id = row[_SEQ], row[_ID]
        if seq != expected_seq + 1:
            missing = f"event {expected_seq + 1}" if seq == expected_seq + 2 else \
                f"events {expected_seq + 1} to {seq - 1}"
            return Finding("event_deleted", str(pid), seq, str(event_id),
                           f"Consent event {event_id} (subject {pid}, position {seq}) follows position "
                           f"{expected_seq}: {missing} of this chain was deleted.")
        link = link_compute(key, previous, row[:_LINK])
        if not hmac.compare_digest(link, row[_LINK]):
            return Finding("link_invalid", str(pid), seq, str(event_id),
                           f"Consent event {event_id} (subject {pid}, position {seq}) fails its chain "
                           "link: it was edited, inserted, reordered or forged.")
        expected_seq, previous = seq, link
        last[row[_PURPOSE]] = row
    if current is not None and (finding := close(current)):
        return finding
    if pending_state is not _END:
        report.states += 1
        return _state_finding(pending_state[0], pending_state[1], pending_state[2], missing=False)
    return None


def _replayed_state(event: tuple | None, lifetimes: dict) -> tuple | None:
    """What ConsentState must hold after this (last) event of its purpose: the fields of
    consent.services.consents._append, in the order of the states read by ledger_verify."""
    if event is None:
        return None
    granted, occurred_at = event[_GRANTED], event[_OCCURRED]
    lifetime = lifetimes.get((event[_PURPOSE], event[_NOTICE])) if granted else None
    expires_at = occurred_at + timedelta(days=lifetime) if lifetime else None
    return event[_ID], granted, event[_NOTICE], expires_at, occurred_at


def _head_check(pid, length: int, last_link: str, head: HeadRow | None, key: bytes) -> Finding | None:
    if head is None:
        return Finding("head_missing", str(pid), length, None,
                       f"Subject {pid}'s chain has {length} events but no chain head: the head was deleted.")
    if not head.mac_valid(pid, key):
        return Finding("head_forged", str(pid), head.length, None,
                       f"The chain head of subject {pid} fails its MAC: it was altered.")
    if head.length > length:
        return Finding("tail_deleted", str(pid), length + 1, None,
                       f"Subject {pid}'s chain ends at event {length} but its head records {head.length}: "
                       f"event {length + 1} onwards was deleted.")
    if head.length < length or head.last_link != last_link:
        return Finding("head_mismatch", str(pid), head.length, None,
                       f"The chain head of subject {pid} does not match the end of its chain.")
    return None


def _state_finding(pid, purpose: str, event_id, *, missing: bool, recorded: tuple | None = None,
                   expected: tuple | None = None) -> Finding:
    if missing:
        return Finding("state_missing", str(pid), None, str(event_id) if event_id else None,
                       f"The current {purpose} state of subject {pid} is missing although consent event "
                       f"{event_id} recorded it.")
    what = "state"
    if recorded is not None and expected is not None:
        what = next(name for name, mine, theirs in zip(_STATE_FIELDS, recorded, expected, strict=True)
                    if mine != theirs) + " in the state"
    return Finding("state_mismatch", str(pid), None, str(event_id) if event_id else None,
                   f"The current {purpose} state of subject {pid} does not match its consent events "
                   f"(the {what} differs): the state was altered.")


def _heads_without_chain(heads: dict, report: VerifyReport) -> Finding | None:
    key = ledger_key()
    for pid in sorted(set(heads) - report.checked_heads):
        head = heads[pid]
        if not head.mac_valid(pid, key):
            return Finding("head_forged", str(pid), head.length, None,
                           f"The chain head of subject {pid} fails its MAC: it was altered.")
        if head.length > 0:
            return Finding("chain_deleted", str(pid), 1, None,
                           f"Subject {pid}'s head records {head.length} events but none remain: "
                           "the whole chain was deleted.")
    return None


def _subjects_check(heads: dict, chunk_size: int) -> Finding | None:
    """Every subject's jurisdiction is the one its (MAC-checked) head carries; no row means `*`."""
    seen = set()
    for pid, jurisdiction in Subject.objects.order_by("profile_id").values_list(
            "profile_id", "jurisdiction").iterator(chunk_size=chunk_size):
        seen.add(pid)
        head = heads.get(pid)
        if jurisdiction != (head.jurisdiction if head else DEFAULT_JURISDICTION):
            return Finding("jurisdiction_mismatch", str(pid), None, None,
                           f"The jurisdiction of subject {pid} does not match the one its chain head records: "
                           "it was changed outside Tessera.")
    deleted = [pid for pid, head in heads.items() if head.jurisdiction != DEFAULT_JURISDICTION and pid not in seen]
    if deleted:
        pid = min(deleted)
        return Finding("jurisdiction_mismatch", str(pid), None, None,
                       f"The jurisdiction of subject {pid} is missing although its chain head records "
                       f"{heads[pid].jurisdiction}: the row was deleted.")
    return None
