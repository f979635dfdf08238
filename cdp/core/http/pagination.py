"""Cursor pagination: `?limit=` (default 100, max 1000) and an opaque `?cursor=`.

The one pager of the API (`paginate`): the cursor is the ordering key of the last row
handed out (base64 of JSON), so pages stay stable while rows are added, and a page costs
one indexed range query. Lists whose rows are filtered outside the database (consent,
a key's boundary) pass `keep`; the pager then reads batches until the page is full.
Its errors carry `ApiErrorCode.INVALID_CURSOR` and `INVALID_LIMIT`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet

from cdp.core.errors import ApplicationError
from cdp.core.http.errors import ApiErrorCode

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
SCAN_BATCH = 500  # rows read at a time when `keep` filters them


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
        raise _invalid_cursor()
    return values


def paginate(queryset: QuerySet, *, query_params: Mapping, ordering: tuple[str, ...] = ("created_at", "id"),
             keep: Callable[[list], list] | None = None) -> Page:
    """One page of `queryset` in `ordering` (ascending, unique as a whole) after the cursor.

    `keep(rows)` returns the rows (of a batch, in order) the caller may hand out; the page
    then holds `limit` kept rows whenever that many exist, and `next_cursor` is null only
    when no kept row follows.
    """
    limit = page_limit(query_params.get("limit"))
    queryset = queryset.order_by(*ordering)
    cursor = query_params.get("cursor")
    if cursor:
        queryset = queryset.filter(_after(ordering, _cursor_key(queryset.model, ordering, cursor)))
    rows = list(queryset[:limit + 1]) if keep is None else _kept_rows(queryset, ordering, limit + 1, keep)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = cursor_encode([_cursor_value(getattr(rows[-1], f)) for f in ordering]) if more else None
    return Page(rows, next_cursor)


def _kept_rows(queryset: QuerySet, ordering: tuple[str, ...], wanted: int, keep: Callable[[list], list]) -> list:
    found: list = []
    scan = queryset
    size = max(wanted, SCAN_BATCH)
    while len(found) < wanted:
        batch = list(scan[:size])
        found += keep(batch) if batch else []
        if len(batch) < size:
            break
        scan = queryset.filter(_after(ordering, [getattr(batch[-1], f) for f in ordering]))
    return found[:wanted]


def _cursor_value(value) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _invalid_cursor() -> ApplicationError:
    return ApplicationError("The cursor is not valid; start again without one.", code=ApiErrorCode.INVALID_CURSOR)


def _cursor_key(model, ordering: tuple[str, ...], cursor: str) -> list:
    """The ordering key a cursor names, as the fields' Python values."""
    raw_values = cursor_decode(cursor, size=len(ordering))
    try:
        values = [model._meta.get_field(f).to_python(v) for f, v in zip(ordering, raw_values)]
    except (ValidationError, ValueError, TypeError):
        raise _invalid_cursor() from None
    if any(v is None for v in values):
        raise _invalid_cursor()
    return values


def _after(ordering: tuple[str, ...], values: list) -> Q:
    """Rows strictly after the key, in lexicographic order of the ordering fields."""
    condition = Q()
    for i, field in enumerate(ordering):
        step = Q(**{f"{field}__gt": values[i]})
        for earlier, value in zip(ordering[:i], values[:i]):
            step &= Q(**{earlier: value})
        condition |= step
    return condition
