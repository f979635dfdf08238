"""Identifier normalization and junk detection: pure, no database."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdp.core.identifiers import (
    GLOBAL_KINDS,
    IDENTIFIER_KINDS,
    SOURCE_SCOPED_KINDS,
    InvalidIdentifier,
    normalize,
)


def fullwidth(text: str) -> str:
    """The fullwidth forms (U+FF01..U+FF5E) of printable ASCII, which NFKC folds back."""
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


def test_kind_sets():
    assert set(GLOBAL_KINDS) == {"email", "phone", "anonymous_id"}
    assert set(SOURCE_SCOPED_KINDS) == {"crm_id", "user_id"}
    assert set(IDENTIFIER_KINDS) == set(GLOBAL_KINDS) | set(SOURCE_SCOPED_KINDS)
    assert not set(GLOBAL_KINDS) & set(SOURCE_SCOPED_KINDS)


# --- email ------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", [
    "jane.doe@example.com",
    "  Jane.Doe@Example.COM ",
    "JANE.DOE@EXAMPLE.COM\n",
    fullwidth("Jane.Doe@Example.com"),
    "\u3000jane.doe\uff20example.com\u3000",  # ideographic spaces, fullwidth "@"
])
def test_email_variants_normalize_equal(variant):
    assert normalize("email", variant) == "jane.doe@example.com"


@pytest.mark.parametrize("value", [
    "jane.doe",
    "jane@@example.com",
    "jane@doe@example.com",
    "@example.com",
    "jane@localhost",
    "jane@.com",
    "jane@example..com",
    "jane@example.",
    "jane doe@example.com",
    "j" * 250 + "@example.com",
])
def test_malformed_email_raises_invalid_email(value):
    with pytest.raises(InvalidIdentifier) as excinfo:
        normalize("email", value)
    assert excinfo.value.code == "invalid_email"
    assert excinfo.value.kind == "email"


@pytest.mark.parametrize("value", [12345, 1.0, True, ["a@b.co"], b"a@b.co"])
def test_email_must_be_a_string(value):
    with pytest.raises(InvalidIdentifier) as excinfo:
        normalize("email", value)
    assert excinfo.value.code == "wrong_type"


# --- phone ------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "region"), [
    ("+44 20 7946 0018", None),
    ("020 7946 0018", "GB"),
    ("020 7946 0018", "gb"),
    ("+44 (0)20 7946 0018", "US"),  # an explicit "+" wins over the region
    (" +442079460018 ", None),
])
def test_gb_phone_formats_normalize_to_e164(value, region):
    assert normalize("phone", value, default_region=region) == "+442079460018"


@pytest.mark.parametrize(("value", "region"), [
    ("+1 (415) 555-0132", None),
    ("415-555-0132", "US"),
    ("(415) 555 0132", "US"),
    ("+14155550132", "GB"),
    (4155550132, "US"),       # CSV exports turn phone columns into numbers
    (14155550132.0, "US"),
])
def test_us_phone_formats_normalize_to_e164(value, region):
    assert normalize("phone", value, default_region=region) == "+14155550132"


@pytest.mark.parametrize(("value", "region"), [
    ("020 7946 0018", None),  # no "+" and no region: which country?
    ("415-555-0132", None),
    ("12", "US"),
    ("not a phone", "US"),
    ("+1 555 555 0100", None),  # possible but not a valid number
    ("+999 1234 5678", None),
])
def test_malformed_phone_raises_invalid_phone(value, region):
    with pytest.raises(InvalidIdentifier) as excinfo:
        normalize("phone", value, default_region=region)
    assert excinfo.value.code == "invalid_phone"


@pytest.mark.parametrize("value", [1.5, float("nan"), True, {"number": "1"}])
def test_phone_of_wrong_type_raises(value):
    with pytest.raises(InvalidIdentifier) as excinfo:
        normalize("phone", value, default_region="US")
    assert excinfo.value.code == "wrong_type"


# --- source-scoped and anonymous ids ----------------------------------------------------


@pytest.mark.parametrize("kind", ["crm_id", "user_id", "anonymous_id"])
@pytest.mark.parametrize(("value", "expected"), [
    ("  CRM-00042 ", "CRM-00042"),   # case and inner formatting are kept
    ("Abc def", "Abc def"),
    (12345, "12345"),
    (12345.0, "12345"),              # CSV exports turn ids into floats
    (-42, "-42"),
    ("0042", "0042"),
])
def test_ids_are_kept_as_given_except_trimming(kind, value, expected):
    assert normalize(kind, value) == expected


@pytest.mark.parametrize("value", [12.5, float("inf"), float("nan"), 2.0**60, True, False, ["1"], b"1"])
def test_ids_of_wrong_type_raise(value):
    with pytest.raises(InvalidIdentifier) as excinfo:
        normalize("crm_id", value)
    assert excinfo.value.code == "wrong_type"


def test_unknown_kind_raises_without_echoing_it():
    with pytest.raises(InvalidIdentifier) as excinfo:
        normalize("ssn", "123-45-6789")
    assert excinfo.value.code == "unknown_identifier"
    assert "ssn" not in str(excinfo.value)


# --- junk -------------------------------------------------------------------------------

JUNK = [
    None, "", "   ", "null", "NULL", " Null ", "undefined", "None", "nil", "N/A", "n/a",
    "-1", "0", "00", "0000000000", "anonymous", "Anonymous", "UNKNOWN",
]


@pytest.mark.parametrize("kind", ["crm_id", "user_id", "anonymous_id"])
@pytest.mark.parametrize("value", [*JUNK, -1, 0, 0.0, -1.0])
def test_junk_ids_are_dropped(kind, value):
    assert normalize(kind, value) is None


@pytest.mark.parametrize("value", [
    *JUNK, "test@test.com", "Test@Test.com", "example@example.com", " EXAMPLE@example.COM ",
    fullwidth("TEST@test.com"),
])
def test_junk_emails_are_dropped(value):
    assert normalize("email", value) is None


@pytest.mark.parametrize("value", [
    *JUNK, "+0000", "+0", "000-000-0000", "(000) 000 0000", "000.000.0000", -1, 0,
])
@pytest.mark.parametrize("region", [None, "US"])
def test_junk_phones_are_dropped(value, region):
    assert normalize("phone", value, default_region=region) is None


def test_blocklist_drops_normalized_values_case_insensitively():
    blocklist = frozenset({"support@tessera.example", "+14155550132", "guest"})
    assert normalize("email", " Support@Tessera.Example", blocklist=blocklist) is None
    assert normalize("phone", "(415) 555-0132", default_region="US", blocklist=blocklist) is None
    assert normalize("user_id", "GUEST", blocklist=blocklist) is None
    assert normalize("user_id", "guest-2", blocklist=blocklist) == "guest-2"
    assert normalize("email", "jane@example.com", blocklist=blocklist) == "jane@example.com"


# --- messages never contain the value ---------------------------------------------------


@pytest.mark.parametrize(("kind", "value", "region"), [
    ("email", "jane.secret.doe@", None),
    ("phone", "+44 20 7946 00", None),
    ("phone", "555 SECRET", "US"),
    ("crm_id", 3.14159, None),
])
def test_error_messages_do_not_contain_the_value(kind, value, region):
    with pytest.raises(InvalidIdentifier) as excinfo:
        normalize(kind, value, default_region=region)
    message = str(excinfo.value)
    assert str(value) not in message
    assert "secret" not in message.lower()
    assert excinfo.value.__cause__ is None


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(IDENTIFIER_KINDS), value=st.text(max_size=40))
def test_normalize_is_total_and_idempotent(kind, value):
    """Any string either normalizes, is junk, or raises InvalidIdentifier; never anything
    else. Normalizing a normalized value changes nothing (phones get a "+", so no region)."""
    try:
        normalized = normalize(kind, value, default_region="GB")
    except InvalidIdentifier as exc:
        assert exc.code in {"invalid_email", "invalid_phone"}
        return
    if normalized is not None:
        assert normalize(kind, normalized) == normalized
