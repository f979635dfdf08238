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
    for path in ("/ops/", "/ops/ingestion/", "/ops/webhooks/", "/ops/merges/", "/ops/campaigns/"):
        response = operator_client.get(f"{path}?date_from=2026-02-02&date_to=2026-01-01")
        assert response.status_code == 400 and b"before the start date" in response.content, path


def test_pipeline_runs_filter_by_status_trigger_and_date_and_page(operator_client):
    from personalization.models import PipelineRun, RunStatus

    for _ in range(26):
        PipelineRun.objects.create(status=RunStatus.SUCCEEDED, active=None, trigger="schedule")
    PipelineRun.objects.create(status=RunStatus.FAILED, active=None, trigger="command",
                               errors=[{"stage": "features", "chunk": 0, "code": "task_failed", "message": "x"}])
    page = operator_client.get("/ops/").content.decode()
    assert "1–25 of 27" in page and "?page=2" in page
    failed = _table(operator_client.get("/ops/?status=failed").content.decode(), "pipeline-runs")
    assert failed.count("<tr>") == 2 and "A task failed after its retries" in failed  # header row and the run
    by_command = operator_client.get("/ops/?trigger=command").content.decode()
    assert "1–1 of 1" in by_command
    scheduled = operator_client.get("/ops/?trigger=schedule&page=2").content.decode()
    assert "26–26 of 26" in scheduled and "trigger=schedule&amp;page=1" in scheduled
    future = (timezone.localdate() + timezone.timedelta(days=1)).isoformat()
    assert "No pipeline run matches" in operator_client.get(f"/ops/?date_from={future}").content.decode()


def test_failed_webhook_attempts_filter_and_page(operator_client):
    from cdp.core.models import OutboxMessage
    from cdp.webhooks.models import AttemptOutcome, WebhookAttempt, WebhookDelivery, WebhookSubscription

    def attempts(url: str, outcome: str, n: int, days_ago: int = 0):
        subscription = WebhookSubscription.objects.create(url=url, events=["consent.changed"], secret_cipher=b"s")
        message = OutboxMessage.objects.create(topic="consent.changed", payload={})
        delivery = WebhookDelivery.objects.create(subscription=subscription, message=message, attempts=n)
        for number in range(1, n + 1):
            WebhookAttempt.objects.create(delivery=delivery, number=number, outcome=outcome, status_code=500,
                                          started_at=timezone.now() - timezone.timedelta(days=days_ago))

    attempts("https://crm.example.com/hook", AttemptOutcome.FAILED, 27)
    attempts("https://old.example.com/hook", AttemptOutcome.FAILED, 1, days_ago=30)  # past the old 7-day cut
    attempts("https://mail.example.com/hook", AttemptOutcome.SUCCEEDED, 1)
    page = operator_client.get("/ops/webhooks/").content.decode()
    table = _table(page, "failed-attempts")
    assert "crm.example.com" in table and "mail.example.com" not in table
    assert "1–25 of 28" in page and "attempts-page=2" in page
    second = _table(operator_client.get("/ops/webhooks/?attempts-page=2").content.decode(), "failed-attempts")
    assert "old.example.com" in second
    old_page = operator_client.get("/ops/webhooks/?attempts-endpoint=old").content.decode()
    old = _table(old_page, "failed-attempts")
    assert "old.example.com" in old and "crm.example.com" not in old
    assert old_page.count("Clear the filters") == 1  # the deliveries' form is not in use
    recent_from = (timezone.localdate() - timezone.timedelta(days=7)).isoformat()
    recent = _table(operator_client.get(f"/ops/webhooks/?attempts-date_from={recent_from}").content.decode(),
                    "failed-attempts")
    assert "crm.example.com" in recent and "old.example.com" not in recent
    bad = operator_client.get("/ops/webhooks/?attempts-date_from=2026-02-02&attempts-date_to=2026-01-01")
    assert bad.status_code == 400 and b"before the start date" in bad.content
