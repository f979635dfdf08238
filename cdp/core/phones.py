"""Phone validity as phonenumbers.is_valid_number decides it, at a third of the cost.

`is_valid_number` first finds the region of a calling code that several regions share
(+44: GB, GG, IM, JE; +1: the NANP) by testing the number against each region's
patterns, then tests it against the found region's patterns again; and each test tries
the rare number types (premium rate, toll free, pager...) before fixed line and mobile.
Phone normalization was the largest single cost of parsing an ingested record. Here the
region's test is done once, and the common types first: the answer is the same (a type
test is an "any of", whatever the order), which tests/cdp/core/test_phones.py checks
against the library over every region's example numbers and their neighbours.

Uses one private function of phonenumbers (`_is_number_matching_desc`, the library's own
type test); the version is pinned in requirements.txt.
"""

from __future__ import annotations

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata, national_significant_number
from phonenumbers.phonenumberutil import REGION_CODE_FOR_NON_GEO_ENTITY, _is_number_matching_desc
from phonenumbers.re_util import re_compile

_SPECIAL_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan",
                  "voicemail")


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
