"""The viewer's time zone on the staff pages: chosen once, remembered, shown on every time.

Times are stored in UTC; a compliance officer in Paris reads them in Paris time, and every
time on the page carries its zone's name (`web_extras.when`). The choice lives in a
cookie (a zone name is not personal), so it survives signing out and in again on the same
browser; the middleware activates it for /compliance/, /ops/ and /staff/ only, leaving the
customer's pages to their own rules.
"""

from __future__ import annotations

import zoneinfo

from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme

COOKIE = "tessera_staff_tz"
COOKIE_AGE = 365 * 24 * 3600
STAFF_PREFIXES = ("/compliance/", "/ops/", "/staff/")
# The zones offered in the header (any IANA name is accepted when posted).
ZONES = ("UTC", "Europe/London", "Europe/Dublin", "Europe/Lisbon", "Europe/Paris", "Europe/Berlin",
         "Europe/Madrid", "Europe/Rome", "Europe/Amsterdam", "Europe/Brussels", "Europe/Stockholm",
         "Europe/Warsaw", "Europe/Athens", "Europe/Helsinki", "America/New_York", "America/Chicago",
         "America/Denver", "America/Los_Angeles", "America/Sao_Paulo", "Asia/Dubai", "Asia/Kolkata",
         "Asia/Singapore", "Asia/Tokyo", "Australia/Sydney", "Pacific/Auckland")


def zone_valid(name: str | None) -> str | None:
    """The IANA zone name if it is one, else None."""
    if not name or len(name) > 64:
        return None
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None
    return name


def zone_of(request) -> str:
    return zone_valid(request.COOKIES.get(COOKIE)) or "UTC"


class StaffTimezoneMiddleware:
    """Activates the viewer's chosen zone on the staff pages (UTC until they choose)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith(STAFF_PREFIXES):
            timezone.activate(zoneinfo.ZoneInfo(zone_of(request)))
            try:
                return self.get_response(request)
            finally:
                timezone.deactivate()
        return self.get_response(request)


def safe_next(request, fallback: str) -> str:
    target = request.POST.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                       require_https=request.is_secure()) and target.startswith("/"):
        return target
    return fallback
