"""Global Privacy Control: `Sec-GPC: 1` on a request made for a person is their opt-out
of sale and sharing (recorded as its own ledger event, channel `gpc`, once).

Views do not record it themselves: they describe the request with `accessor_of`, and
the selectors and services that act for one person honour the signal
(consent.services.access.subject_signals_honour), as they write the access log.
"""

from __future__ import annotations

from consent.services.access import Accessor
from consent.services.consents import Evidence


def evidence_of(request) -> Evidence:
    """IP address and user agent of a request, hashed before they are stored."""
    return Evidence(ip=request.META.get("REMOTE_ADDR") or None,
                    user_agent=request.META.get("HTTP_USER_AGENT") or None)


def gpc_signalled(request) -> bool:
    return request.headers.get("Sec-GPC", "").strip() == "1"


def accessor_of(request, *, actor: str) -> Accessor:
    """Who a request reads or acts as, with the signals it carries."""
    return Accessor(actor=actor, gpc=gpc_signalled(request), evidence=evidence_of(request))
