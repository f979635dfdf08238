"""The policy configuration chain.

Legal bases and notice versions decide consent for everyone at once; every change of them
appends the whole (small) configuration to one HMAC chain, so the verifier can compare
the tables the policy reads with the newest entry.
"""

from __future__ import annotations

import hmac
import json

from django.db import transaction
from django.utils import timezone

from consent.ledger.chain import LedgerBroken, ledger_key, ledger_mac
from consent.ledger.report import Finding
from consent.models import NoticeVersion, PolicyConfigEvent, PolicyConfigHead, PurposeBasis

_CONFIG_LINK_LABEL = b"tessera:policy-config-link:v1"
_CONFIG_GENESIS_LABEL = b"tessera:policy-config-genesis:v1"
_CONFIG_HEAD_LABEL = b"tessera:policy-config-head:v1"

_EMPTY_CONFIG = json.dumps({"bases": [], "notices": []}, separators=(",", ":"))


def policy_config_snapshot() -> str:
    """Canonical JSON of every purpose basis and notice version (what the policy reads of them)."""
    bases = sorted(list(row) for row in PurposeBasis.objects.values_list("purpose", "jurisdiction", "basis"))
    notices = sorted(list(row) for row in NoticeVersion.objects.values_list(
        "purpose", "version", "material", "lifetime_days"))
    return json.dumps({"bases": bases, "notices": notices}, separators=(",", ":"))


def config_link(seq: int, action: str, actor: str, recorded_at, snapshot: str, previous: str, key: bytes) -> str:
    return ledger_mac(key, _CONFIG_LINK_LABEL, previous, seq, action, actor, recorded_at, snapshot)


def config_head_mac(length: int, last_link: str, key: bytes) -> str:
    return ledger_mac(key, _CONFIG_HEAD_LABEL, length, last_link)


def config_genesis(key: bytes) -> str:
    return ledger_mac(key, _CONFIG_GENESIS_LABEL)


def policy_config_record(*, actor: str, action: str) -> PolicyConfigEvent | None:
    """Append the current configuration to its chain, in the caller's transaction, unless it
    equals the newest entry. Call after every change of PurposeBasis or NoticeVersion."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("policy_config_record must run inside the transaction that changed the configuration.")
    key, now = ledger_key(), timezone.now()
    genesis = config_genesis(key)
    PolicyConfigHead.objects.bulk_create([PolicyConfigHead(id=1, length=0, last_link=genesis,
                                                           mac=config_head_mac(0, genesis, key), updated_at=now)],
                                         ignore_conflicts=True)
    head = PolicyConfigHead.objects.select_for_update().get(id=1)
    if not hmac.compare_digest(head.mac, config_head_mac(head.length, head.last_link, key)):
        raise LedgerBroken("The policy configuration chain's head fails its MAC; run verify_consent_ledger.")
    snapshot = policy_config_snapshot()
    newest = PolicyConfigEvent.objects.filter(seq=head.length).values_list("snapshot", flat=True).first()
    if snapshot == (newest if head.length else _EMPTY_CONFIG):
        return None
    event = PolicyConfigEvent(seq=head.length + 1, action=action[:32], actor=(actor or "unknown")[:120],
                              recorded_at=now, snapshot=snapshot)
    event.link = config_link(event.seq, event.action, event.actor, now, snapshot, head.last_link, key)
    event.save()
    head.length, head.last_link = event.seq, event.link
    head.mac, head.updated_at = config_head_mac(head.length, head.last_link, key), now
    head.save(update_fields=["length", "last_link", "mac", "updated_at"])
    return event


def config_check(lifetimes: dict) -> Finding | None:
    """The configuration chain's links and head, and the tables against its newest entry.
    Fills `lifetimes` ((purpose, version) → days) for replaying expiries."""
    key = ledger_key()
    head = PolicyConfigHead.objects.filter(id=1).values_list("length", "last_link", "mac").first()
    previous, length, snapshot = config_genesis(key), 0, _EMPTY_CONFIG
    for seq, action, actor, recorded_at, text, link in PolicyConfigEvent.objects.order_by("seq").values_list(
            "seq", "action", "actor", "recorded_at", "snapshot", "link"):
        if seq != length + 1:
            return config_finding("config_event_deleted", seq, f"Policy configuration entry {seq} follows entry "
                                   f"{length}: entries of the configuration history were deleted.")
        if not hmac.compare_digest(link, config_link(seq, action, actor, recorded_at, text, previous, key)):
            return config_finding("config_link_invalid", seq, f"Policy configuration entry {seq} fails its chain "
                                   "link: the configuration history was edited or forged.")
        previous, length, snapshot = link, seq, text
    if head is None and length:
        return config_finding("config_head_missing", length, "The policy configuration chain has no head: "
                               "it was deleted.")
    if head is not None:
        if not hmac.compare_digest(head[2], config_head_mac(head[0], head[1], key)):
            return config_finding("config_head_forged", head[0], "The policy configuration chain's head fails its "
                                   "MAC: it was altered.")
        if head[0] != length or head[1] != previous:
            return config_finding("config_tail_deleted", length + 1, f"The policy configuration history ends at "
                                   f"entry {length} but its head records {head[0]}: entries were deleted.")
    current = policy_config_snapshot()
    for purpose, version, _, days in json.loads(current)["notices"]:
        lifetimes[(purpose, version)] = days
    if current != snapshot:
        return config_finding("configuration_mismatch", length, _config_difference(json.loads(snapshot),
                                                                                     json.loads(current)))
    return None


def config_finding(code: str, position: int, message: str) -> Finding:
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
    return row if row else (0, config_genesis(ledger_key()))
