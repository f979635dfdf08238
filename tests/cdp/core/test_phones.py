"""phone_is_valid gives phonenumbers.is_valid_number's answer, number for number."""

from __future__ import annotations

import random

import phonenumbers
from phonenumbers import PhoneNumberType

from cdp.core.phones import _PLAIN_INTERNATIONAL, _parse_plain_international, phone_is_valid, phone_parse


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


def _outcome(parse, text, region):
    try:
        return parse(text, region)
    except phonenumbers.NumberParseException as exc:
        return ("error", exc.error_type)


def spellings():
    """The test numbers as people and exports write them with a "+": E.164, grouped with
    spaces or hyphens, the national prefix left in ("+44 020 ..."), a "0" after the code;
    then random digit strings after a "+" (unknown codes, too short, too long)."""
    rng = random.Random(11)
    for number in numbers():
        code, national = str(number.country_code), phonenumbers.national_significant_number(number)
        metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
            number.country_code, phonenumbers.region_code_for_country_code(number.country_code))
        national_prefix = (metadata.national_prefix if metadata is not None else None) or "0"
        yield f"+{code}{national}"
        yield f"+{code} {national[:3]} {national[3:]}".rstrip()
        yield f"+{code}-{national[:2]}-{national[2:]}".rstrip("-")
        yield f"+{code} {national_prefix}{national}"
        yield f"+{code}0{national}"
    for _ in range(5000):
        yield "+" + "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 21)))
    yield from ["+", "+ 44", "+44--20", "+44 20 ", "+1-800-FLOWERS", "++44 20 7946 0000", "+44 20 7946 0000 ext 12"]


def test_phone_parse_answers_what_the_library_answers_for_every_spelling():
    checked = took_fast_path = 0
    for text in spellings():
        for region in (None, "GB", "US"):
            expected = _outcome(phonenumbers.parse, text, region)
            assert _outcome(phone_parse, text, region) == expected, (text, region)
            checked += 1
        took_fast_path += bool(_PLAIN_INTERNATIONAL.fullmatch(text)) and _parse_plain_international(
            text[1:].replace(" ", "").replace("-", "")) is not None
    assert checked > 30_000 and took_fast_path > 8_000
