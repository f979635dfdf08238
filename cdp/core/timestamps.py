"""Timestamps as CRMs, shops and SDKs send them, read one way everywhere.

Accepted: RFC 3339 / ISO 8601 date-times with or without an offset (`Z`, `+02:00`),
a space instead of `T`, fractional seconds, and dates alone (midnight). A value without an
offset is taken in `default_zone` (UTC unless the caller knows better). Anything else,
including well-formed but impossible values (month 13, hour 25), is None, for the caller to
answer with an error naming its field: never an exception.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError
from django.utils.dateparse import parse_datetime

MAX_LENGTH = 64  # longer text is no timestamp: not worth parsing


def parse_timestamp(raw, *, default_zone: tzinfo = UTC) -> datetime | None:
    if not isinstance(raw, str) or len(raw) > MAX_LENGTH:
        return None
    try:
        value = parse_datetime(raw.strip())  # date-only values too (datetime.fromisoformat)
    except (ValueError, OverflowError):
        return None  # the right shape, an impossible date or time
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=default_zone)


INVALID_TIME_ZONE = "invalid_time_zone"


def time_zone_validate(name: str) -> None:
    """A model field validator: an IANA time zone name (e.g. Europe/Paris), or empty."""
    if not name:
        return
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError("Use an IANA time zone name such as Europe/Paris.", code=INVALID_TIME_ZONE) from None
