"""The preference center in a real browser (Debian's chromium via Playwright) at phone
(390 x 844) and laptop (1440 x 900) sizes, issue 22's customer findings one by one:

- tables reflow to stacked rows on a phone: nothing is cut off, nothing scrolls sideways
  (the Download link after "Prepare my data", the consent-history columns);
- every control a finger must hit is at least 44 x 44 px (the erase check box was 13 x 13);
- the message answering an action is in view (turning personalization off inside a "Why"
  panel confirmed it off screen);
- "who looked at my data" and the readable export are on the page;
- axe-core finds no serious or critical violation on any /me/ page.
"""

# ruff: noqa: F811 - pytest fixtures are imported from web_helpers and named as arguments

from __future__ import annotations

import os
from pathlib import Path

import pytest
from browser_helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SIZES,
    axe_serious,
    in_viewport,
    layout_problems,
    playwright_or_skip,
)
from web_helpers import _fresh_cache, link_path, make_customer, recommendations_write, shop  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "screenshots"
DOCS = ROOT / "docs" / "screenshots"
ITEMS = [("SKU-0001", "Cast-iron casserole, 24 cm"), ("SKU-0002", "Linen tea towels (set of 3)"),
         ("SKU-0003", "Olive-wood salad servers"), ("SKU-0004", "Enamel pie dish")]


@pytest.fixture
def customer(shop, settings):
    """A customer with a history worth reading: recommendations, a first refusal (declined), a
    withdrawal, purchases of catalogue items, and reads of their data by staff and an integration."""
    from cdp.api.services.api_keys import api_key_create
    from cdp.services.events import events_ingest
    from cdp.services.items import items_upsert
    from cdp.staff import COMPLIANCE, staff_create
    from consent.services import consent_set
    from consent.services.access import Accessor, personal_data_read

    settings.TESSERA_CONTROLLER_NAME = "Maison Exemple SAS"
    settings.TESSERA_CONTROLLER_ADDRESS = "12 rue de la Paix\n75002 Paris\nFrance"
    settings.TESSERA_CONTROLLER_EMAIL = "dpo@maison-exemple.fr"
    person = make_customer(shop, "zoe.martin@example.com", consents={"personalization": True, "analytics": True})
    consent_set(profile_id=person.profile_id, purpose="marketing", granted=False)
    consent_set(profile_id=person.profile_id, purpose="sale_sharing", granted=True)
    consent_set(profile_id=person.profile_id, purpose="sale_sharing", granted=False)
    items_upsert(items=[{"id": i, "title": t, "category": "kitchen"} for i, t in ITEMS])
    events_ingest(source=shop, events=[{"profile_id": str(person.profile_id), "type": "purchase", "item_id": i,
                                        "quantity": 1, "price": 24.5} for i, _ in ITEMS[:2]])
    recommendations_write(person.profile_id, items=ITEMS[2:], own=ITEMS[:2],
                          segment={"id": 1, "name": "Loyal", "share": 0.1})
    from personalization.models import Segment, Segmentation, SegmentMembership

    segmentation = Segmentation.objects.create(k=3, seed=1, model={})
    segment = Segment.objects.create(segmentation=segmentation, index=0, name="Loyal", centroid={})
    SegmentMembership.objects.create(segmentation=segmentation, segment=segment, profile_id=person.profile_id,
                                     r_score=4, f_score=3, m_score=5)
    officer = staff_create(username="officer", role=COMPLIANCE, password="browser-test-staff-pass")
    key, _ = api_key_create(name="Shop CRM sync", scopes=["profiles:read"])
    personal_data_read(accessor=Accessor(f"staff:{officer.pk}"), profile_ids=[person.profile_id],
                       fields=["consents"], purpose="consent_read")
    personal_data_read(accessor=Accessor(f"api_key:{key.prefix}"), profile_ids=[person.profile_id],
                       fields=["attributes.first_name", "identifiers"], purpose="api_profile_read")
    return person


def _signed_in_page(browser, base: str, profile_id, size: str):
    from consent.services.signin import sign_in_link

    context = browser.new_context(**SIZES[size])
    page = context.new_page()
    page.goto(base + link_path(sign_in_link(base_url=base + "/", profile_id=profile_id)))
    page.get_by_role("button", name="Sign in").click()
    assert page.url.endswith("/me/")
    return page


def _check(page, name: str, size: str, *, docs: str | None = None) -> None:
    assert layout_problems(page) == [], f"{name} at {size}"
    assert axe_serious(page) == [], f"{name} at {size}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"me-{size}-{name}.png"), full_page=True)
    if docs and os.environ.get("TESSERA_DOCS_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS / docs), full_page=size == "phone")


@pytest.fixture
def browser(monkeypatch):
    sync_playwright = playwright_or_skip()
    # Playwright's sync API runs an event loop in this thread; the ORM calls between browser
    # steps are plain synchronous calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.mark.parametrize("size", ["phone", "laptop"])
def test_every_me_page_fits_has_big_targets_and_passes_axe(customer, live_server, browser, size):
    base = live_server.url
    anonymous = browser.new_context(**SIZES[size]).new_page()
    anonymous.goto(base + "/me/signin/")
    _check(anonymous, "sign-in", size)

    from consent.services.signin import sign_in_link

    link = base + link_path(sign_in_link(base_url=base + "/", profile_id=customer.profile_id))
    page = browser.new_context(**SIZES[size]).new_page()
    page.goto(link)
    _check(page, "link-confirm", size)
    page.get_by_role("button", name="Sign in").click()
    _check(page, "home", size, docs="preference-center-phone.png" if size == "phone" else None)
    page.locator("details.why summary").first.click()
    _check(page, "why-open", size)

    page.goto(base + "/me/data/")
    page.get_by_role("button", name="Prepare my data for download").click()
    _check(page, "data", size)
    history = page.locator("#consent-history")
    assert history.locator("tr", has_text="Marketing").filter(has_text="Declined").count() == 1
    assert history.locator("tr", has_text="Sale and sharing").filter(has_text="Withdrawn").count() == 1

    page.get_by_role("link", name="Read or print").first.click()
    _check(page, "export-summary", size)

    page.goto(base + "/me/erase/")
    _check(page, "erase", size)
    box = page.locator("#confirm").bounding_box()
    assert box["width"] >= 44 and box["height"] >= 44  # was 13 x 13
    page.get_by_role("button", name="Erase my data").click()  # unticked: the browser asks first
    page.locator("#confirm").evaluate("box => box.form.noValidate = true")
    page.get_by_role("button", name="Erase my data").click()
    assert page.locator("#confirm[aria-invalid=true]").count() == 1
    _check(page, "erase-unconfirmed", size)
    page.locator("#confirm").check()
    page.get_by_role("button", name="Erase my data").click()
    assert "erased" in page.locator("h1").inner_text().lower()
    _check(page, "erased", size)
    page.goto(link)  # the sign-in link again: used, and the person is gone
    _check(page, "link-refused", size)


@pytest.mark.parametrize("size", ["phone", "laptop"])
def test_the_download_and_its_message_are_in_view_after_prepare_my_data(customer, live_server, browser, size):
    page = _signed_in_page(browser, live_server.url, customer.profile_id, size)
    page.goto(live_server.url + "/me/data/")
    page.get_by_role("button", name="Prepare my data for download").click()
    message = page.locator("[role=status]", has_text="Your data")
    assert in_viewport(message), f"the message is off screen at {size}"
    download = page.get_by_role("link", name="Download (JSON)").first
    assert in_viewport(download), f"the Download link is cut off or off screen at {size}"
    assert in_viewport(page.get_by_role("link", name="Read or print").first)


@pytest.mark.parametrize("size", ["phone", "laptop"])
def test_turning_personalization_off_in_a_why_panel_confirms_it_in_view(customer, live_server, browser, size):
    page = _signed_in_page(browser, live_server.url, customer.profile_id, size)
    last = page.locator(".rec").last
    last.locator("summary").click()
    last.get_by_role("button", name="Turn off personalized recommendations").click()
    message = page.locator("[role=status]", has_text="Personalized recommendations are off")
    assert message.count() == 1 and in_viewport(message), f"the confirmation is off screen at {size}"


@pytest.mark.parametrize("size", ["phone", "laptop"])
def test_saving_choices_confirms_it_in_view(customer, live_server, browser, size):
    page = _signed_in_page(browser, live_server.url, customer.profile_id, size)
    page.locator("label[for=allow-marketing]").click()
    page.get_by_role("button", name="Save my choices").click()
    message = page.locator("[role=status]", has_text="Saved: 1 change")
    assert in_viewport(message), f"the confirmation is off screen at {size}"


def test_who_looked_and_the_readable_export_speak_plainly(customer, live_server, browser):
    page = _signed_in_page(browser, live_server.url, customer.profile_id, "phone")
    page.goto(live_server.url + "/me/data/")
    looks = page.locator("#access-log").inner_text()
    assert "A member of our privacy team" in looks and "Our connected system “Shop CRM sync”" in looks
    assert "staff:" not in looks and "api_key:" not in looks and "consent_read" not in looks
    page.get_by_role("button", name="Prepare my data for download").click()
    page.get_by_role("link", name="Read or print").first.click()
    text = page.locator("main").inner_text()
    for expected in ("Maison Exemple SAS", "12 rue de la Paix", "dpo@maison-exemple.fr", ITEMS[0][1],
                     "Declined", "Withdrawn", "Loyal", "customers who come back and buy regularly",
                     "A member of our privacy team"):
        assert expected in text, expected
    for code in ("SKU-", "435", "staff:", "api_key:", "tessera.invalid", "consent_read", "1796"):
        assert code not in text, code
