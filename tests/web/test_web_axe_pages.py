"""axe-core on every top-level page of the site (the preference center and its sign-in, staff
sign-in, the compliance console, the operator dashboard), at phone and laptop sizes, with a
message showing where an action leaves one: no serious or critical violation (issue 22: the
messages list carried role=status, which broke `listitem` and `aria-allowed-role`)."""

# ruff: noqa: F811 - pytest fixtures are imported from web_helpers and named as arguments

from __future__ import annotations

import pytest
from browser_helpers import CHROMIUM, CHROMIUM_ARGS, SIZES, axe_serious, playwright_or_skip
from web_helpers import _fresh_cache, ada, link_path, shop  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
PASSWORD = "browser-test-staff-pass"


@pytest.mark.parametrize("size", ["phone", "laptop"])
def test_every_top_level_page_passes_axe(ada, live_server, monkeypatch, size):
    from cdp.staff import COMPLIANCE, OPERATOR, staff_create
    from consent.services.signin import sign_in_link

    sync_playwright = playwright_or_skip()
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    staff_create(username="officer", role=COMPLIANCE, password=PASSWORD)
    staff_create(username="operator", role=OPERATOR, password=PASSWORD)
    base, found = live_server.url, {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(**SIZES[size]).new_page()
            page.goto(base + "/me/signin/")
            found["/me/signin/"] = axe_serious(page)
            page.get_by_label("Your e-mail address").fill(ada.email)
            page.get_by_role("button", name="E-mail me a sign-in link").click()
            assert page.locator(".messages li").count() == 1
            found["/me/signin/ with a message"] = axe_serious(page)
            page.goto(base + link_path(sign_in_link(base_url=base + "/", profile_id=ada.profile_id)))
            found["/me/signin/<link>/"] = axe_serious(page)
            page.get_by_role("button", name="Sign in").click()
            assert page.url.endswith("/me/") and page.locator(".messages li").count() == 1
            found["/me/"] = axe_serious(page)

            for username, path in (("officer", "/compliance/"), ("operator", "/ops/")):
                staff = browser.new_context(**SIZES[size]).new_page()
                staff.goto(f"{base}/staff/login/?next={path}")
                found["/staff/login/"] = axe_serious(staff)
                staff.get_by_label("User name").fill(username)
                staff.get_by_label("Password").fill(PASSWORD)
                staff.get_by_role("button", name="Sign in").click()
                assert staff.url.endswith(path)
                found[path] = axe_serious(staff)
        finally:
            browser.close()
    assert {page: problems for page, problems in found.items() if problems} == {}
