"""The three kinds of users in a real browser (Debian's chromium, headless, via Playwright)
against a live server on the test database, on the demo data set.

A customer signs in by magic link, opens "Why am I seeing this?", turns personalization
off and sees the recommendations disappear; a compliance officer finds that withdrawal in
the person's timeline and verifies the ledger; an operator sees the segment chart. Every
page visited is saved as a screenshot under artifacts/screenshots/ (git-ignored). With
TESSERA_DOCS_SCREENSHOTS=1 the README's two screenshots are written to docs/screenshots/.
"""

# ruff: noqa: F811 - pytest fixtures are imported from web_helpers and named as arguments

from __future__ import annotations

import contextlib
import importlib.util
import os
from pathlib import Path

import pytest
from django.core import mail
from web_helpers import _fresh_cache, link_in_mail  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "screenshots"
DOCS = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
STAFF_PASSWORD = "browser-test-staff-pass"

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _playwright():
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("needs playwright: pip install -r requirements-test.txt")
    from playwright.sync_api import sync_playwright

    return sync_playwright


def _pipeline() -> None:
    """The real pipeline on the demo data: features, segments, the hybrid recommender with its
    explanations, and the DP releases."""
    from personalization.models import RunStatus
    from personalization.services import pipeline

    run = pipeline.pipeline_run_create(params={"chunk_size": 500, "k": 5})
    with contextlib.suppress(Exception):  # the run records why it failed; checked below
        pipeline.pipeline_run_sync(run_id=run.id)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.errors


@pytest.fixture
def demo_world(transactional_db):
    from cdp.demo.loader import demo_load
    from cdp.selectors import profile_unified_view
    from cdp.staff import COMPLIANCE, OPERATOR, staff_create
    from consent.policy import is_allowed
    from personalization.models import Recommendation

    # The README's screenshots show the full demo shop (DP figures need a population that size);
    # the ordinary run uses a small one.
    demo_load(customers=3000 if os.environ.get("TESSERA_DOCS_SCREENSHOTS") == "1" else 60, seed=42)
    staff_create(username="compliance", role=COMPLIANCE, password=STAFF_PASSWORD)
    staff_create(username="operator", role=OPERATOR, password=STAFF_PASSWORD)
    _pipeline()
    # A customer whose recommendations come from their own items (the fullest explanation).
    for profile_id, explanation in Recommendation.objects.filter(rank=1).order_by("profile_id").values_list(
            "profile_id", "explanation"):
        view = profile_unified_view(profile_id=profile_id)
        if explanation.get("because_of") and view.get("identifiers", {}).get("email") and \
                is_allowed(profile_id, "personalization"):
            return {"profile_id": profile_id, "email": view["identifiers"]["email"][0]}
    pytest.fail("the demo data set has no customer with personal recommendations")


# Every form control has a label (or an accessible name) and every button says what it does.
UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
  .filter(el => el.tagName === 'BUTTON'
    ? !el.textContent.trim() && !el.getAttribute('aria-label')
    : !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
  .map(el => el.outerHTML.slice(0, 120))"""


class Shots:
    def __init__(self):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.docs = os.environ.get("TESSERA_DOCS_SCREENSHOTS") == "1"
        self.taken: list[Path] = []

    def __call__(self, page, name: str, *, docs: str | None = None, clip: dict | None = None) -> None:
        assert page.evaluate(UNLABELLED) == [], name
        assert page.evaluate("document.documentElement.lang") == "en"
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True, clip=clip)
        self.taken.append(path)
        if docs and self.docs:
            DOCS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(DOCS / docs), full_page=True, clip=clip)


def _staff_sign_in(page, base: str, path: str, username: str) -> None:
    page.goto(base + path)
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_customer_officer_and_operator_in_a_real_browser(demo_world, live_server, monkeypatch):
    sync_playwright = _playwright()
    # Playwright's sync API runs an event loop in this thread; the ORM calls below are plain
    # synchronous calls between browser steps.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    base, email, shot = live_server.url, demo_world["email"], Shots()
    mail.outbox.clear()
    from personalization.models import Recommendation

    blocked_item = Recommendation.objects.order_by("id").values_list("item_id", flat=True).first()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # --- the customer --------------------------------------------------------------------------
            customer = browser.new_context(viewport={"width": 1200, "height": 900})
            page = customer.new_page()
            page.goto(base + "/me/")
            assert page.url.endswith("/me/signin/")
            page.keyboard.press("Tab")  # keyboard users meet the skip link first
            assert page.evaluate("document.activeElement.className") == "skip-link"
            shot(page, "01-me-sign-in")
            page.get_by_label("Your e-mail address").fill(email)
            page.get_by_role("button", name="E-mail me a sign-in link").click()
            assert "we have sent a sign-in link" in page.locator(".messages").inner_text()
            assert len(mail.outbox) == 1 and mail.outbox[0].to == [email]
            link = base + link_in_mail(mail.outbox[0].body)
            page.goto(link)
            shot(page, "02-me-link-confirm")
            page.get_by_role("button", name="Sign in").click()
            assert page.url.endswith("/me/")
            recs = page.locator(".rec")
            count = recs.count()
            assert count > 0
            first_title = recs.first.locator(".rec-title").inner_text()
            shot(page, "03-me-home")

            why = recs.first.locator("details.why")
            why.locator("summary").click()
            panel = why.locator(".why-panel")
            assert panel.is_visible()
            text = panel.inner_text()
            assert "Your items that contributed" in text and "Data sources" in text and "Purposes you allowed" in text
            # Keyboard: the second panel opens with Enter on its focused summary.
            if count > 1:
                second = recs.nth(1).locator("details.why summary")
                second.focus()
                page.keyboard.press("Enter")
                assert recs.nth(1).locator(".why-panel").is_visible()
                page.keyboard.press("Enter")
            page.evaluate("document.activeElement && document.activeElement.blur()")
            # The README's picture: the choices and the first recommendation with its panel open
            # (bounding boxes are relative to the scrolled viewport; the clip to the page).
            box = recs.first.bounding_box()
            bottom = box["y"] + page.evaluate("window.scrollY") + box["height"] + 32
            shot(page, "04-me-why-am-i-seeing-this", docs="preference-center.png",
                 clip={"x": 0, "y": 0, "width": 1200, "height": bottom})

            panel.get_by_role("button", name="Turn off personalized recommendations").click()
            assert page.locator(".rec").count() == 0
            assert "Personalized recommendations are off" in page.locator("#recommendations").inner_text()
            assert first_title not in page.locator("#recommendations").inner_text()
            assert not page.locator("#allow-personalization").is_checked()
            shot(page, "05-me-personalization-off")

            page.get_by_role("link", name="Your data").click()
            assert "Consent receipts" in page.content()
            shot(page, "06-me-data")
            page.get_by_role("link", name="Erase my data…").click()
            assert "This cannot be undone" in page.content()
            shot(page, "07-me-erase-confirm")

            page.goto(link)  # the same link again
            assert "already used" in page.locator("[role=alert]").inner_text()
            shot(page, "08-me-link-used")
            customer.close()

            # The same customer on a phone, with Global Privacy Control on.
            phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                        extra_http_headers={"Sec-GPC": "1"})
            page = phone.new_page()
            page.goto(base + "/me/signin/")
            page.get_by_label("Your e-mail address").fill(email)
            page.get_by_role("button", name="E-mail me a sign-in link").click()
            page.goto(base + link_in_mail(mail.outbox[-1].body))
            page.get_by_role("button", name="Sign in").click()
            assert page.locator("#gpc-notice").is_visible()
            assert not page.locator("#allow-sale_sharing").is_checked()
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
            shot(page, "09-me-phone-gpc")
            phone.close()

            # --- the compliance officer ------------------------------------------------------------------
            officer = browser.new_context(viewport={"width": 1200, "height": 900})
            page = officer.new_page()
            page.goto(base + "/compliance/")
            assert "/staff/login/" in page.url
            shot(page, "10-staff-login")
            _staff_sign_in(page, base, "/staff/login/?next=/compliance/", "compliance")
            assert page.url.endswith("/compliance/")
            page.get_by_role("button", name="Verify now").click()
            assert "Intact" in page.locator("#ledger-status").inner_text()
            assert page.locator('svg[aria-labelledby^="consent-rates"]').is_visible()
            shot(page, "11-compliance-overview", docs="compliance-console.png")

            page.get_by_role("link", name="Subjects").click()
            page.get_by_label("Look up by").select_option("email")
            page.get_by_label("Value").fill(email)
            page.get_by_role("button", name="Look up").click()
            # The page before the look-up has the same address: wait for the answer, not the URL.
            page.locator("#consent-timeline").wait_for(state="visible")
            assert "/compliance/subjects/" in page.url and email not in page.url
            rows = page.locator("#consent-timeline tbody tr").filter(has_text="Personalized recommendations").filter(
                has_text="Withdrawn").filter(has_text="Preference center")
            assert rows.count() == 1, page.locator("main").inner_text()[:3000]
            # The phone's GPC signal is an opt-out of sale and sharing (a new event unless already withdrawn).
            assert page.locator("#consent-timeline tbody tr").filter(has_text="Global Privacy Control").count() <= 1
            shot(page, "12-compliance-subject-timeline")
            for name, path in (("13-compliance-requests", "/compliance/requests/"),
                               ("14-compliance-ledger", "/compliance/ledger/"),
                               ("15-compliance-budget", "/compliance/budget/")):
                page.goto(base + path)
                shot(page, name)
            page.goto(base + "/ops/")
            assert "operators only" in page.content()
            shot(page, "16-compliance-officer-refused-ops")
            officer.close()

            # --- the operator -----------------------------------------------------------------------------
            operator = browser.new_context(viewport={"width": 1200, "height": 900})
            page = operator.new_page()
            _staff_sign_in(page, base, "/staff/login/?next=/ops/", "operator")
            assert page.url.endswith("/ops/")
            chart = page.locator('svg[aria-labelledby^="segment-sizes"]')
            assert chart.is_visible() and chart.locator("rect.bar").count() >= 2
            assert page.locator('svg[aria-labelledby^="segment-spend"] .errorbar').count() >= 1
            shot(page, "17-ops-overview")
            for name, path in (("18-ops-merges", "/ops/merges/"), ("19-ops-webhooks", "/ops/webhooks/"),
                               ("20-ops-ingestion", "/ops/ingestion/")):
                page.goto(base + path)
                shot(page, name)
            # The run's lists charted, and an item blocked through the form (CSRF token and all).
            page.goto(base + "/ops/recommendations/")
            assert page.locator('svg[aria-labelledby^="recommendation-quality"]').is_visible()
            page.get_by_label("Action").select_option("block")
            page.get_by_label("Item id").fill(blocked_item)
            page.get_by_label("Reason").fill("Recalled by the supplier")
            page.get_by_role("button", name="Save").click()
            assert "blocked from every list" in page.content() and "Recalled by the supplier" in page.content()
            shot(page, "21-ops-recommendations")
            page.goto(base + "/compliance/")
            assert "compliance officers only" in page.content()
            operator.close()
        finally:
            browser.close()

    from consent.models import ConsentEvent
    from personalization.models import Recommendation

    assert not Recommendation.objects.filter(profile_id=demo_world["profile_id"]).exists()
    assert ConsentEvent.objects.filter(profile_id=demo_world["profile_id"], purpose="personalization",
                                       granted=False, channel="preference_center").count() == 1
    assert all(path.stat().st_size > 5000 for path in shot.taken)
