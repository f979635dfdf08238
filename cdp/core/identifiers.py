"""Normalizing identifiers and dropping junk, before they are blind-indexed.

Two spellings of the same person must produce the same normalized value (and so the same
blind index), and placeholder values that a form or export fills in ("null", "0",
"test@test.com") must never identify anyone: merging every profile that shares "unknown"
would be a privacy incident. So `normalize` has three outcomes: the normalized string,
None for junk (the caller silently drops it), or `InvalidIdentifier` for a malformed value
(the caller reports it). Exception messages never contain the value.
"""

from __future__ import annotations

import math
import re
import unicodedata
from functools import lru_cache

import phonenumbers

from cdp.core.phones import phone_is_valid, phone_parse

EMAIL = "email"
PHONE = "phone"
ANONYMOUS_ID = "anonymous_id"
CRM_ID = "crm_id"
USER_ID = "user_id"

# Global kinds mean the same person in every source (namespace ""); source-scoped ids are
# only unique within one source (namespace = the source key).
GLOBAL_KINDS: tuple[str, ...] = (EMAIL, PHONE, ANONYMOUS_ID)
SOURCE_SCOPED_KINDS: tuple[str, ...] = (CRM_ID, USER_ID)
IDENTIFIER_KINDS: tuple[str, ...] = GLOBAL_KINDS + SOURCE_SCOPED_KINDS
# The other keys a client chooses: attribute names (records, Segment traits, corrections);
# also what the problem+json handler may repeat in an error's field path.
ATTRIBUTE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

# Compared case-insensitively against the normalized value.
JUNK_VALUES = frozenset({
    "null", "undefined", "none", "nil", "n/a", "-1", "0",
    "anonymous", "unknown", "test@test.com", "example@example.com",
})
_ALL_ZEROS = re.compile(r"\+?0+")
_PHONE_FORMATTING = re.compile(r"[\s().\-/]")
_WHITESPACE = re.compile(r"\s")  # exactly the characters str.isspace() accepts
_MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit
# Floats above this no longer hold every integer exactly, so the id may already be wrong.
_MAX_EXACT_FLOAT = 2**53


class InvalidIdentifier(ValueError):
    """A malformed identifier; `code` is a stable snake_case string for API error entries."""

    def __init__(self, kind: str, code: str):
        # The kind may come from the request; name it only when it is one we know.
        label = kind if kind in IDENTIFIER_KINDS else "identifier"
        super().__init__(f"invalid {label}: {code}")
        self.kind = kind
        self.code = code


def normalize(
    kind: str,
    value: object,
    *,
    default_region: str | None = None,
    blocklist: frozenset[str] = frozenset(),
) -> str | None:
    """The canonical form of an identifier, None for junk; raises InvalidIdentifier.

    `default_region` (ISO 3166 alpha-2) is how phones without a "+" are read; `blocklist`
    holds further normalized values to treat as junk (e.g. a support desk's own address).
    """
    if kind not in IDENTIFIER_KINDS:
        raise InvalidIdentifier(kind, "unknown_identifier")
    if value is None:
        return None
    text = _as_text(kind, value).strip()
    if kind == EMAIL:
        return _normalize_email(text, blocklist)
    if kind == PHONE:
        return _normalize_phone(text, default_region, blocklist)
    return None if is_junk(text, blocklist) else text


def is_junk(normalized: str, blocklist: frozenset[str] = frozenset()) -> bool:
    folded = normalized.casefold()
    return (
        not folded
        or folded in JUNK_VALUES
        or _ALL_ZEROS.fullmatch(folded) is not None
        or folded in _folded(blocklist)
    )


@lru_cache(maxsize=8)
def _folded(blocklist: frozenset[str]) -> frozenset[str]:
    # Cached: the blocklist comes from settings and is the same object on every call.
    return frozenset(item.strip().casefold() for item in blocklist)


def _as_text(kind: str, value: object) -> str:
    """Strings as they are; whole numbers as digits, because CSV exports turn ids into
    ints or floats (12345.0). Emails must be strings."""
    if isinstance(value, str):
        return value
    if kind == EMAIL or isinstance(value, bool):
        raise InvalidIdentifier(kind, "wrong_type")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and _is_exact_whole(value):
        return str(int(value))
    raise InvalidIdentifier(kind, "wrong_type")


def _is_exact_whole(number: float) -> bool:
    return math.isfinite(number) and number.is_integer() and abs(number) <= _MAX_EXACT_FLOAT


def _normalize_email(text: str, blocklist: frozenset[str]) -> str | None:
    # NFKC folds fullwidth and other compatibility characters to their plain forms.
    candidate = unicodedata.normalize("NFKC", text).strip().lower()
    if is_junk(candidate, blocklist):
        return None
    if not _is_plausible_email(candidate):
        raise InvalidIdentifier(EMAIL, "invalid_email")
    return candidate


def _is_plausible_email(candidate: str) -> bool:
    """Structure only (one "@", a dotted domain); deliverability is not ours to judge."""
    if len(candidate) > _MAX_EMAIL_LENGTH or _WHITESPACE.search(candidate):
        return False
    local, at, domain = candidate.partition("@")
    if not at or not local or "@" in domain or "." not in domain:
        return False
    return all(domain.split("."))  # no empty labels: "a@.com", "a@b..com", "a@b."


def _normalize_phone(text: str, default_region: str | None, blocklist: frozenset[str]) -> str | None:
    # Checked raw first: placeholders like "n/a" or "000-000-0000" are junk, not errors.
    if is_junk(text, blocklist) or is_junk(_PHONE_FORMATTING.sub("", text), blocklist):
        return None
    region = default_region.strip().upper() if default_region else None
    try:
        number = phone_parse(text, region)
    except phonenumbers.NumberParseException:
        raise InvalidIdentifier(PHONE, "invalid_phone") from None  # keep the parser's details out
    if not phone_is_valid(number):
        raise InvalidIdentifier(PHONE, "invalid_phone")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None if is_junk(e164, blocklist) else e164
