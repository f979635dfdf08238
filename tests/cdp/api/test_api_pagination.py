"""The one cursor pager (cdp.core.http.pagination.paginate), its `keep` filter and its error codes.

Every cursor-paginated list of the API goes through it (the change feed, whose cursor is a
position that never ends, is the contract's exception), so bad cursors and limits answer
the same codes everywhere.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.http import QueryDict

from cdp.core.errors import ApplicationError
from cdp.core.http import pagination
from cdp.core.http.errors import ApiErrorCode
from cdp.core.http.pagination import cursor_encode, paginate
from consent.events import operator_action_event
from consent.models import AccessLog

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[3]
PAGER_HELPERS = {"cursor_encode", "cursor_decode"}


def params(**values) -> QueryDict:
    query = QueryDict(mutable=True)
    query.update({k: str(v) for k, v in values.items()})
    return query


@pytest.fixture
def rows(db):
    for i in range(23):
        operator_action_event(actor="test", action=f"a{i}")
    return list(AccessLog.objects.order_by("id"))


def walk(keep=None, limit=4) -> tuple[list, list[int]]:
    seen, sizes, cursor = [], [], None
    while True:
        page = paginate(AccessLog.objects.all(), query_params=params(limit=limit, **({"cursor": cursor} if cursor
                                                                                       else {})),
                        ordering=("id",), keep=keep)
        seen += page.rows
        sizes.append(len(page.rows))
        cursor = page.next_cursor
        if cursor is None:
            return seen, sizes


def test_pages_follow_each_other_without_gaps_or_repeats(rows):
    seen, sizes = walk()
    assert seen == rows and sizes == [4, 4, 4, 4, 4, 3]


@pytest.mark.parametrize("scan_batch", [1, 3, 500])
def test_kept_rows_fill_every_page_and_the_last_cursor_is_null(rows, monkeypatch, scan_batch):
    """A list filtered outside the database (consent, a key's boundary) still gives full
    pages, in order, across scan batches; before, members pages were a hand-rolled loop."""
    monkeypatch.setattr(pagination, "SCAN_BATCH", scan_batch)
    wanted = [r for r in rows if r.id % 3 == 0]
    seen, sizes = walk(keep=lambda batch: [r for r in batch if r.id % 3 == 0], limit=2)
    assert seen == wanted
    assert all(size == 2 for size in sizes[:-1]) and sizes[-1] in (1, 2)


def test_nothing_kept_is_one_empty_page(rows):
    assert walk(keep=lambda batch: []) == ([], [0])


@pytest.mark.parametrize("query, code", [
    ({"cursor": "not base64!"}, ApiErrorCode.INVALID_CURSOR),
    ({"cursor": cursor_encode(["x"])}, ApiErrorCode.INVALID_CURSOR),
    ({"cursor": cursor_encode(["1", "2"])}, ApiErrorCode.INVALID_CURSOR),
    ({"limit": "0"}, ApiErrorCode.INVALID_LIMIT),
    ({"limit": "ten"}, ApiErrorCode.INVALID_LIMIT),
])
def test_bad_cursors_and_limits_carry_the_enums_codes(db, query, code):
    with pytest.raises(ApplicationError) as error:
        paginate(AccessLog.objects.all(), query_params=params(**query), ordering=("id",))
    assert error.value.code == code


def test_no_view_rolls_its_own_cursor():
    """Views page through `paginate` only: none encodes or decodes a cursor itself
    (personalization's views did, twice, with literal error codes)."""
    offenders = []
    for folder in ("cdp/api/v1/views", "cdp/webhooks/api", "consent/api", "personalization/api", "web/views"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.ImportFrom) else []
                if isinstance(node, ast.Name):
                    names = [node.id]
                offenders += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names if n in PAGER_HELPERS]
    assert not offenders, offenders
