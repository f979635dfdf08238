"""Kantara Initiative Consent Receipt v1.1 documents, one per ledger event.

The receipt names the subject by pseudonymous profile id (`piiPrincipalId`): it is
handed to the person, who knows who they are, and it holds no personal value. The
controller's details come from settings (TESSERA_CONTROLLER_*), with neutral defaults.
"""

from __future__ import annotations

from django.conf import settings

from consent.models import Basis, ConsentEvent
from consent.notices import notice_text

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


def _setting(name: str, default: str) -> str:
    return getattr(settings, name, None) or default


def receipt_for_event(event: ConsentEvent) -> dict:
    text = notice_text(purpose=event.purpose, version=event.notice_version, language=event.language or "en")
    controller = _setting("TESSERA_CONTROLLER_NAME", "Tessera operator")
    policy_url = _setting("TESSERA_PRIVACY_POLICY_URL", "https://tessera.invalid/privacy")
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
            "piiController": controller,
            "onBehalf": False,
            "contact": _setting("TESSERA_CONTROLLER_CONTACT", "Data protection officer"),
            "address": _setting("TESSERA_CONTROLLER_ADDRESS", "—"),
            "email": _setting("TESSERA_CONTROLLER_EMAIL", "privacy@tessera.invalid"),
            "phone": _setting("TESSERA_CONTROLLER_PHONE", "—"),
        }],
        "policyUrl": policy_url,
        "services": [{
            "service": "Tessera customer data platform",
            "purposes": [{
                "purpose": f"{text['title']}: {text['body']}",
                "purposeCategory": [_PURPOSE_CATEGORIES.get(event.purpose, event.purpose)],
                "consentType": _CONSENT_TYPES.get(event.basis, "EXPLICIT"),
                "piiCategory": _PII_CATEGORIES.get(event.purpose, []),
                "primaryPurpose": event.purpose == "personalization",
                "termination": "Until withdrawn" if event.granted else "Withdrawn",
                "thirdPartyDisclosure": event.purpose in ("sale_sharing", "enrichment"),
                "thirdPartyName": None,
            }],
        }],
        "sensitive": False,
        "spiCat": [],
        # Extensions (the specification allows additional members):
        "tessera": {
            "purpose": event.purpose, "granted": event.granted, "noticeVersion": event.notice_version,
            "basis": event.basis, "channel": event.channel, "recordedAt": event.recorded_at.isoformat(),
            "ledgerPosition": event.seq, "ledgerLink": event.link,
        },
    }
