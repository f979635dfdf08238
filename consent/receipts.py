"""Kantara Initiative Consent Receipt v1.1 documents, one per ledger event.

The receipt names the subject by pseudonymous profile id (`piiPrincipalId`): it is
handed to the person, who knows who they are, and it holds no personal value. The
controller's details come from settings (TESSERA_CONTROLLER_*); a detail that is not
configured is an empty string, never a made-up value. `termination` and the `tessera.decision`
extension say what the event was: a grant, a first refusal (declined) or a refusal after a
grant (withdrawn); `tessera.statusNow` says when a grant still in force has lapsed
(expired, or re-consent required after a material notice change).
"""

from __future__ import annotations

from django.conf import settings

from consent.models import Basis, ConsentEvent
from consent.notices import notice_text
from consent.policy import EXPIRED, consent_decisions, consent_grants_lapsed

RECEIPT_VERSION = "KI-CR-v1.1.0"

_PURPOSE_CATEGORIES = {
    "analytics": "Improve Existing Products and Services",
    "personalization": "Personalisation",
    "marketing": "Marketing",
    "enrichment": "Core Function",
    "sale_sharing": "Sharing for Commercial Purposes",
}
_PII_CATEGORIES = {
    "analytics": ["Behavioural"], "personalization": ["Behavioural", "Transactional"],
    "marketing": ["Contact"], "enrichment": ["Demographic"], "sale_sharing": ["Contact", "Behavioural"],
}
_CONSENT_TYPES = {Basis.CONSENT: "EXPLICIT", Basis.LEGITIMATE_INTEREST: "IMPLICIT", Basis.CONTRACT: "IMPLICIT"}


def _setting(name: str) -> str | None:
    return getattr(settings, name, None) or None


def controller_details() -> dict:
    """The organisation responsible for the data (the controller), as configured."""
    return {"name": _setting("TESSERA_CONTROLLER_NAME"), "address": _setting("TESSERA_CONTROLLER_ADDRESS"),
            "email": _setting("TESSERA_CONTROLLER_EMAIL"), "phone": _setting("TESSERA_CONTROLLER_PHONE"),
            "contact": _setting("TESSERA_CONTROLLER_CONTACT"),
            "policy_url": _setting("TESSERA_PRIVACY_POLICY_URL")}


def _day(value) -> str:
    return value.strftime("%Y-%m-%d")


def _termination(event: ConsentEvent, decision: str, lapsed: tuple | None) -> str:
    if decision == "declined":
        return "Declined: consent was not given"
    if decision == "withdrawn":
        return f"Withdrawn on {_day(event.occurred_at)}: consent ended"
    if lapsed is not None:
        status, expires_at = lapsed
        if status == EXPIRED:
            return f"Expired on {_day(expires_at)}"
        return "Re-consent required: the notice changed since this consent was given"
    return "Until withdrawn"


def receipts_for_events(events) -> list[dict]:
    """The receipts of one person's events (pass their whole history: the words read it)."""
    events = sorted(events, key=lambda e: (str(e.profile_id), e.seq))
    words, lapsed = consent_decisions(events), consent_grants_lapsed(events)
    return [receipt_for_event(e, decision=words[e.id], lapsed=lapsed.get(e.id)) for e in events]


def receipt_for_event(event: ConsentEvent, *, decision: str, lapsed: tuple | None = None) -> dict:
    """`decision`: consent_decisions' word for the event; `lapsed`: consent_grants_lapsed's."""
    text = notice_text(purpose=event.purpose, version=event.notice_version, language=event.language or "en")
    controller = controller_details()
    return {
        "version": RECEIPT_VERSION,
        "jurisdiction": event.jurisdiction or "*",
        "consentTimestamp": int(event.occurred_at.timestamp()),
        "collectionMethod": event.channel,
        "consentReceiptID": str(event.id),
        "publicKey": None,
        "language": text["language"],
        "piiPrincipalId": str(event.profile_id),
        "piiControllers": [{
            # Kantara requires these strings: an unset one is empty, never a made-up value.
            "piiController": controller["name"] or "",
            "onBehalf": False,
            "contact": controller["contact"] or "",
            "address": controller["address"] or "",
            "email": controller["email"] or "",
            "phone": controller["phone"] or "",
        }],
        "policyUrl": controller["policy_url"] or "",
        "services": [{
            "service": "Tessera customer data platform",
            "purposes": [{
                "purpose": f"{text['title']}: {text['body']}",
                "purposeCategory": [_PURPOSE_CATEGORIES.get(event.purpose, event.purpose)],
                "consentType": _CONSENT_TYPES.get(event.basis, "EXPLICIT"),
                "piiCategory": _PII_CATEGORIES.get(event.purpose, []),
                "primaryPurpose": event.purpose == "personalization",
                "termination": _termination(event, decision, lapsed),
                "thirdPartyDisclosure": event.purpose in ("sale_sharing", "enrichment"),
                "thirdPartyName": None,
            }],
        }],
        "sensitive": False,
        "spiCat": [],
        # Extensions (the specification allows additional members):
        "tessera": {
            "purpose": event.purpose, "granted": event.granted, "decision": decision,
            "statusNow": lapsed[0] if lapsed else None, "noticeVersion": event.notice_version,
            "basis": event.basis, "channel": event.channel, "recordedAt": event.recorded_at.isoformat(),
            "ledgerPosition": event.seq, "ledgerLink": event.link,
        },
    }
