"""Turning personalization back on in the preference center, in a real browser (Debian's
chromium via Playwright, as test_web_browser.py): the grant computes the customer's
recommendations straight away, so the next page load shows them, with no pipeline run."""

# ruff: noqa: F811 - pytest fixtures are imported and named as arguments

from __future__ import annotations

import pytest
from django.core import mail
from test_web_browser import CHROMIUM, CHROMIUM_ARGS, _playwright, demo_world  # noqa: F401
from web_helpers import _fresh_cache, link_in_mail  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_personalization_turned_back_on_shows_recommendations_on_the_next_load(demo_world, live_server,
                                                                               monkeypatch):
    from personalization.models import PipelineRun, Recommendation

    sync_playwright = _playwright()
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    base, email, person = live_server.url, demo_world["email"], demo_world["profile_id"]
    runs = PipelineRun.objects.count()
    mail.outbox.clear()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
            page.goto(base + "/me/signin/")
            page.get_by_label("Your e-mail address").fill(email)
            page.get_by_role("button", name="E-mail me a sign-in link").click()
            page.goto(base + link_in_mail(mail.outbox[-1].body))
            page.get_by_role("button", name="Sign in").click()
            assert page.url.endswith("/me/") and page.locator(".rec").count() > 0

            page.locator(".rec").first.locator("details.why summary").click()
            page.get_by_role("button", name="Turn off personalized recommendations").click()
            assert page.locator(".rec").count() == 0
            assert not Recommendation.objects.filter(profile_id=person).exists()

            page.get_by_role("button", name="Turn on personalized recommendations").click()
            page.reload()  # the next page load, whatever the button's own answer showed
            assert page.locator("#allow-personalization").is_checked()
            assert page.locator(".rec").count() > 0, page.locator("#recommendations").inner_text()
            assert "No recommendations yet" not in page.locator("#recommendations").inner_text()
            page.locator(".rec").first.locator("details.why summary").click()
            assert "Your items that contributed" in page.locator(".rec").first.locator(".why-panel").inner_text()
        finally:
            browser.close()
    assert PipelineRun.objects.count() == runs, "no pipeline run: the grant computed the list"
