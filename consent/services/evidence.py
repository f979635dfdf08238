"""A per-subject evidence bundle: everything consent holds on one person, signed, so an
auditor can check it away from Tessera (python -m consent.evidence_verify).

The bundle holds the consent timeline with each event's previous link and link (its
HMAC), the receipts, the notice texts as shown, the served-notice records, the access log,
the data-subject requests, and the check of the person's chains made at export time; it is
signed with the checkpoint signing key (Ed25519), as ledger checkpoints are. Ids, codes and
keyed hashes only, as in the ledger; no key is ever written into it.
"""

from __future__ import annotations

from datetime import UTC
from uuid import UUID

from django.conf import settings
from django.utils import timezone

from consent.events import operator_action_event
from consent.evidence_verify import BUNDLE_FORMAT, bundle_sign
from consent.ledger import CheckpointKeyMissing, event_link, genesis_link, head_mac
from consent.ledger.chain import LINKED_FIELDS
from consent.models import AccessLog, ChainHead, ConsentEvent, DataSubjectRequest, ServedNotice
from consent.notices import notice_text
from consent.receipts import receipts_for_events
from consent.selectors import access_log_as_dict, consent_decisions, consent_event_evidence, ledger_status
from consent.services.dsr import dsr_as_dict

EVIDENCE_EXPORTED = "evidence_bundle_export"


def evidence_bundle_build(*, profile_id, aliases: list, actor: str) -> tuple[str, bytes]:
    """The signed bundle of one person (and the ids merged into them): (file name, bytes).

    The download is written to the access log first, so the bundle shows it too. Raises
    CheckpointKeyMissing where no signing key is configured.
    """
    signing_key = getattr(settings, "TESSERA_CHECKPOINT_SIGNING_KEY", None)
    if not signing_key:
        raise CheckpointKeyMissing("TESSERA_CHECKPOINT_SIGNING_KEY is not set on this host: evidence bundles are "
                                   "signed where the private key is configured.")
    pid = UUID(str(profile_id))
    subjects = [pid, *(UUID(str(a)) for a in aliases)]
    operator_action_event(actor=actor, action=EVIDENCE_EXPORTED, profile_id=pid,
                          detail={"subjects": len(subjects)})
    events = list(ConsentEvent.objects.filter(profile_id__in=subjects).order_by("profile_id", "seq"))
    words = consent_decisions(events)
    previous = _previous_links(events)
    timeline = [{**consent_event_evidence(e, previous[e.id]), "decision": words[e.id]} for e in events]
    served = list(ServedNotice.objects.filter(profile_id__in=subjects).order_by("served_at", "id"))
    shown = sorted({(e.purpose, e.notice_version, e.language or "en") for e in events}
                   | {(n.purpose, n.notice_version, n.language) for n in served})
    now = timezone.now()
    bundle = {
        "format": BUNDLE_FORMAT,
        "created_at": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "subject": str(pid), "merged_ids": [str(s) for s in subjects[1:]],
        "linked_fields": list(LINKED_FIELDS),
        "timeline": timeline,
        "receipts": receipts_for_events(events),
        "notice_texts": [{**notice_text(purpose=p, version=v, language=lang), "asked_language": lang}
                         for p, v, lang in shown],
        "served_notices": [{"purpose": n.purpose, "notice_version": n.notice_version, "language": n.language,
                            "channel": n.channel, "served_at": n.served_at.isoformat()} for n in served],
        "access_log": [access_log_as_dict(a) for a in
                       AccessLog.objects.filter(profile_id__in=subjects).order_by("at", "id")],
        "data_subject_requests": [dsr_as_dict(r, with_result=False) for r in
                                  DataSubjectRequest.objects.filter(profile_id__in=subjects).order_by("received_at")],
        "verification": _verification(subjects, events),
    }
    return f"evidence-{pid}-{now:%Y%m%dT%H%M%SZ}.json", bundle_sign(bundle, signing_key)


def _previous_links(events: list[ConsentEvent]) -> dict:
    """Event id → the link before it (the chain's genesis link for the first event)."""
    previous, last = {}, {}
    for event in events:  # by subject, then position
        previous[event.id] = last.get(event.profile_id) or genesis_link(event.profile_id)
        last[event.profile_id] = event.link
    return previous


def _verification(subjects: list[UUID], events: list[ConsentEvent]) -> dict:
    """These chains recomputed with the ledger key now, each head's MAC, and the newest
    whole-ledger verification."""
    heads = {h.profile_id: h for h in ChainHead.objects.filter(profile_id__in=subjects)}
    findings = []
    for pid in subjects:
        chain = [e for e in events if e.profile_id == pid]
        link = genesis_link(pid)
        for position, event in enumerate(chain, start=1):
            if event.seq != position:
                findings.append(f"Subject {pid} has no event at position {position}.")
                break
            link = event_link({name: getattr(event, name) for name in LINKED_FIELDS}, link)
            if link != event.link:
                findings.append(f"Subject {pid}'s event {position} fails its link: it was altered.")
                break
        head = heads.get(pid)
        if chain and head is None:
            findings.append(f"Subject {pid}'s chain has no head.")
        elif head is not None and (head.mac != head_mac(pid, head.length, head.last_link, head.jurisdiction,
                                                        head.jurisdiction_changes)
                                   or head.length != len(chain) or (chain and head.last_link != chain[-1].link)):
            findings.append(f"Subject {pid}'s chain head does not match its chain.")
    last = ledger_status()["last"]
    return {"result": "intact" if not findings else "broken", "findings": findings,
            "chains": len(subjects), "events": len(events),
            "last_ledger_verification": access_log_as_dict(last) if last else None}
