"""Cursor pagination: `?limit=` (default 100, max 1000) and an opaque `?cursor=`.

The cursor is the ordering key of the last row handed out (base64 of JSON), so pages
stay stable while rows are added, and a page costs one indexed range query.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet

from cdp.core.errors import ApplicationError
from cdp.core.http.errors import ApiErrorCode

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass
class Page:
    rows: list
    next_cursor: str | None


def page_limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    if not raw.isdigit() or int(raw) < 1:
        raise ApplicationError("limit must be a whole number from 1.", code=ApiErrorCode.INVALID_LIMIT)
    return min(int(raw), MAX_LIMIT)


def cursor_encode(values: list) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, default=str).encode()).decode().rstrip("=")


def cursor_decode(cursor: str, *, size: int) -> list:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        values = None
    if not isinstance(values, list) or len(values) != size or not all(isinstance(v, str) for v in values):
        raise ApplicationError("The cursor is not valid; start again without one.", code=ApiErrorCode.INVALID_CURSOR)
    return values


def paginate(queryset: QuerySet, *, query_params, ordering: tuple[str, ...] = ("created_at", "id")) -> Page:
    """One page of `queryset` in `ordering` (ascending, unique as a whole) after the cursor."""
    limit = page_limit(query_params.get("limit"))
    queryset = queryset.order_by(*ordering)
    cursor = query_params.get("cursor")
    if cursor:
        queryset = queryset.filter(_after(queryset.model, ordering, cursor_decode(cursor, size=len(ordering))))
    rows = list(queryset[:limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = cursor_encode([_cursor_value(getattr(rows[-1], f)) for f in ordering]) if more else None
    return Page(rows, next_cursor)


def _cursor_value(value) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _after(model, ordering: tuple[str, ...], raw_values: list) -> Q:
    """Rows strictly after the key, in lexicographic order of the ordering fields."""
    try:
        values = [model._meta.get_field(f).to_python(v) for f, v in zip(ordering, raw_values)]
    except (ValidationError, ValueError):
        raise ApplicationError("The cursor is not valid; start again without one.",
                               code=ApiErrorCode.INVALID_CURSOR) from None
    if any(v is None for v in values):
        raise ApplicationError("The cursor is not valid; start again without one.", code=ApiErrorCode.INVALID_CURSOR)
    condition = Q()
    for i, field in enumerate(ordering):
        step = Q(**{f"{field}__gt": values[i]})
        for earlier, value in zip(ordering[:i], values[:i]):
            step &= Q(**{earlier: value})
        condition |= step
    return condition
