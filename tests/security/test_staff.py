"""Attacks on the staff side (issue #14, findings 4 and 8): guessing passwords on a log-in
path the throttle does not watch, operators changing consent configuration, and changes
nobody in compliance can see.

Everything goes through the real views with Django's test client: /staff/login/,
/admin/login/, the admin's add and change pages and the compliance console.
"""

# ruff: noqa: F811 - pytest fixtures are imported from web_helpers and named as arguments

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import pytest
from django.core.cache import cache
from django.test import Client

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "web"))
from web_helpers import (  # noqa: E402, F401
    PASSWORD,
    _fresh_cache,
    officer,
    officer_client,
    operator,
    operator_client,
    staff_user,
)

from consent.models import AccessLog, DsrApprovalRule, NoticeVersion, PurposeBasis, RetentionRule  # noqa: E402

pytestmark = pytest.mark.django_db

STAFF_LOGIN = "/staff/login/"
ADMIN_LOGIN = "/admin/login/?next=/admin/"


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def staff_login_fail(client: Client, username: str, times: int) -> None:
    for _ in range(times):
        client.post(STAFF_LOGIN, {"username": username, "password": "wrong guess"})


def admin_login_fail(client: Client, username: str, times: int) -> None:
    for _ in range(times):
        client.post(ADMIN_LOGIN, {"username": username, "password": "wrong guess"})


def cache_keys() -> list[str]:
    """Every key in the cache: local memory by default, Redis when one is configured (CI)."""
    store = cache._cache
    if isinstance(store, dict):
        return list(store)
    return [key.decode() for key in store.get_client().keys("*")]


# --- one throttle for every log-in path ----------------------------------------------------


def test_admin_login_is_locked_after_the_staff_login_locked_the_user(operator):
    client = Client()
    staff_login_fail(client, "opsy", 5)
    assert client.post(STAFF_LOGIN, {"username": "opsy", "password": PASSWORD}).status_code == 429
    # The attacker moves to the admin's log-in page: still locked, even the right password.
    admin_login_fail(client, "opsy", 50)
    response = client.post(ADMIN_LOGIN, {"username": "opsy", "password": PASSWORD})
    assert not signed_in(client)
    assert response.status_code != 302
    assert client.get("/admin/").status_code == 302  # to the log-in page


def test_failures_on_admin_login_lock_the_staff_login(operator):
    client = Client()
    admin_login_fail(client, "opsy", 5)
    response = client.post(STAFF_LOGIN, {"username": "opsy", "password": PASSWORD})
    assert response.status_code == 429 and b"Too many failed attempts" in response.content
    assert not signed_in(client)
    client.post(ADMIN_LOGIN, {"username": "opsy", "password": PASSWORD})
    assert not signed_in(client)
    # Another address is not locked out, on either path.
    elsewhere = Client(REMOTE_ADDR="198.51.100.7")
    assert elsewhere.post(ADMIN_LOGIN, {"username": "opsy", "password": PASSWORD}).status_code == 302
    assert signed_in(elsewhere)


def test_admin_login_lock_says_so_alike_for_unknown_user_names(operator):
    answers = []
    for username in ("opsy", "no-such-user"):
        client = Client()
        admin_login_fail(client, username, 5)
        response = client.post(ADMIN_LOGIN, {"username": username, "password": "wrong guess"})
        assert b"Too many failed attempts" in response.content
        page = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode())
        answers.append((response.status_code, page.replace(username, "NAME")))
    assert answers[0] == answers[1]


def test_spraying_user_names_on_admin_login_locks_the_address(operator):
    client = Client()
    for number in range(30):
        client.post(ADMIN_LOGIN, {"username": f"guess-{number}", "password": "wrong guess"})
    client.post(ADMIN_LOGIN, {"username": "opsy", "password": PASSWORD})
    assert not signed_in(client)
    response = client.post(STAFF_LOGIN, {"username": "opsy", "password": PASSWORD})
    assert response.status_code == 429 and not signed_in(client)


def test_throttle_cache_keys_are_not_plain_hashes_of_user_names(operator):
    staff_login_fail(Client(), "opsy", 1)
    keys = [key for key in cache_keys() if "throttle" in key]
    assert keys
    guesses = {hashlib.sha256(text.encode()).hexdigest()
               for text in ("opsy", "opsy\x1f127.0.0.1", "127.0.0.1")}
    assert not [key for key in keys if any(guess in key for guess in guesses)]


# --- the compliance role owns consent configuration ----------------------------------------------


def add_purpose_basis(client: Client):
    return client.post("/admin/consent/purposebasis/add/",
                       {"purpose": "analytics", "jurisdiction": "US", "basis": "legitimate_interest"})


def add_notice_version(client: Client):
    return client.post("/admin/consent/noticeversion/add/", {
        "purpose": "marketing", "material": "on", "lifetime_days": "365",
        "texts-TOTAL_FORMS": "1", "texts-INITIAL_FORMS": "0", "texts-MIN_NUM_FORMS": "0",
        "texts-MAX_NUM_FORMS": "1000", "texts-0-language": "en", "texts-0-title": "Marketing, v2",
        "texts-0-body": "We may send you offers by e-mail."})


def add_retention_rule(client: Client):
    return client.post("/admin/consent/retentionrule/add/", {"kind": "events", "source": "", "days": "90"})


def add_dsr_approval_rule(client: Client):
    return client.post("/admin/consent/dsrapprovalrule/add/", {"type": "erasure", "requires_approval": "on"})


def test_operator_cannot_add_a_dsr_approval_rule(operator_client):
    assert add_dsr_approval_rule(operator_client).status_code == 403
    assert not DsrApprovalRule.objects.exists()


def test_operator_cannot_add_a_notice_version(operator_client):
    assert add_notice_version(operator_client).status_code == 403
    assert not NoticeVersion.objects.filter(purpose="marketing", version__gt=1).exists()


def test_operator_cannot_add_a_purpose_basis(operator_client):
    assert add_purpose_basis(operator_client).status_code == 403
    assert not PurposeBasis.objects.exists()


def test_operator_cannot_add_a_retention_rule(operator_client):
    assert add_retention_rule(operator_client).status_code == 403
    assert not RetentionRule.objects.exists()


def test_operator_cannot_change_consent_configuration_but_may_read_it(operator_client, officer_client):
    assert add_retention_rule(officer_client).status_code == 302
    rule = RetentionRule.objects.get()
    response = operator_client.post(f"/admin/consent/retentionrule/{rule.pk}/change/", {"days": "1"})
    assert response.status_code == 403
    rule.refresh_from_db()
    assert rule.days == 90
    for model in ("purposebasis", "noticeversion", "retentionrule", "dsrapprovalrule"):
        assert operator_client.get(f"/admin/consent/{model}/").status_code == 200, model
    assert operator_client.get(f"/admin/consent/retentionrule/{rule.pk}/change/").status_code == 200


def test_compliance_officer_can_add_consent_configuration(officer_client):
    for add in (add_purpose_basis, add_notice_version, add_retention_rule, add_dsr_approval_rule):
        response = add(officer_client)
        assert response.status_code == 302, (add.__name__, response.content[:2000])
    assert PurposeBasis.objects.get(purpose="analytics", jurisdiction="US").basis == "legitimate_interest"
    notice = NoticeVersion.objects.get(purpose="marketing", version=2)
    assert notice.material and notice.texts.get(language="en").title == "Marketing, v2"
    assert RetentionRule.objects.get(kind="events", source="").days == 90
    assert DsrApprovalRule.objects.get(type="erasure").requires_approval


def test_compliance_officer_sees_nothing_else_in_the_admin(officer_client):
    for path in ("/admin/cdp/source/", "/admin/cdp/profile/", "/admin/auth/user/",
                 "/admin/consent/accesslog/", "/admin/cdp/source/add/"):
        assert officer_client.get(path).status_code in (403, 404), path


# --- every change is shown to compliance, with before and after ---------------------------------


def test_each_configuration_change_appears_in_the_compliance_console(officer_client, officer):
    for add in (add_purpose_basis, add_notice_version, add_retention_rule, add_dsr_approval_rule):
        assert add(officer_client).status_code == 302
    rule = RetentionRule.objects.get()
    assert officer_client.post(f"/admin/consent/retentionrule/{rule.pk}/change/",
                               {"kind": "events", "source": "", "days": "30"}).status_code == 302
    basis = PurposeBasis.objects.get()
    assert officer_client.post(f"/admin/consent/purposebasis/{basis.pk}/change/",
                               {"purpose": "analytics", "jurisdiction": "US", "basis": "contract"}).status_code == 302

    entries = AccessLog.objects.filter(kind="operator_action", actor=f"staff:{officer.pk}").order_by("id")
    details = [(e.purpose, e.detail.get("before"), e.detail.get("after")) for e in entries]
    assert ("retention_rule_set", {"kind": "events", "source": None, "days": 90},
            {"kind": "events", "source": None, "days": 30}) in details
    assert ("purpose_basis_set", {"purpose": "analytics", "jurisdiction": "US", "basis": "legitimate_interest"},
            {"purpose": "analytics", "jurisdiction": "US", "basis": "contract"}) in details

    page = officer_client.get("/compliance/configuration/")
    assert page.status_code == 200
    html = page.content.decode()
    for text in ("Retention", "90", "30", "legitimate_interest", "contract", "Marketing, v2", "erasure",
                 officer.get_username()):
        assert text in html, text


def test_operators_cannot_open_the_configuration_history(operator_client):
    assert operator_client.get("/compliance/configuration/").status_code == 403
