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

Everything else the policy reads is verified too: each materialized ConsentState must be
the replay of its chain (decision, notice version, expiry, time); each subject's
jurisdiction must equal the one its MAC'd head carries; purposes' legal bases and notice
versions must equal the newest entry of the configuration chain (PolicyConfigEvent, also
HMAC'd). Checkpoints are signed with an Ed25519 key the ledger key's holder need not have
(consent.checkpoint_signature), so even that holder cannot rewrite what a checkpoint saw.

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
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from consent.checkpoint_signature import (
    SIGNED_FORMAT,
    CheckpointInvalid,
    checkpoint_lines,
    checkpoint_sign,
    checkpoint_verify_signature,
    heads_digest,
)
from consent.models import (
    DEFAULT_JURISDICTION,
    ChainHead,
    ConsentEvent,
    ConsentState,
    LedgerCheckpoint,
    NoticeVersion,
    PolicyConfigEvent,
    PolicyConfigHead,
    PurposeBasis,
    Subject,
)

_LINK_LABEL = b"tessera:consent-link:v1"
_GENESIS_LABEL = b"tessera:consent-genesis:v1"
_HEAD_LABEL = b"tessera:consent-head:v2"
_CHECKPOINT_LABEL = b"tessera:consent-checkpoint:v1"
_CONFIG_LINK_LABEL = b"tessera:policy-config-link:v1"
_CONFIG_GENESIS_LABEL = b"tessera:policy-config-genesis:v1"
_CONFIG_HEAD_LABEL = b"tessera:policy-config-head:v1"
LEGACY_CHECKPOINT_FORMAT = "tessera-ledger-checkpoint/1"  # MAC'd with the ledger key: read, no longer written

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


def head_mac(profile_id, length: int, last_link: str, jurisdiction: str = DEFAULT_JURISDICTION,
             jurisdiction_changes: int = 0, *, key: bytes | None = None) -> str:
    return _mac(key or _key(), _HEAD_LABEL, str(profile_id), length, last_link, jurisdiction, jurisdiction_changes)


def _head_mac_of(head: ChainHead) -> str:
    return head_mac(head.profile_id, head.length, head.last_link, head.jurisdiction, head.jurisdiction_changes)


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
    _head_check_mac(head)
    event = ConsentEvent(profile_id=head.profile_id, seq=head.length + 1, recorded_at=timezone.now(), **fields)
    values = {name: getattr(event, name) for name in LINKED_FIELDS}
    event.link = event_link(values, head.last_link)
    event.save()
    head.length = event.seq
    head.last_link = event.link
    head.mac = _head_mac_of(head)
    head.updated_at = event.recorded_at
    head.save(update_fields=["length", "last_link", "mac", "updated_at"])
    return event


def _head_check_mac(head: ChainHead) -> None:
    if not hmac.compare_digest(head.mac, _head_mac_of(head)):
        # Writing onto a forged head would launder the forgery into a valid-looking chain.
        raise LedgerBroken(f"The chain head of subject {head.profile_id} fails its MAC; "
                           "run verify_consent_ledger before recording more consent for this subject.")


def head_jurisdiction_set(head: ChainHead, jurisdiction: str) -> bool:
    """Set a locked head's subject's jurisdiction (head and Subject row, same transaction);
    False when it is already that."""
    if head.jurisdiction == jurisdiction:
        return False
    _head_check_mac(head)
    head.jurisdiction, head.jurisdiction_changes = jurisdiction, head.jurisdiction_changes + 1
    head.mac, head.updated_at = _head_mac_of(head), timezone.now()
    head.save(update_fields=["jurisdiction", "jurisdiction_changes", "mac", "updated_at"])
    Subject.objects.update_or_create(profile_id=head.profile_id, defaults={"jurisdiction": jurisdiction})
    return True


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


class _Head(NamedTuple):
    length: int
    last_link: str
    jurisdiction: str
    jurisdiction_changes: int
    mac: str

    def mac_valid(self, pid, key: bytes) -> bool:
        return hmac.compare_digest(self.mac, head_mac(pid, self.length, self.last_link, self.jurisdiction,
                                                      self.jurisdiction_changes, key=key))


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
        report.finding = _config_check(lifetimes)
        heads = {pid: _Head(*rest) for pid, *rest in ChainHead.objects.values_list(
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
            report.finding = _checkpoint_check(checkpoint, heads, report)
    report.seconds = time.perf_counter() - started
    return report


def _verify_chains(events: Iterator[tuple], states: Iterator[tuple], heads: dict, lifetimes: dict,
                   report: VerifyReport, on_progress: Callable[[int], None] | None, every: int):
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
        link = _mac(key, label, previous, *row[:_LINK])
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


def _head_check(pid, length: int, last_link: str, head: _Head | None, key: bytes) -> Finding | None:
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
    key = _key()
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


# --- the policy configuration chain ---------------------------------------------------------------
# Legal bases and notice versions decide consent for everyone at once; every change of them
# appends the whole (small) configuration to one HMAC chain, so the verifier can compare
# the tables the policy reads with the newest entry.

_EMPTY_CONFIG = json.dumps({"bases": [], "notices": []}, separators=(",", ":"))


def policy_config_snapshot() -> str:
    """Canonical JSON of every purpose basis and notice version (what the policy reads of them)."""
    bases = sorted(list(row) for row in PurposeBasis.objects.values_list("purpose", "jurisdiction", "basis"))
    notices = sorted(list(row) for row in NoticeVersion.objects.values_list(
        "purpose", "version", "material", "lifetime_days"))
    return json.dumps({"bases": bases, "notices": notices}, separators=(",", ":"))


def _config_link(seq: int, action: str, actor: str, recorded_at, snapshot: str, previous: str, key: bytes) -> str:
    return _mac(key, _CONFIG_LINK_LABEL, previous, seq, action, actor, recorded_at, snapshot)


def _config_head_mac(length: int, last_link: str, key: bytes) -> str:
    return _mac(key, _CONFIG_HEAD_LABEL, length, last_link)


def _config_genesis(key: bytes) -> str:
    return _mac(key, _CONFIG_GENESIS_LABEL)


def policy_config_record(*, actor: str, action: str) -> PolicyConfigEvent | None:
    """Append the current configuration to its chain, in the caller's transaction, unless it
    equals the newest entry. Call after every change of PurposeBasis or NoticeVersion."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("policy_config_record must run inside the transaction that changed the configuration.")
    key, now = _key(), timezone.now()
    genesis = _config_genesis(key)
    PolicyConfigHead.objects.bulk_create([PolicyConfigHead(id=1, length=0, last_link=genesis,
                                                           mac=_config_head_mac(0, genesis, key), updated_at=now)],
                                         ignore_conflicts=True)
    head = PolicyConfigHead.objects.select_for_update().get(id=1)
    if not hmac.compare_digest(head.mac, _config_head_mac(head.length, head.last_link, key)):
        raise LedgerBroken("The policy configuration chain's head fails its MAC; run verify_consent_ledger.")
    snapshot = policy_config_snapshot()
    newest = PolicyConfigEvent.objects.filter(seq=head.length).values_list("snapshot", flat=True).first()
    if snapshot == (newest if head.length else _EMPTY_CONFIG):
        return None
    event = PolicyConfigEvent(seq=head.length + 1, action=action[:32], actor=(actor or "unknown")[:120],
                              recorded_at=now, snapshot=snapshot)
    event.link = _config_link(event.seq, event.action, event.actor, now, snapshot, head.last_link, key)
    event.save()
    head.length, head.last_link = event.seq, event.link
    head.mac, head.updated_at = _config_head_mac(head.length, head.last_link, key), now
    head.save(update_fields=["length", "last_link", "mac", "updated_at"])
    return event


def _config_check(lifetimes: dict) -> Finding | None:
    """The configuration chain's links and head, and the tables against its newest entry.
    Fills `lifetimes` ((purpose, version) → days) for replaying expiries."""
    key = _key()
    head = PolicyConfigHead.objects.filter(id=1).values_list("length", "last_link", "mac").first()
    previous, length, snapshot = _config_genesis(key), 0, _EMPTY_CONFIG
    for seq, action, actor, recorded_at, text, link in PolicyConfigEvent.objects.order_by("seq").values_list(
            "seq", "action", "actor", "recorded_at", "snapshot", "link"):
        if seq != length + 1:
            return _config_finding("config_event_deleted", seq, f"Policy configuration entry {seq} follows entry "
                                   f"{length}: entries of the configuration history were deleted.")
        if not hmac.compare_digest(link, _config_link(seq, action, actor, recorded_at, text, previous, key)):
            return _config_finding("config_link_invalid", seq, f"Policy configuration entry {seq} fails its chain "
                                   "link: the configuration history was edited or forged.")
        previous, length, snapshot = link, seq, text
    if head is None and length:
        return _config_finding("config_head_missing", length, "The policy configuration chain has no head: "
                               "it was deleted.")
    if head is not None:
        if not hmac.compare_digest(head[2], _config_head_mac(head[0], head[1], key)):
            return _config_finding("config_head_forged", head[0], "The policy configuration chain's head fails its "
                                   "MAC: it was altered.")
        if head[0] != length or head[1] != previous:
            return _config_finding("config_tail_deleted", length + 1, f"The policy configuration history ends at "
                                   f"entry {length} but its head records {head[0]}: entries were deleted.")
    current = policy_config_snapshot()
    for purpose, version, _, days in json.loads(current)["notices"]:
        lifetimes[(purpose, version)] = days
    if current != snapshot:
        return _config_finding("configuration_mismatch", length, _config_difference(json.loads(snapshot),
                                                                                     json.loads(current)))
    return None


def _config_finding(code: str, position: int, message: str) -> Finding:
    return Finding(code, "", position, None, message)


def _config_difference(recorded: dict, current: dict) -> str:
    """One sentence naming the first basis or notice version that differs from the history."""
    was = {(p, j): b for p, j, b in recorded["bases"]}
    now = {(p, j): b for p, j, b in current["bases"]}
    for purpose, jurisdiction in sorted(set(was) | set(now)):
        before, after = was.get((purpose, jurisdiction)), now.get((purpose, jurisdiction))
        if before != after:
            return (f"The legal basis of {purpose} in jurisdiction {jurisdiction} is {after or 'unset'} but the "
                    f"configuration history records {before or 'none'}: the purpose bases were changed outside "
                    "Tessera.")
    was = {(p, v): (m, d) for p, v, m, d in recorded["notices"]}
    now = {(p, v): (m, d) for p, v, m, d in current["notices"]}
    purpose, version = min(key for key in set(was) | set(now) if was.get(key) != now.get(key))
    return (f"Notice version {version} of {purpose} differs from the configuration history (material flag, "
            "lifetime or existence): the notice versions were changed outside Tessera.")


def policy_config_head() -> tuple[int, str]:
    row = PolicyConfigHead.objects.filter(id=1).values_list("length", "last_link").first()
    return row if row else (0, _config_genesis(_key()))


# --- checkpoints ------------------------------------------------------------------------------------


class CheckpointKeyMissing(Exception):
    pass


def ledger_checkpoint_create(*, path: str | None = None) -> tuple[LedgerCheckpoint, str]:
    """Snapshot every head; returns the checkpoint row and the file's text (JSON Lines).

    The first line is a header (format, time, counts, the configuration chain's head,
    digest of the head lines, key id and Ed25519 signature); each further line is one head
    `{"s", "n", "l", "j", "r"}` (subject, length, last link, jurisdiction, jurisdiction
    changes). Keep the file outside the database: it is what finds chains deleted whole,
    rolled back, or rewritten by someone holding the ledger key.
    """
    signing_key = getattr(settings, "TESSERA_CHECKPOINT_SIGNING_KEY", None)
    if not signing_key:
        raise CheckpointKeyMissing("TESSERA_CHECKPOINT_SIGNING_KEY is not set on this host: checkpoints are "
                                   "signed where the private key is configured.")
    now = timezone.now()
    lines = []
    events = 0
    heads = ChainHead.objects.filter(Q(length__gt=0) | Q(jurisdiction_changes__gt=0)).order_by("profile_id")
    for pid, length, last_link, jurisdiction, changes in heads.values_list(
            "profile_id", "length", "last_link", "jurisdiction", "jurisdiction_changes").iterator(chunk_size=20000):
        lines.append(json.dumps({"s": str(pid), "n": length, "l": last_link, "j": jurisdiction, "r": changes},
                                separators=(",", ":")))
        events += length
    config_length, config_link = policy_config_head()
    created = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    text = checkpoint_sign({"created_at": created, "subjects": len(lines), "events": events,
                            "config": {"n": config_length, "l": config_link}}, lines, signing_key)
    header = json.loads(text.split("\n", 1)[0])
    row = LedgerCheckpoint.objects.create(created_at=now, subjects=len(lines), events=events,
                                          digest=header["digest"], key_id=header["key_id"],
                                          signature=header["signature"], path=path or "")
    return row, text


def checkpoint_parse(text: str) -> dict:
    """A checkpoint file's heads, after checking its signature (or, for a legacy file, its MAC
    under the ledger key); raises CheckpointInvalid.

    Returns created_at, heads (subject → (length, last link, jurisdiction, changes); the
    last two None in legacy files), config ((length, last link) or None) and signed.
    """
    header, _ = checkpoint_lines(text)
    if header.get("format") == LEGACY_CHECKPOINT_FORMAT:
        return _legacy_checkpoint_parse(text)
    if header.get("format") != SIGNED_FORMAT:
        raise CheckpointInvalid("The checkpoint file is not a ledger checkpoint.")
    public_key = getattr(settings, "TESSERA_CHECKPOINT_PUBLIC_KEY", None)
    if not public_key:
        raise CheckpointInvalid("TESSERA_CHECKPOINT_PUBLIC_KEY is not set: the checkpoint's signature cannot be "
                                "checked.")
    header, heads = checkpoint_verify_signature(text, public_key)
    try:
        config = header.get("config") or {}
        return {"created_at": header["created_at"], "signed": True, "key_id": header["key_id"],
                "config": (int(config["n"]), str(config["l"])) if config else None,
                "heads": {UUID(h["s"]): (int(h["n"]), h["l"], h.get("j"), h.get("r")) for h in heads}}
    except (KeyError, TypeError, ValueError):
        raise CheckpointInvalid("The checkpoint file is not a ledger checkpoint.") from None


def _legacy_checkpoint_parse(text: str) -> dict:
    """Checkpoints written before signing: MAC'd with the ledger key, which proves nothing
    against someone holding that key."""
    header, lines = checkpoint_lines(text)
    try:
        heads = [json.loads(line) for line in lines]
    except ValueError:
        raise CheckpointInvalid("The checkpoint file is not a ledger checkpoint.") from None
    digest = heads_digest(lines)
    expected = _mac(_key(), _CHECKPOINT_LABEL, header.get("created_at"), len(heads),
                    sum(int(h.get("n", 0)) for h in heads), digest)
    if digest != header.get("digest") or not hmac.compare_digest(expected, str(header.get("mac"))):
        raise CheckpointInvalid("The checkpoint file fails its MAC: it was altered or made with another ledger key.")
    return {"created_at": header["created_at"], "signed": False, "key_id": None, "config": None,
            "heads": {UUID(h["s"]): (int(h["n"]), h["l"], None, None) for h in heads}}


def _checkpoint_check(checkpoint: dict, heads: dict, report: VerifyReport) -> Finding | None:
    """Every chain in the checkpoint must still exist and extend what the checkpoint saw;
    jurisdictions and the configuration history too."""
    report.checkpoint_subjects = len(checkpoint["heads"])
    at_time = f"the checkpoint of {checkpoint['created_at']}"
    if checkpoint.get("config") and (finding := _checkpoint_config_check(*checkpoint["config"], at_time)):
        return finding
    for pid in sorted(checkpoint["heads"], key=str):
        length, link, *jurisdiction = checkpoint["heads"][pid]
        head = heads.get(pid)
        if length and (head is None or head.length == 0):
            return Finding("chain_deleted", str(pid), 1, None,
                           f"Subject {pid} had {length} consent events at {at_time} and has none now: "
                           "the whole chain was deleted.")
        if length and head.length < length:
            return Finding("chain_rolled_back", str(pid), head.length + 1, None,
                           f"Subject {pid} had {length} consent events at {at_time} and has {head.length} now: "
                           "the chain was rolled back.")
        if length:
            at = ConsentEvent.objects.filter(profile_id=pid, seq=length).values_list("id", "link").first()
            if at is None or at[1] != link:
                return Finding("chain_rewritten", str(pid), length, str(at[0]) if at else None,
                               f"Subject {pid}'s event {length} differs from {at_time}: the chain was rewritten.")
        if jurisdiction and jurisdiction[1] is not None and (finding := _checkpoint_jurisdiction_check(
                pid, head, *jurisdiction, at_time)):
            return finding
    return None


def _checkpoint_jurisdiction_check(pid, head: _Head | None, jurisdiction: str, changes: int,
                                   at_time: str) -> Finding | None:
    now_changes = head.jurisdiction_changes if head else 0
    if now_changes < changes or (now_changes == changes and head.jurisdiction != jurisdiction):
        return Finding("jurisdiction_rolled_back", str(pid), None, None,
                       f"The jurisdiction of subject {pid} differs from {at_time}, and no change of it was "
                       "recorded since: it was rolled back or rewritten.")
    return None


def _checkpoint_config_check(length: int, link: str, at_time: str) -> Finding | None:
    if not length:
        return None
    at = PolicyConfigEvent.objects.filter(seq=length).values_list("link", flat=True).first()
    if at is None:
        return _config_finding("configuration_rolled_back", length, f"The policy configuration history had "
                               f"{length} entries at {at_time} and has fewer now: it was rolled back.")
    if at != link:
        return _config_finding("configuration_rewritten", length, f"Policy configuration entry {length} differs "
                               f"from {at_time}: the configuration history was rewritten.")
    return None
