"""Issue #22: the ledger page's verification history is paged (it showed the newest 10 only)
and filtered by outcome and a date range, by a GET form that works without JavaScript."""

# ruff: noqa: F811 - pytest fixtures are imported from web_helpers and named as arguments

from __future__ import annotations

import pytest
from django.utils import timezone
from web_helpers import _fresh_cache, officer, officer_client, staff_user  # noqa: F401

from consent.models import AccessKind, AccessLog

pytestmark = pytest.mark.django_db


def _history(html: str) -> str:
    return html.split('id="verifications"')[1].split("</table>")[0] if 'id="verifications"' in html else ""


def _verified(officer, *, intact: bool, days_ago: int = 0) -> None:
    # Written as consent.events.operator_action_event writes it, at a chosen time (rows are append-only).
    AccessLog.objects.create(at=timezone.now() - timezone.timedelta(days=days_ago), kind=AccessKind.OPERATOR_ACTION,
                             actor=f"staff:{officer.pk}", purpose="ledger_verified",
                             detail={"intact": intact, "events": 3, "subjects": 1,
                                     **({} if intact else {"message": "Chain of one subject is broken."})})


def test_verification_history_pages_and_filters_by_outcome_and_date(officer_client, officer):
    for _ in range(26):
        _verified(officer, intact=True)
    _verified(officer, intact=False, days_ago=40)
    page = officer_client.get("/compliance/ledger/").content.decode()
    assert "1–25 of 27" in page and "?page=2" in page
    second = _history(officer_client.get("/compliance/ledger/?page=2").content.decode())
    assert second.count("<tr>") == 3 and "Chain of one subject is broken." in second  # header and 2 rows
    broken = officer_client.get("/compliance/ledger/?outcome=broken").content.decode()
    assert "1–1 of 1" in broken and "broken" in _history(broken) and "intact" not in _history(broken)
    assert "1–25 of 26" in officer_client.get("/compliance/ledger/?outcome=intact").content.decode()
    recent_from = (timezone.localdate() - timezone.timedelta(days=7)).isoformat()
    recent = officer_client.get(f"/compliance/ledger/?date_from={recent_from}").content.decode()
    assert "1–25 of 26" in recent and "outcome=" not in recent.split('class="pager"')[1].split("</nav>")[0] \
        and f"date_from={recent_from}&amp;page=2" in recent
    none = officer_client.get(f"/compliance/ledger/?outcome=broken&date_from={recent_from}").content.decode()
    assert "No verification matches" in none
    bad = officer_client.get("/compliance/ledger/?date_from=2026-02-02&date_to=2026-01-01")
    assert bad.status_code == 400 and b"before the start date" in bad.content
