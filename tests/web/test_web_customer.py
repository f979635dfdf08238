"""The customer's own words: dates in their language and time zone, access-log entries as
sentences (staff by role, integrations by name, never a raw key)."""

# ruff: noqa: F811 - pytest fixtures are imported from web_helpers and named as arguments

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from web_helpers import _fresh_cache, staff_user  # noqa: F401

from cdp.api.services.api_keys import api_key_create
from web.customer import ZONE_TABLE, locale_from_attributes, who_words

pytestmark = pytest.mark.django_db
NOON_UTC = datetime(2026, 7, 14, 12, 0, tzinfo=UTC)


def test_dates_read_in_the_persons_language_and_time_zone():
    french = locale_from_attributes({"language": {"value": "fr"}, "timezone": {"value": "Europe/Paris"}})
    assert french.when(NOON_UTC) == "14 juillet 2026 14:00" and french.zone_name == "Europe/Paris"
    assert french.when("2026-07-14T12:00:00Z", time=False) == "14 juillet 2026"
    # Nothing known: the browser's language, UTC (and the page says so).
    plain = locale_from_attributes({}, browser_language="de")
    assert plain.zone_name == "UTC" and plain.when(NOON_UTC).startswith("14. Juli 2026")
    # A bad zone or language is ignored, never an error.
    assert locale_from_attributes({"timezone": "Mars/Base", "language": "xx"}).language == "en"


@pytest.mark.skipif(not Path(ZONE_TABLE).exists(), reason="needs the system's time zone table (tzdata)")
def test_a_country_with_one_time_zone_gives_it_and_one_with_several_gives_none():
    assert locale_from_attributes({"country": {"value": "FR"}}).zone_name == "Europe/Paris"
    assert locale_from_attributes({"country": {"value": "DE"}}).zone_name == "Europe/Berlin"  # "most of Germany"
    assert locale_from_attributes({"country": {"value": "US"}}).zone_name == "UTC"


def test_readers_are_named_by_role_or_integration_name(staff_user):
    officer, operator = staff_user("officer", "compliance"), staff_user("opsy", "operator")
    key, _ = api_key_create(name="Shop CRM sync", scopes=["profiles:read"])
    words = who_words({f"staff:{officer.pk}", f"staff:{operator.pk}", f"api_key:{key.prefix}", "data_subject",
                       "api_key:gone", "staff:999"})
    assert words == {f"staff:{officer.pk}": "A member of our privacy team",
                     f"staff:{operator.pk}": "A member of our operations team",
                     f"api_key:{key.prefix}": "Our connected system “Shop CRM sync”", "data_subject": "You",
                     "api_key:gone": "One of our connected systems", "staff:999": "A member of our staff"}

