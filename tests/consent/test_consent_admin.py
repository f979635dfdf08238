"""Compliance officers change consent settings in the admin; every change is an operator action in
the log, with what the setting was and what it became."""

from __future__ import annotations

import pytest
from django.test import Client

from cdp.staff import COMPLIANCE, staff_create
from consent.models import AccessLog, DsrApprovalRule, NoticeVersion, RetentionRule
from consent.notices import notices_ensure

pytestmark = pytest.mark.django_db


@pytest.fixture
def officer_client():
    officer = staff_create(username="olga", role=COMPLIANCE, password="x" * 16)
    client = Client()
    client.force_login(officer)
    return client, officer


def test_settings_changes_are_logged_as_operator_actions(officer_client):
    client, officer = officer_client
    pages = {
        "purposebasis": {"purpose": "analytics", "jurisdiction": "US", "basis": "legitimate_interest"},
        "noticeversion": {"purpose": "marketing", "material": "on", "lifetime_days": "365",
                          "texts-TOTAL_FORMS": "1", "texts-INITIAL_FORMS": "0", "texts-0-language": "en",
                          "texts-0-title": "Offers", "texts-0-body": "Offers by e-mail."},
        "retentionrule": {"kind": "events", "source": "", "days": "90"},
        "dsrapprovalrule": {"type": "erasure", "requires_approval": "on"},
    }
    for model, data in pages.items():
        assert client.post(f"/admin/consent/{model}/add/", data).status_code == 302, model
    assert NoticeVersion.objects.get(purpose="marketing", version=2).material
    logged = AccessLog.objects.filter(kind="operator_action", actor=f"staff:{officer.pk}")
    entries = {e.purpose: e.detail for e in logged}
    assert set(entries) == {"purpose_basis_set", "notice_published", "retention_rule_set", "dsr_approval_rule_set"}
    assert entries["notice_published"]["before"]["version"] == 1
    assert entries["notice_published"]["after"]["texts"] == {"en": {"title": "Offers", "body": "Offers by e-mail."}}
    assert entries["dsr_approval_rule_set"] == {"before": None, "after": {"type": "erasure", "requires_approval": True}}
    assert DsrApprovalRule.objects.get(type="erasure").requires_approval


def test_a_notice_needs_a_text_and_published_ones_are_not_edited(officer_client):
    client, _ = officer_client
    response = client.post("/admin/consent/noticeversion/add/", {
        "purpose": "marketing", "texts-TOTAL_FORMS": "0", "texts-INITIAL_FORMS": "0"})
    assert response.status_code == 200 and not NoticeVersion.objects.filter(version=2).exists()
    notices_ensure()
    notice = NoticeVersion.objects.get(purpose="marketing", version=1)
    response = client.post(f"/admin/consent/noticeversion/{notice.pk}/change/", {"material": "on"})
    assert response.status_code == 403


def test_the_key_of_a_setting_is_fixed_once_it_exists(officer_client):
    client, _ = officer_client
    client.post("/admin/consent/retentionrule/add/", {"kind": "events", "source": "", "days": "90"})
    rule = RetentionRule.objects.get()
    client.post(f"/admin/consent/retentionrule/{rule.pk}/change/", {"kind": "held_records", "source": "", "days": "7"})
    rule.refresh_from_db()
    assert (rule.kind, rule.days) == ("events", 7) and RetentionRule.objects.count() == 1
    assert AccessLog.objects.filter(purpose="retention_rule_set").last().detail["before"]["days"] == 90
    assert client.post(f"/admin/consent/retentionrule/{rule.pk}/delete/").status_code == 403
