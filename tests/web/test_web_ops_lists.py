"""Issue #22, finding things on the dashboard: every list under /ops/ is filtered and paged
(ingestion errors, webhook deliveries, merges and refused merges, campaigns), by GET forms
that work without JavaScript."""

# ruff: noqa: F811 - pytest fixtures are imported from web_helpers and named as arguments

from __future__ import annotations

import pytest
from django.utils import timezone
from web_helpers import _fresh_cache, ada, bob, operator, operator_client, shop, staff_user  # noqa: F401

pytestmark = pytest.mark.django_db


def _table(html: str, table_id: str) -> str:
    return html.split(f'id="{table_id}"')[1].split("</table>")[0] if f'id="{table_id}"' in html else ""


def test_ingestion_errors_filter_by_source_and_error_and_page(operator_client, shop, source_factory):
    from cdp.segment.models import IngestionError

    app = source_factory("app", trust=50)
    for _ in range(30):
        IngestionError.objects.create(source=shop, message_type="track", codes=["invalid_timestamp"],
                                      message=b"sealed")
    IngestionError.objects.create(source=app, message_type="identify", codes=["unknown_type"], message=b"sealed")
    first = operator_client.get("/ops/ingestion/").content.decode()
    assert "1–25 of 31" in first and "?page=2" in first
    only_app = _table(operator_client.get("/ops/ingestion/?source=app").content.decode(), "ingestion-errors")
    assert only_app.count("<tr><td>") == 1 and "Unknown type" in only_app
    by_code = operator_client.get("/ops/ingestion/?code=invalid_timestamp").content.decode()
    assert "1–25 of 30" in by_code and "code=invalid_timestamp&amp;page=2" in by_code
    future = (timezone.localdate() + timezone.timedelta(days=1)).isoformat()
    assert "No ingestion error matches" in operator_client.get(f"/ops/ingestion/?date_from={future}").content.decode()


def test_webhook_deliveries_filter_by_status_and_endpoint(operator_client):
    from cdp.core.models import OutboxMessage
    from cdp.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookSubscription

    def delivery(url: str, status: str):
        subscription = WebhookSubscription.objects.create(url=url, events=["consent.changed"], secret_cipher=b"s")
        message = OutboxMessage.objects.create(topic="consent.changed", payload={})
        WebhookDelivery.objects.create(subscription=subscription, message=message, status=status, attempts=1)

    delivery("https://crm.example.com/hook", DeliveryStatus.FAILED)
    delivery("https://mail.example.com/hook", DeliveryStatus.SUCCEEDED)
    every = _table(operator_client.get("/ops/webhooks/").content.decode(), "deliveries")
    assert "crm.example.com" in every and "mail.example.com" in every
    failing = _table(operator_client.get("/ops/webhooks/?status=failing").content.decode(), "deliveries")
    assert "crm.example.com" in failing and "mail.example.com" not in failing
    mail = _table(operator_client.get("/ops/webhooks/?endpoint=mail").content.decode(), "deliveries")
    assert "mail.example.com" in mail and "crm.example.com" not in mail


def test_merges_filter_by_reason_and_page(operator_client, ada, bob):
    from cdp.models import MergeConflict

    for _ in range(26):
        MergeConflict.objects.create(profile_id=ada.profile_id, other_profiles=[str(bob.profile_id)],
                                     reason="conflicting_source_ids")
    MergeConflict.objects.create(profile_id=bob.profile_id, other_profiles=[str(ada.profile_id)],
                                 reason="too_many_profiles")
    page = operator_client.get("/ops/merges/").content.decode()
    assert "1–25 of 27" in page and "?conflicts_page=2" in page
    chosen = operator_client.get("/ops/merges/?reason=too_many_profiles").content.decode()
    assert "1–1 of 1" in chosen and "Too many profiles" in chosen


def test_campaigns_filter_by_status_and_search(operator_client):
    from campaigns.services.campaigns import campaign_create, campaign_stop

    campaign_create(key="spring", name="Spring sale", actor="t", metric={"event": "purchase"},
                    variants=[{"key": "a"}, {"key": "b"}])
    campaign_create(key="autumn", name="Autumn", actor="t", metric={"event": "purchase"},
                    variants=[{"key": "a"}, {"key": "b"}])
    campaign_stop(key="autumn", actor="t")
    running = operator_client.get("/ops/campaigns/?status=running").content.decode()
    assert "Spring sale" in running and ">Autumn<" not in running
    stopped = operator_client.get("/ops/campaigns/?status=stopped").content.decode()
    assert ">Autumn<" in stopped and "Spring sale" not in stopped
    assert "Spring sale" in operator_client.get("/ops/campaigns/?search=spri").content.decode()


def test_a_bad_date_range_is_said_not_ignored(operator_client):
    for path in ("/ops/ingestion/", "/ops/webhooks/", "/ops/merges/", "/ops/campaigns/"):
        response = operator_client.get(f"{path}?date_from=2026-02-02&date_to=2026-01-01")
        assert response.status_code == 400 and b"before the start date" in response.content, path
