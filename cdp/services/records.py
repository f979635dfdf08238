"""Validating incoming records and turning their identifiers into blind-index keys.

Pure functions: no database. Error entries name the field and a stable code, never the
rejected value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from django.conf import settings
from django.utils import timezone

from cdp import crypto
from cdp.core.identifiers import (
    ATTRIBUTE_NAME,
    GLOBAL_KINDS,
    IDENTIFIER_KINDS,
    SOURCE_SCOPED_KINDS,
    InvalidIdentifier,
    normalize,
)
from cdp.core.json_codec import json_bytes, stdlib_length_exceeds
from cdp.core.pseudonyms import keyed_digest
from cdp.core.timestamps import parse_timestamp

MAX_RECORD_BYTES = 32 * 1024
# The text records were digested as before digests became json_bytes' (stored digests of
# that time are still recognized): json.dumps(value, sort_keys=True, default=str).
_LEGACY_DIGEST_JSON = json.JSONEncoder(sort_keys=True, default=str)
COUNTRY_CODE = re.compile(r"^[A-Za-z]{2}$")


@dataclass
class ItemResult:
    """One item's outcome in a batch's answer (a record or an event), in input order."""

    index: int
    status: str
    profile_id: str | None = None
    errors: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"index": self.index, "status": self.status, "profile_id": self.profile_id, "errors": self.errors}


@dataclass(frozen=True)
class IdentifierKey:
    kind: str
    namespace: str
    blind_index: str
    value: str  # normalized plaintext; lives only in memory and inside ciphertexts
    # (kind, namespace, blind_index): how identities are keyed; built once, read often.
    key: tuple[str, str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "key", (self.kind, self.namespace, self.blind_index))

    @property
    def is_source_scoped(self) -> bool:
        return self.kind in SOURCE_SCOPED_KINDS


@dataclass
class ParsedRecord:
    index: int
    source_key: str
    external_id: str
    external_key: str
    identifiers: list[IdentifierKey]
    attributes: dict
    observed_at: datetime
    digest: str
    errors: list[dict] = field(default_factory=list)
    _payload: dict | None = field(default=None, repr=False, compare=False)

    def digest_matches(self, stored: str) -> bool:
        """Whether a stored record's digest is this record's: the same content re-sent."""
        return stored == self.digest or stored == payload_digest_legacy(self.source_key, self.digest_content())

    def digest_content(self) -> dict:
        # observed_at stays out of the digest: a re-sent record with a fresh timestamp is unchanged.
        return {k: v for k, v in self.payload().items() if k != "observed_at"}

    def payload(self) -> dict:
        """What is stored (encrypted) as the SourceRecord: normalized identifiers.

        Built once per record; callers treat it as read-only.
        """
        if self._payload is None:
            self._payload = {
                "external_id": self.external_id,
                "identifiers": {k.kind: k.value for k in self.identifiers},
                "attributes": self.attributes,
                "observed_at": self.observed_at.isoformat(),
            }
        return self._payload


class RecordRejected(Exception):
    def __init__(self, errors: list[dict]):
        super().__init__("record rejected")
        self.errors = errors


def error(field_name: str, code: str, message: str) -> dict:
    return {"field": field_name, "code": code, "message": message}


def external_key_for(*, source_key: str, external_id: str) -> str:
    return crypto.blind_index(kind="external_id", namespace=source_key, normalized_value=external_id)


def parse_identifiers(raw, *, source_key: str, region: str | None, field_prefix: str = "identifiers",
                      cache: dict | None = None):
    """Normalize identifiers; junk values are dropped, malformed ones are errors.

    `cache` (a dict the caller keeps for one batch of one source, never longer: it holds
    plaintext identifiers) remembers each value's outcome, so a value repeated in a
    batch is normalized and blind-indexed once.
    """
    keys: list[IdentifierKey] = []
    errors: list[dict] = []
    if not isinstance(raw, dict):
        return keys, [error(field_prefix, "wrong_type", "Identifiers must be an object.")]
    for kind, value in raw.items():
        if kind not in IDENTIFIER_KINDS:
            errors.append(error(f"{field_prefix}.{kind}", "unknown_identifier",
                                f"Unknown identifier kind; use one of {', '.join(IDENTIFIER_KINDS)}."))
            continue
        if value is None:
            continue
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            errors.append(error(f"{field_prefix}.{kind}", "wrong_type", "An identifier must be a string."))
            continue
        if cache is None:
            outcome = _identifier_outcome(kind, value, source_key=source_key, region=region)
        else:
            cache_key = (kind, type(value), value, region, source_key)
            outcome = cache.get(cache_key)
            if outcome is None:
                outcome = cache[cache_key] = _identifier_outcome(kind, value, source_key=source_key, region=region)
        if isinstance(outcome, IdentifierKey):
            keys.append(outcome)
        elif outcome:  # an error code
            errors.append(error(f"{field_prefix}.{kind}", outcome, f"The {kind} is not valid."))
        # else junk: never identifies anyone
    return keys, errors


def _identifier_outcome(kind: str, value, *, source_key: str, region: str | None):
    """The IdentifierKey of a value, "" for junk, or the error code of a malformed one."""
    try:
        normalized = normalize(kind, value, default_region=region, blocklist=settings.TESSERA_IDENTIFIER_BLOCKLIST)
    except InvalidIdentifier as exc:
        return exc.code
    if normalized is None:
        return ""
    namespace = "" if kind in GLOBAL_KINDS else source_key
    return IdentifierKey(kind, namespace, crypto.blind_index(kind=kind, namespace=namespace,
                                                             normalized_value=normalized), normalized)


def parse_observed_at(raw, path: str = "observed_at", zone: tzinfo = UTC) -> datetime:
    """`zone`: where a value without an offset is read (its source's time zone, else UTC)."""
    if raw is None:
        return timezone.now()
    parsed = parse_timestamp(raw, default_zone=zone)
    if parsed is None:
        raise RecordRejected([error(path, "invalid_datetime", "Use an RFC 3339 date-time (an offset is optional: "
                                                              "UTC without one) or a date.")])
    return parsed


def phone_region(attributes: dict) -> str | None:
    """How a phone without "+" is read: the record's `country` (ISO 3166 alpha-2), else
    TESSERA_DEFAULT_PHONE_REGION, else only international numbers are accepted."""
    country = attributes.get("country") if isinstance(attributes, dict) else None
    if isinstance(country, str) and COUNTRY_CODE.match(country.strip()):
        return country.strip().upper()
    return settings.TESSERA_DEFAULT_PHONE_REGION


def identifiers_and_region(raw: dict, *, field_prefix: str) -> tuple[dict, str | None, list[dict]]:
    """A person-naming object (`{"email": ..., "phone": ..., "country"?: "FR"}`) split into its
    identifiers and the region its phone is read in, with an error for a malformed country."""
    identifiers = {kind: value for kind, value in raw.items() if kind != "country"}
    country = raw.get("country")
    if country is not None and not (isinstance(country, str) and COUNTRY_CODE.match(country.strip())):
        return identifiers, None, [error(f"{field_prefix}.country", "invalid_country",
                                         "country is an ISO 3166 alpha-2 code, e.g. FR.")]
    return identifiers, phone_region(raw), []


def parse_record(raw, *, index: int, source_key: str, cache: dict | None = None, zone: tzinfo = UTC) -> ParsedRecord:
    """Validate one record of a profiles batch; raises RecordRejected with all errors.

    `cache`: see parse_identifiers (one batch of one source); `zone`: see parse_observed_at.
    """
    if not isinstance(raw, dict):
        raise RecordRejected([error("record", "wrong_type", "A record must be an object.")])
    if stdlib_length_exceeds(raw, MAX_RECORD_BYTES):
        raise RecordRejected([error("record", "record_too_large",
                                    f"A record may hold at most {MAX_RECORD_BYTES} bytes.")])
    errors: list[dict] = []
    external_id = raw.get("external_id")
    if isinstance(external_id, int) and not isinstance(external_id, bool):
        external_id = str(external_id)
    if not isinstance(external_id, str) or not external_id.strip():
        errors.append(error("external_id", "required", "external_id is required."))
    elif len(external_id) > 255:
        errors.append(error("external_id", "too_long", "external_id may hold at most 255 characters."))
    attributes = raw.get("attributes") or {}
    if not isinstance(attributes, dict):
        errors.append(error("attributes", "wrong_type", "attributes must be an object."))
        attributes = {}
    for name in attributes:
        if not ATTRIBUTE_NAME.match(str(name)):
            errors.append(error(f"attributes.{name}" if len(str(name)) < 80 else "attributes", "invalid_name",
                                "Attribute names are lower-case letters, digits and underscores."))
    if "identifiers" not in raw:
        errors.append(error("identifiers", "required", "At least one identifier is required."))
        keys = []
    else:
        keys, id_errors = parse_identifiers(raw.get("identifiers"), source_key=source_key,
                                            region=phone_region(attributes), cache=cache)
        errors.extend(id_errors)
    try:
        observed_at = parse_observed_at(raw.get("observed_at"), zone=zone)
    except RecordRejected as exc:
        errors.extend(exc.errors)
        observed_at = None
    if not errors and not keys:
        errors.append(error("identifiers", "no_usable_identifier", "The record has no usable identifier."))
    if errors:
        raise RecordRejected(errors)
    external_id = external_id.strip()
    attributes = {str(k): v for k, v in attributes.items() if v is not None}
    parsed = ParsedRecord(index=index, external_id=external_id,
                          external_key=external_key_for(source_key=source_key, external_id=external_id),
                          identifiers=_dedupe(keys), attributes=attributes, observed_at=observed_at, digest="",
                          source_key=source_key)
    parsed.digest = payload_digest(source_key, parsed.digest_content())
    return parsed


def payload_digest(source_key: str, content: dict) -> str:
    """A keyed digest of a record's content, to tell a re-sent record from a changed one."""
    text = json_bytes([source_key, content], sort_keys=True, default=str).decode()
    return keyed_digest(text, purpose="record-payload:v2")


def payload_digest_legacy(source_key: str, content: dict) -> str:
    return keyed_digest(_LEGACY_DIGEST_JSON.encode([source_key, content]), purpose="record-payload")


def _dedupe(keys: list[IdentifierKey]) -> list[IdentifierKey]:
    seen, unique = set(), []
    for key in keys:
        if key.key not in seen:
            seen.add(key.key)
            unique.append(key)
    return unique
