"""The compliance officer's way through the console in a real browser (Debian's chromium,
headless, via Playwright) at laptop size (1440×900): search, filter and page the access
log, follow a subject link to the person's timeline, switch the time zone, narrow the DSR
queue and read a request. axe-core runs on every page visited: no serious or critical
violation. Screenshots go to artifacts/screenshots/ (git-ignored)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from test_web_browser import CHROMIUM, CHROMIUM_ARGS, STAFF_PASSWORD, Shots, _playwright, _staff_sign_in
from web_helpers import _fresh_cache, make_customer  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LAPTOP = {"width": 1440, "height": 900}


@pytest.fixture
def console_world(transactional_db, source_factory):
    """Two customers with decisions, sixty access-log entries by two officers and Tessera,
    and three requests: enough for every filter and a second page."""
    from cdp.staff import COMPLIANCE, staff_create
    from consent.models import DataSubjectRequest, DsrApprovalRule
    from consent.services.access import operator_action_event
    from consent.services.consents import consent_set
    from consent.services.dsr import dsr_submit

    shop = source_factory("shop", trust=80)
    ada = make_customer(shop, "ada@example.com", consents={"marketing": True, "analytics": True})
    bob = make_customer(shop, "bob@example.com", consents={"personalization": True})
    consent_set(profile_id=ada.profile_id, purpose="marketing", granted=False, channel="preference_center",
                actor="data_subject")
    consent_set(profile_id=ada.profile_id, purpose="sale_sharing", granted=False, channel="gpc", actor="gpc")
    staff_create(username="compliance", role=COMPLIANCE, password=STAFF_PASSWORD)
    auditor = staff_create(username="auditor", role=COMPLIANCE, password=STAFF_PASSWORD)
    for n in range(30):
        operator_action_event(actor=f"staff:{auditor.pk}", action="subject_lookup",
                              profile_id=(ada if n % 2 else bob).profile_id, detail={"by": "email"})
        operator_action_event(actor="system", action="retention_purge")
    for kind in ("erasure", "access"):  # kept open: they wait for an officer's decision
        DsrApprovalRule.objects.create(type=kind, requires_approval=True)
    erasure = dsr_submit(request_type="erasure", channel="api", actor="api_key:crm", profile_id=ada.profile_id)
    dsr_submit(request_type="access", channel="preference_center", actor="data_subject", profile_id=bob.profile_id)
    DataSubjectRequest.objects.filter(id=erasure.id).update(received_at=timezone.now() - timedelta(days=3))
    return {"ada": ada, "bob": bob, "erasure": erasure}


def _axe_clean(page, name: str) -> None:
    """No serious or critical axe-core violation on the page as it is now."""
    from axe_playwright_python.sync_playwright import Axe

    violations = Axe().run(page).response["violations"]
    bad = [(v["id"], v["impact"], [n["html"][:120] for n in v["nodes"][:3]]) for v in violations
           if v["impact"] in ("serious", "critical")]
    assert bad == [], (name, bad)


def test_a_compliance_officer_finds_things_in_a_real_browser(console_world, live_server, monkeypatch):
    sync_playwright = _playwright()
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    base, shot, ada = live_server.url, Shots(), console_world["ada"]

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport=LAPTOP).new_page()
            _staff_sign_in(page, base, "/staff/login/?next=/compliance/", "compliance")
            assert page.url.endswith("/compliance/")
            _axe_clean(page, "overview")

            # The organisation's access log: filter by staff member and dates, then page.
            with page.expect_navigation():  # Playwright does not wait for the page a click loads
                page.get_by_role("link", name="Access log").click()
            assert page.locator("h1").inner_text() == "Access log"
            _axe_clean(page, "access log")
            shot(page, "30-console-access-log")
            page.get_by_label("Who (staff member)").select_option(label="auditor (staff)")
            page.get_by_label("From (inclusive)").fill((timezone.localdate() - timedelta(days=1)).isoformat())
            with page.expect_navigation():  # Playwright does not wait for the page a click loads
                page.get_by_role("button", name="Show", exact=True).click()
            rows = page.locator("#access-log tbody tr")
            assert rows.count() == 25 and "1–25 of 30" in page.locator(".pager").inner_text()
            assert rows.filter(has_text="auditor (staff)").count() == 25
            assert rows.filter(has_text="Purged data past its retention").count() == 0
            with page.expect_navigation():  # Playwright does not wait for the page a click loads
                page.get_by_role("link", name="Next page").click()
            assert "26–30 of 30" in page.locator(".pager").inner_text() and "page=2" in page.url
            assert page.get_by_label("Who (staff member)").input_value().startswith("staff:")  # filters kept
            _axe_clean(page, "access log, page 2")
            shot(page, "31-console-access-log-page-2")

            # A subject link leads to the person's page by POST: no id in the address.
            subject = str(ada.profile_id)
            with page.expect_navigation():  # Playwright does not wait for the page a click loads
                page.locator(f'form.subject-link:has(input[value="{subject}"]) button').first.click()
            assert page.url.endswith("/compliance/subjects/") and subject not in page.url
            assert subject in page.locator("#subject-heading").inner_text()
            timeline = page.locator("#consent-timeline tbody tr")
            assert timeline.filter(has_text="Marketing").filter(has_text="Withdrawn (after a grant)").count() == 1
            assert timeline.filter(has_text="Sale and sharing").filter(has_text="Declined").count() == 1
            page.get_by_label("Purpose").select_option(label="Marketing")
            with page.expect_navigation():  # Playwright does not wait for the page a click loads
                page.get_by_role("button", name="Show", exact=True).click()
            assert page.locator("#consent-timeline tbody tr").count() == 2  # the grant and the withdrawal
            assert "sale_sharing" not in page.locator("main").inner_text()
            _axe_clean(page, "subject")
            shot(page, "32-console-subject")

            # The time zone: chosen in the header, remembered on the next pages.
            assert " UTC" in page.locator("#consent-timeline tbody tr").first.inner_text()
            page.get_by_label("Time zone").select_option("Asia/Tokyo")
            with page.expect_navigation():  # Playwright does not wait for the page a click loads
                page.get_by_role("button", name="Show times in this zone").click()
            assert "Times are now shown in Asia/Tokyo" in page.locator(".messages").inner_text()
            with page.expect_navigation():  # Playwright does not wait for the page a click loads
                page.get_by_role("link", name="Requests").click()
            assert "JST" in page.locator("#requests").inner_text() and "UTC" not in page.locator(
                "#requests").inner_text()
            assert page.get_by_label("Time zone").input_value() == "Asia/Tokyo"
            _axe_clean(page, "requests")

            # The DSR queue narrowed to erasure; the request in plain words, nothing pre-chosen.
            page.get_by_label("Type").select_option(label="Erasure")
            with page.expect_navigation():  # Playwright does not wait for the page a click loads
                page.get_by_role("button", name="Show", exact=True).click()
            assert page.locator("#requests tbody tr").count() == 1
            with page.expect_navigation():  # Playwright does not wait for the page a click loads
                page.locator("#requests tbody tr a").first.click()
            assert "asks for the personal data held about them to be erased" in page.locator("#request-plain"
                                                                                               ).inner_text()
            assert page.locator('input[name="action"]:checked').count() == 0
            assert "JST" in page.locator("#request-audit").inner_text()
            _axe_clean(page, "request")
            shot(page, "33-console-request")
            with page.expect_navigation():  # Playwright does not wait for the page a click loads
                page.locator("form.subject-link button").click()
            assert subject in page.locator("#subject-heading").inner_text()

            for path in ("/compliance/budget/", "/compliance/ledger/", "/compliance/configuration/"):
                page.goto(base + path)
                _axe_clean(page, path)
        finally:
            browser.close()
