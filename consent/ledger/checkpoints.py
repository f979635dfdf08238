"""Checkpoints of every chain head: signed exports kept outside the database, and the check
of the ledger against one (chains deleted whole, rolled back or rewritten)."""

from __future__ import annotations

import hmac
import json
from datetime import UTC
from uuid import UUID

from django.conf import settings
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
from consent.ledger.chain import ledger_key, ledger_mac
from consent.ledger.config import config_finding, policy_config_head
from consent.ledger.report import Finding, HeadRow, VerifyReport
from consent.models import ChainHead, ConsentEvent, LedgerCheckpoint, PolicyConfigEvent

CHECKPOINT_LABEL = b"tessera:consent-checkpoint:v1"
LEGACY_CHECKPOINT_FORMAT = "tessera-ledger-checkpoint/1"  # MAC'd with the ledger key: read, no longer written


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
    expected = ledger_mac(ledger_key(), CHECKPOINT_LABEL, header.get("created_at"), len(heads),
                    sum(int(h.get("n", 0)) for h in heads), digest)
    if digest != header.get("digest") or not hmac.compare_digest(expected, str(header.get("mac"))):
        raise CheckpointInvalid("The checkpoint file fails its MAC: it was altered or made with another ledger key.")
    return {"created_at": header["created_at"], "signed": False, "key_id": None, "config": None,
            "heads": {UUID(h["s"]): (int(h["n"]), h["l"], None, None) for h in heads}}


def checkpoint_check(checkpoint: dict, heads: dict, report: VerifyReport) -> Finding | None:
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


def _checkpoint_jurisdiction_check(pid, head: HeadRow | None, jurisdiction: str, changes: int,
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
        return config_finding("configuration_rolled_back", length, f"The policy configuration history had "
                               f"{length} entries at {at_time} and has fewer now: it was rolled back.")
    if at != link:
        return config_finding("configuration_rewritten", length, f"Policy configuration entry {length} differs "
                               f"from {at_time}: the configuration history was rewritten.")
    return None
