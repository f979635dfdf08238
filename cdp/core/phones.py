"""Phone parsing and validity as phonenumbers decides them, at a fraction of the cost.

`phone_parse` is phonenumbers.parse for the common spelling of a number, "+" and the
digits (spaces or hyphens between groups allowed): parse first runs a dozen regular
expressions meant for free text ("tel:" URIs, extensions, letters, IDD prefixes), which
such a number does not need; the steps that decide the result (calling code, national
prefix, leading zeros) are the library's own, called in parse's order. Anything else,
and anything unusual on the way (an unknown calling code, a length out of range), goes
to parse itself. tests/cdp/core/test_phones.py compares the two over every region's
example numbers in several spellings and thousands of random ones.

`is_valid_number` first finds the region of a calling code that several regions share
(+44: GB, GG, IM, JE; +1: the NANP) by testing the number against each region's
patterns, then tests it against the found region's patterns again; and each test tries
the rare number types (premium rate, toll free, pager...) before fixed line and mobile.
Phone normalization was the largest single cost of parsing an ingested record. Here the
region's test is done once, and the common types first: the answer is the same (a type
test is an "any of", whatever the order), which tests/cdp/core/test_phones.py checks
against the library over every region's example numbers and their neighbours.

Uses private functions of phonenumbers (`_is_number_matching_desc`, the library's own type
test; parse's own steps); the version is pinned in requirements.txt.
"""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import (
    COUNTRY_CODE_TO_REGION_CODE,
    PhoneMetadata,
    PhoneNumber,
    ValidationResult,
    national_significant_number,
    region_code_for_country_code,
)
from phonenumbers.phonenumberutil import (
    _MAX_LENGTH_FOR_NSN,
    _MIN_LENGTH_FOR_NSN,
    REGION_CODE_FOR_NON_GEO_ENTITY,
    _extract_country_code,
    _is_number_matching_desc,
    _maybe_strip_national_prefix_carrier_code,
    _set_italian_leading_zeros_for_phone_number,
    _test_number_length,
)
from phonenumbers.re_util import re_compile

_SPECIAL_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan",
                  "voicemail")


# "+", a digit, then digits with single spaces or hyphens between groups.
_PLAIN_INTERNATIONAL = re.compile(r"\+[0-9]+(?:[ -][0-9]+)*")
_KEEPS_LOCAL_FORM = (ValidationResult.TOO_SHORT, ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
                     ValidationResult.INVALID_LENGTH)


def phone_parse(text: str, region: str | None) -> PhoneNumber:
    """phonenumbers.parse(text, region); raises phonenumbers.NumberParseException as it does."""
    if _PLAIN_INTERNATIONAL.fullmatch(text):
        number = _parse_plain_international(text.replace(" ", "").replace("-", "")[1:])
        if number is not None:
            return number
    return phonenumbers.parse(text, region)


def _parse_plain_international(digits: str) -> PhoneNumber | None:
    """parse's steps for "+digits" (region plays no part once a number has a "+");
    None where parse could answer otherwise or raise: parse decides those."""
    if len(digits) <= _MIN_LENGTH_FOR_NSN:
        return None
    country_code, national = _extract_country_code(digits)
    if country_code == 0 or len(national) < _MIN_LENGTH_FOR_NSN:
        return None
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code,
                                                                  region_code_for_country_code(country_code))
    if metadata is None:
        return None
    _, stripped, _ = _maybe_strip_national_prefix_carrier_code(national, metadata)
    if _test_number_length(stripped, metadata) not in _KEEPS_LOCAL_FORM:
        national = stripped
    if not _MIN_LENGTH_FOR_NSN <= len(national) <= _MAX_LENGTH_FOR_NSN:
        return None
    number = PhoneNumber(country_code=country_code)
    _set_italian_leading_zeros_for_phone_number(national, number)
    number.national_number = int(national)
    return number


def phone_is_valid(number: phonenumbers.PhoneNumber) -> bool:
    """phonenumbers.is_valid_number(number), computed faster."""
    regions = COUNTRY_CODE_TO_REGION_CODE.get(number.country_code)
    if not regions:
        return False
    national = national_significant_number(number)
    if len(regions) == 1:
        return _valid_for_region(number, national, regions[0])
    for region in regions:  # as phonenumbers.region_code_for_number looks for it
        metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
        if metadata is None:
            continue
        if metadata.leading_digits is not None:
            if re_compile(metadata.leading_digits).match(national):
                return _valid_for_region(number, national, region)
        elif _has_valid_type(national, metadata):
            # This is the number's region, found by the very test that validating the
            # number for it would repeat.
            return True
    return False


def _valid_for_region(number, national: str, region: str) -> bool:
    """phonenumbers.is_valid_number_for_region, with the type test below."""
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(number.country_code, region.upper())
    if metadata is None:
        return False
    if region != REGION_CODE_FOR_NON_GEO_ENTITY and \
            number.country_code != phonenumbers.country_code_for_valid_region(region):
        return False
    return _has_valid_type(national, metadata)


def _has_valid_type(national: str, metadata) -> bool:
    """Whether phonenumbers' number type would be anything but UNKNOWN: the general
    pattern, then any one type, fixed line and mobile first."""
    if not _is_number_matching_desc(national, metadata.general_desc):
        return False
    if _is_number_matching_desc(national, metadata.fixed_line):
        return True
    # As the library does: mobile is only asked when its pattern differs from fixed line's.
    if not metadata.same_mobile_and_fixed_line_pattern and _is_number_matching_desc(national, metadata.mobile):
        return True
    return any(_is_number_matching_desc(national, getattr(metadata, name)) for name in _SPECIAL_TYPES)
