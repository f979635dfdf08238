"""The consent chains: HMAC links, MAC'd heads, and appending under the head locks.

The key (TESSERA_LEDGER_KEY) lives only in the environment; see the package docstring for
what the chains let the verifier find.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from consent.models import DEFAULT_JURISDICTION, ChainHead, ConsentEvent, Subject

LINK_LABEL = b"tessera:consent-link:v1"
LINK_LABEL_NOTED = b"tessera:consent-link-noted:v1"
_GENESIS_LABEL = b"tessera:consent-genesis:v1"
_HEAD_LABEL = b"tessera:consent-head:v2"

# Every field of an event that the link covers, in order (the link itself excluded). The
# evidence note came last and later: an event without one is linked as every event was
# before it existed (LINK_LABEL, the note left out), so the ledger's older events verify
# unchanged; an event with one under its own label with the note. Adding, editing or
# removing a note therefore breaks the event's link like any other edit.
LINKED_FIELDS = ("id", "profile_id", "seq", "purpose", "granted", "notice_version", "basis", "channel", "actor",
                 "source", "jurisdiction", "language", "ip_hash", "user_agent_hash", "occurred_at", "recorded_at",
                 "evidence_note")


def ledger_key() -> bytes:
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


def ledger_mac(key: bytes, label: bytes, *parts) -> str:
    # One buffer, one HMAC call: verification runs this a million times.
    return hmac.new(key, label + b"".join(map(_part, parts)), hashlib.sha256).hexdigest()


def genesis_link(profile_id, *, key: bytes | None = None) -> str:
    return ledger_mac(key or ledger_key(), _GENESIS_LABEL, str(profile_id))


def event_link(values: dict | tuple, previous_link: str, *, key: bytes | None = None) -> str:
    """The link of an event given its fields (a dict, or a tuple in LINKED_FIELDS order)."""
    if isinstance(values, dict):
        values = tuple(values[name] for name in LINKED_FIELDS)
    return link_compute(key or ledger_key(), previous_link, values)


def link_compute(key: bytes, previous_link: str, values) -> str:
    """The link of the values in LINKED_FIELDS order (the evidence note last)."""
    if values[-1]:
        return ledger_mac(key, LINK_LABEL_NOTED, previous_link, *values)
    return ledger_mac(key, LINK_LABEL, previous_link, *values[:-1])


def head_mac(profile_id, length: int, last_link: str, jurisdiction: str = DEFAULT_JURISDICTION,
             jurisdiction_changes: int = 0, *, key: bytes | None = None) -> str:
    return ledger_mac(key or ledger_key(), _HEAD_LABEL, str(profile_id), length, last_link, jurisdiction,
                      jurisdiction_changes)


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
