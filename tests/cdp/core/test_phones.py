"""phone_is_valid gives phonenumbers.is_valid_number's answer, number for number."""

from __future__ import annotations

import random

import phonenumbers
from phonenumbers import PhoneNumberType

from cdp.core.phones import phone_is_valid


def numbers():
    """Every region's example number of every type, the non-geographic ones, and each
    one's neighbours: a digit changed, one more, one fewer, a leading zero."""
    rng = random.Random(7)
    examples = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for number_type in range(PhoneNumberType.VOICEMAIL + 1):  # FIXED_LINE (0) to VOICEMAIL: all but UNKNOWN
            example = phonenumbers.example_number_for_type(region, number_type)
            if example is not None:
                examples.append(example)
        invalid = phonenumbers.invalid_example_number(region)
        if invalid is not None:
            examples.append(invalid)
    for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        example = phonenumbers.example_number_for_non_geo_entity(code)
        if example is not None:
            examples.append(example)
    for example in examples:
        yield example
        digits = str(example.national_number)
        variants = {digits + str(rng.randrange(10)), digits[:-1] or "1",
                    digits[:-1] + str((int(digits[-1]) + 1 + rng.randrange(9)) % 10)}
        for variant in variants:
            yield phonenumbers.PhoneNumber(country_code=example.country_code, national_number=int(variant))
        yield phonenumbers.PhoneNumber(country_code=example.country_code, national_number=example.national_number,
                                       italian_leading_zero=True)
    for _ in range(3000):  # random numbers under busy shared calling codes and some unassigned ones
        code = rng.choice([1, 7, 44, 61, 262, 290, 590, 599, 800, 882, 999])
        yield phonenumbers.PhoneNumber(country_code=code, national_number=rng.randrange(10 ** rng.randrange(4, 13)))


def test_the_same_answer_as_the_library_for_every_kind_of_number():
    checked = valid = 0
    for number in numbers():
        expected = phonenumbers.is_valid_number(number)
        assert phone_is_valid(number) == expected, phonenumbers.format_number(
            number, phonenumbers.PhoneNumberFormat.E164)
        checked += 1
        valid += expected
    # Both answers are well represented, so neither could pass by always saying one thing.
    assert checked > 5000 and 0.2 < valid / checked < 0.8
