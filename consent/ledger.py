"""The tamper-evident consent ledger: one HMAC chain per subject, MAC'd heads, checkpoints.

Threat model: someone who can write to the database (raw SQL, a restored backup, a
rogue operator) but does not hold TESSERA_LEDGER_KEY, which lives only in the
environment. Without the key nobody can compute a valid link, so:

* editing, inserting or reordering an event breaks the link of that event;
* deleting an event leaves a gap in its chain's positions (the next event names it);
* deleting the tail leaves a head (MAC'd, updated with every append) naming a longer chain;
* deleting a whole chain with its head, or restoring an older head with its shorter
  chain, is found by comparing with a checkpoint of all heads exported earlier and kept
  outside the database (`export_ledger_checkpoint`).

Chains are per subject, so appends for different people lock different head rows and
never queue on one global lock. Reads and writes pseudonymous ids, purposes, codes and
keyed hashes only; logs nothing personal.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from consent.models import ChainHead, ConsentEvent, ConsentState, LedgerCheckpoint

_LINK_LABEL = b"tessera:consent-link:v1"
_GENESIS_LABEL = b"tessera:consent-genesis:v1"
_HEAD_LABEL = b"tessera:consent-head:v1"
_CHECKPOINT_LABEL = b"tessera:consent-checkpoint:v1"
CHECKPOINT_FORMAT = "tessera-ledger-checkpoint/1"

# Every field of an event that the link covers, in order (the link itself excluded).
LINKED_FIELDS = ("id", "profile_id", "seq", "purpose", "granted", "notice_version", "basis", "channel", "actor",
                 "source", "jurisdiction", "language", "ip_hash", "user_agent_hash", "occurred_at", "recorded_at")


def _key() -> bytes:
    return settings.TESSERA_LEDGER_KEY


def _part(value) -> bytes:
    if isinstance(value, datetime):
        if value.utcoffset():
            value = value.astimezone(UTC)
        text = value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    elif isinstance(value, bool):
        text = "1" if value else "0"
    else:
        text = str(value)
    data = text.encode()
    return len(data).to_bytes(4, "big") + data


def _mac(key: bytes, label: bytes, *parts) -> str:
    # One buffer, one HMAC call: verification runs this a million times.
    return hmac.new(key, label + b"".join(map(_part, parts)), hashlib.sha256).hexdigest()


def genesis_link(profile_id, *, key: bytes | None = None) -> str:
    return _mac(key or _key(), _GENESIS_LABEL, str(profile_id))


def event_link(values: dict | tuple, previous_link: str, *, key: bytes | None = None) -> str:
    """The link of an event given its fields (a dict, or a tuple in LINKED_FIELDS order)."""
    if isinstance(values, dict):
        values = tuple(values[name] for name in LINKED_FIELDS)
    return _mac(key or _key(), _LINK_LABEL, previous_link, *values)


def head_mac(profile_id, length: int, last_link: str, *, key: bytes | None = None) -> str:
    return _mac(key or _key(), _HEAD_LABEL, str(profile_id), length, last_link)


# --- appending --------------------------------------------------------------------------------


def subjects_lock(profile_ids) -> None:
    """Lock these subjects until the transaction ends (PostgreSQL advisory locks, taken in
    a stable order).

    Every append (heads_lock) and every merge that absorbs a subject takes this first, so
    the two queue even when the subject has no chain head yet: a merge need not create
    heads for people who never gave consent. On SQLite every write transaction is
    exclusive already.
    """
    if connection.vendor != "postgresql":
        return
    keys = sorted({_subject_lock_key(p) for p in profile_ids})
    if keys:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(k) FROM unnest(%b::bigint[]) WITH ORDINALITY AS t(k, n) "
                           "ORDER BY n", [keys])


def _subject_lock_key(profile_id) -> int:
    digest = hashlib.sha256(b"tessera:consent-subject:" + UUID(str(profile_id)).bytes).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def heads_lock(profile_ids) -> dict[UUID, ChainHead]:
    """Lock (creating if needed) the heads of these subjects, in a stable order.

    Two appends for the same person queue here; appends for different people do not.
    """
    ids = sorted({UUID(str(p)) for p in profile_ids}, key=str)
    subjects_lock(ids)
    now = timezone.now()
    existing = set(ChainHead.objects.filter(profile_id__in=ids).values_list("profile_id", flat=True))
    missing = [pid for pid in ids if pid not in existing]
    if missing:
        # ON CONFLICT DO NOTHING: a concurrent first append for the same person waits on
        # the other's insert, then finds its row below.
        ChainHead.objects.bulk_create(
            [ChainHead(profile_id=pid, length=0, last_link=(g := genesis_link(pid)), mac=head_mac(pid, 0, g),
                       updated_at=now) for pid in missing], ignore_conflicts=True)
    heads = ChainHead.objects.select_for_update().filter(profile_id__in=ids).order_by("profile_id")
    return {h.profile_id: h for h in heads}


def ledger_append(*, head: ChainHead, **fields) -> ConsentEvent:
    """Append one event to a locked head's chain and advance the head (same transaction)."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("ledger_append must run inside the transaction that locked the head.")
    if head.mac != head_mac(head.profile_id, head.length, head.last_link):
        # Appending onto a forged head would launder the forgery into a valid-looking chain.
        raise LedgerBroken(f"The chain head of subject {head.profile_id} fails its MAC; "
                           "run verify_consent_ledger before recording more consent for this subject.")
    event = ConsentEvent(profile_id=head.profile_id, seq=head.length + 1, recorded_at=timezone.now(), **fields)
    values = {name: getattr(event, name) for name in LINKED_FIELDS}
    event.link = event_link(values, head.last_link)
    event.save()
    head.length = event.seq
    head.last_link = event.link
    head.mac = head_mac(head.profile_id, head.length, head.last_link)
    head.updated_at = event.recorded_at
    head.save(update_fields=["length", "last_link", "mac", "updated_at"])
    return event


class LedgerBroken(Exception):
    pass


# --- verifying ----------------------------------------------------------------------------------


@dataclass
class Finding:
    """The first thing found wrong: what, where, and one plain sentence about it."""

    code: str
    profile_id: str
    position: int | None
    event_id: str | None
    message: str


@dataclass
class VerifyReport:
    subjects: int = 0
    events: int = 0
    states: int = 0
    checkpoint_subjects: int = 0
    finding: Finding | None = None
    seconds: float = 0.0
    checked_heads: set = field(default_factory=set, repr=False)

    @property
    def intact(self) -> bool:
        return self.finding is None


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
_END = object()


class _Head(NamedTuple):
    length: int
    last_link: str
    mac: str


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
    with transaction.atomic():  # one snapshot for events, heads and states
        heads = {pid: _Head(length, link, mac) for pid, length, link, mac in ChainHead.objects.values_list(
            "profile_id", "length", "last_link", "mac").iterator(chunk_size=chunk_size)}
        events = _rows(ConsentEvent, (*LINKED_FIELDS, "link"), ("profile_id", "seq"), name="ledger_verify_events",
                       chunk_size=chunk_size)
        states = _rows(ConsentState, ("profile_id", "purpose", "granted", "notice_version", "event_id"),
                       ("profile_id", "purpose"), name="ledger_verify_states", chunk_size=chunk_size)
        report.finding = _verify_chains(events, states, heads, report, on_progress, chunk_size)
        if report.finding is None:
            report.finding = _heads_without_chain(heads, report)
        if report.finding is None and checkpoint is not None:
            report.finding = _checkpoint_check(checkpoint, heads, report)
    report.seconds = time.perf_counter() - started
    return report


def _verify_chains(events: Iterator[tuple], states: Iterator[tuple], heads: dict, report: VerifyReport,
                   on_progress: Callable[[int], None] | None, every: int):
    key = _key()
    label = _LINK_LABEL
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
            state_pid, purpose, granted, notice, event_id = pending_state
            report.states += 1
            if state_pid < pid:
                return _state_finding(state_pid, purpose, event_id, missing=False)
            recorded[purpose] = (event_id, granted, notice)
            pending_state = next(states, _END)
        for purpose in sorted(set(recorded) | set(last)):
            if recorded.get(purpose) != last.get(purpose):
                event_id = (last.get(purpose) or recorded.get(purpose))[0]
                return _state_finding(pid, purpose, event_id, missing=purpose not in recorded)
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
        link = _mac(key, label, previous, *row[:_LINK])
        if not hmac.compare_digest(link, row[_LINK]):
            return Finding("link_invalid", str(pid), seq, str(event_id),
                           f"Consent event {event_id} (subject {pid}, position {seq}) fails its chain "
                           "link: it was edited, inserted, reordered or forged.")
        expected_seq, previous = seq, link
        last[row[_PURPOSE]] = (event_id, row[_GRANTED], row[_NOTICE])
    if current is not None and (finding := close(current)):
        return finding
    if pending_state is not _END:
        report.states += 1
        return _state_finding(pending_state[0], pending_state[1], pending_state[4], missing=False)
    return None


def _head_check(pid, length: int, last_link: str, head: _Head | None, key: bytes) -> Finding | None:
    if head is None:
        return Finding("head_missing", str(pid), length, None,
                       f"Subject {pid}'s chain has {length} events but no chain head: the head was deleted.")
    if head.mac != head_mac(pid, head.length, head.last_link, key=key):
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


def _state_finding(pid, purpose: str, event_id, *, missing: bool) -> Finding:
    if missing:
        return Finding("state_missing", str(pid), None, str(event_id) if event_id else None,
                       f"The current {purpose} state of subject {pid} is missing although consent event "
                       f"{event_id} recorded it.")
    return Finding("state_mismatch", str(pid), None, str(event_id) if event_id else None,
                   f"The current {purpose} state of subject {pid} does not match its last consent event: "
                   "the state was altered.")


def _heads_without_chain(heads: dict, report: VerifyReport) -> Finding | None:
    key = _key()
    for pid in sorted(set(heads) - report.checked_heads):
        head = heads[pid]
        if head.mac != head_mac(pid, head.length, head.last_link, key=key):
            return Finding("head_forged", str(pid), head.length, None,
                           f"The chain head of subject {pid} fails its MAC: it was altered.")
        if head.length > 0:
            return Finding("chain_deleted", str(pid), 1, None,
                           f"Subject {pid}'s head records {head.length} events but none remain: "
                           "the whole chain was deleted.")
    return None


# --- checkpoints ------------------------------------------------------------------------------------


def _heads_digest(lines: list[str]) -> str:
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()


def ledger_checkpoint_create(*, path: str | None = None) -> tuple[LedgerCheckpoint, str]:
    """Snapshot every head; returns the checkpoint row and the file's text (JSON Lines).

    The first line is a header (format, time, counts, digest of the head lines and a MAC
    under the ledger key); each further line is one head `{"s", "n", "l"}`. Keep the file
    outside the database: it is what finds a chain deleted whole or heads rolled back.
    """
    now = timezone.now()
    lines = []
    events = 0
    for pid, length, last_link in ChainHead.objects.filter(length__gt=0).order_by("profile_id").values_list(
            "profile_id", "length", "last_link").iterator(chunk_size=20000):
        lines.append(json.dumps({"s": str(pid), "n": length, "l": last_link}, separators=(",", ":")))
        events += length
    digest = _heads_digest(lines)
    created = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    mac = _mac(_key(), _CHECKPOINT_LABEL, created, len(lines), events, digest)
    header = json.dumps({"format": CHECKPOINT_FORMAT, "created_at": created, "subjects": len(lines),
                         "events": events, "digest": digest, "mac": mac}, separators=(",", ":"))
    text = "\n".join([header, *lines]) + "\n"
    row = LedgerCheckpoint.objects.create(created_at=now, subjects=len(lines), events=events, digest=digest,
                                          mac=mac, path=path or "")
    return row, text


class CheckpointInvalid(Exception):
    pass


def checkpoint_parse(text: str) -> dict:
    """A checkpoint file's heads, after checking its MAC; raises CheckpointInvalid."""
    lines = [line for line in text.splitlines() if line.strip()]
    try:
        header = json.loads(lines[0])
        heads = [json.loads(line) for line in lines[1:]]
    except (IndexError, ValueError):
        raise CheckpointInvalid("The checkpoint file is not a ledger checkpoint.") from None
    if not isinstance(header, dict) or header.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointInvalid("The checkpoint file is not a ledger checkpoint.")
    digest = _heads_digest(lines[1:])
    expected = _mac(_key(), _CHECKPOINT_LABEL, header.get("created_at"), len(heads),
                    sum(int(h.get("n", 0)) for h in heads), digest)
    if digest != header.get("digest") or not hmac.compare_digest(expected, str(header.get("mac"))):
        raise CheckpointInvalid("The checkpoint file fails its MAC: it was altered or made with another ledger key.")
    return {"created_at": header["created_at"], "heads": {UUID(h["s"]): (int(h["n"]), h["l"]) for h in heads}}


def _checkpoint_check(checkpoint: dict, heads: dict, report: VerifyReport) -> Finding | None:
    """Every chain in the checkpoint must still exist and extend what the checkpoint saw."""
    report.checkpoint_subjects = len(checkpoint["heads"])
    for pid in sorted(checkpoint["heads"], key=str):
        length, link = checkpoint["heads"][pid]
        head = heads.get(pid)
        if head is None or head.length == 0:
            return Finding("chain_deleted", str(pid), 1, None,
                           f"Subject {pid} had {length} consent events at the checkpoint of "
                           f"{checkpoint['created_at']} and has none now: the whole chain was deleted.")
        if head.length < length:
            return Finding("chain_rolled_back", str(pid), head.length + 1, None,
                           f"Subject {pid} had {length} consent events at the checkpoint of "
                           f"{checkpoint['created_at']} and has {head.length} now: the chain was rolled back.")
        at = ConsentEvent.objects.filter(profile_id=pid, seq=length).values_list("id", "link").first()
        if at is None or at[1] != link:
            return Finding("chain_rewritten", str(pid), length, str(at[0]) if at else None,
                           f"Subject {pid}'s event {length} differs from the checkpoint of "
                           f"{checkpoint['created_at']}: the chain was rewritten.")
    return None
