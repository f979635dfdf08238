"""Operators change consent settings in the admin; every change is an operator action in the log."""

from __future__ import annotations

import pytest
from django.contrib.admin.sites import AdminSite
from django.contrib.auth import get_user_model
from django.test import RequestFactory

from consent.admin import DsrApprovalRuleAdmin, NoticeVersionAdmin, PurposeBasisAdmin, RetentionRuleAdmin
from consent.models import AccessLog, DsrApprovalRule, NoticeVersion, PurposeBasis, RetentionRule

pytestmark = pytest.mark.django_db


@pytest.fixture
def request_as_operator():
    request = RequestFactory().post("/admin/")
    request.user = get_user_model().objects.create_user(username="olga", password="x" * 16)
    request._messages = type("M", (), {"add": lambda *a, **k: None})()
    return request


def test_settings_changes_are_logged_as_operator_actions(request_as_operator):
    site = AdminSite()
    PurposeBasisAdmin(PurposeBasis, site).save_model(
        request_as_operator, PurposeBasis(purpose="analytics", jurisdiction="US", basis="legitimate_interest"),
        None, False)
    notice = NoticeVersion(purpose="marketing", material=True, lifetime_days=365)
    NoticeVersionAdmin(NoticeVersion, site).save_model(request_as_operator, notice, None, False)
    assert notice.version == 2
    RetentionRuleAdmin(RetentionRule, site).save_model(request_as_operator, RetentionRule(kind="events", days=90),
                                                       None, False)
    DsrApprovalRuleAdmin(DsrApprovalRule, site).save_model(
        request_as_operator, DsrApprovalRule(type="erasure", requires_approval=True), None, False)
    actions = set(AccessLog.objects.filter(kind="operator_action", actor="staff:olga").values_list("purpose",
                                                                                                   flat=True))
    assert actions == {"purpose_basis_set", "notice_published", "retention_rule_set", "dsr_approval_rule_set"}
    assert DsrApprovalRule.objects.get(type="erasure").requires_approval
