"""Global Privacy Control: `Sec-GPC: 1` on a request made for a person is their opt-out
of sale and sharing (recorded as its own ledger event, channel `gpc`, once).

Any view that acts for one person (consent endpoints, the preference center, a profile
or recommendations read) calls `gpc_apply(request, profile_id=..., actor=...)`.
"""

from __future__ import annotations

from uuid import UUID

from consent.services.consents import Evidence, consent_gpc_signal


def evidence_of(request) -> Evidence:
    """IP address and user agent of a request, hashed before they are stored."""
    return Evidence(ip=request.META.get("REMOTE_ADDR") or None,
                    user_agent=request.META.get("HTTP_USER_AGENT") or None)


def gpc_signalled(request) -> bool:
    return request.headers.get("Sec-GPC", "").strip() == "1"


def gpc_apply(request, *, profile_id: UUID, actor: str) -> bool:
    """Record the opt-out if the request carries the signal; True when one was recorded."""
    if not gpc_signalled(request):
        return False
    return consent_gpc_signal(profile_id=profile_id, actor=actor, evidence=evidence_of(request)) is not None
