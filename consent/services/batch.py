"""Consent decisions in bulk, from a CMP or a CRM (`POST /api/v1/consents/batch`).

Every record is checked on its own (a bad one is rejected alone, with field errors that
name codes, never values), the people are found through the profile domain's RESOLVE
handler, and the valid decisions are recorded together by `consents_record_many` (one
transaction, chain heads and states read once). Reads and writes pseudonymous ids and
purposes; logs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from uuid import UUID

from cdp.core.identifiers import IDENTIFIER_KINDS, SOURCE_SCOPED_KINDS
from cdp.core.timestamps import parse_timestamp
from consent import registry
from consent.errors import ConsentError, ConsentErrorCode, ProfileErased, ProfileUnknown
from consent.notices import notice_versions
from consent.purposes import PURPOSES
from consent.selectors import profile_canonical
from consent.services.consents import ConsentChange, consents_record_many, notice_version_check


class RecordRejected(Exception):
    """One record of a batch is invalid; `errors` say which fields and why."""

    def __init__(self, errors: list[dict]):
        super().__init__("The record is not valid.")
        self.errors = errors


@dataclass
class _Checked:
    result: dict
    change: ConsentChange | None = None
    profile_id: UUID | None = None


def _error(field_name: str, code: str, message: str) -> dict:
    return {"field": field_name, "code": str(code), "message": message}


def consents_batch_record(records: list, *, channel: str, source: str | None, actor: str,
                          visible: Callable[[Iterable], set] | None = None) -> list[dict]:
    """One result per record, in input order: `{index, status, profile_id, event_id, errors}`
    with status `recorded`, `unchanged`, `unknown_profile` or `rejected`.

    `visible` (a key's boundary; None: everyone) turns records naming people it leaves
    out into `unknown_profile`, exactly as for a stranger.
    """
    versions = notice_versions()
    checked = [_record_check(index, raw, source=source, versions=versions) for index, raw in enumerate(records)]
    valid = [c for c in checked if c.profile_id is not None]
    if valid and visible is not None:
        seen = visible({c.profile_id for c in valid})
        for c in valid:
            if c.profile_id not in seen:
                c.result.update(status="unknown_profile")
                c.profile_id = None
        valid = [c for c in valid if c.profile_id is not None]
    if valid:
        recorded = consents_record_many([(c.profile_id, [c.change]) for c in valid],
                                        channel=channel, actor=actor, source=source or "")
        for c, [outcome] in zip(valid, recorded, strict=True):
            c.result.update(status=outcome.status, profile_id=str(c.profile_id),
                            event_id=str(outcome.event.id) if outcome.event else None)
    return [c.result for c in checked]


def _record_check(index: int, raw, *, source: str | None, versions: dict) -> _Checked:
    """The record's result so far; its change and person when it is valid and names a known one."""
    result = {"index": index, "status": "rejected", "profile_id": None, "event_id": None, "errors": []}
    try:
        change = _record_change(raw, source=source)
        profile_id = _record_profile(raw, source)
        _notice_check(change, versions)
    except RecordRejected as rejected:
        result["errors"] = rejected.errors
        return _Checked(result)
    if profile_id is None:
        result["status"] = "unknown_profile"
        return _Checked(result)
    return _Checked(result, change, profile_id)


def _record_change(raw, *, source: str | None) -> ConsentChange:
    """The decision a record states; every invalid field is reported at once."""
    if not isinstance(raw, dict):
        raise RecordRejected([_error("record", ConsentErrorCode.WRONG_TYPE, "A record must be an object.")])
    errors = []
    purpose, granted = raw.get("purpose"), raw.get("granted")
    if purpose not in PURPOSES:
        errors.append(_error("purpose", ConsentErrorCode.PURPOSE_UNKNOWN, "Unknown purpose."))
    if not isinstance(granted, bool):
        errors.append(_error("granted", ConsentErrorCode.WRONG_TYPE, "granted must be true or false."))
    version = raw.get("notice_version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 1):
        errors.append(_error("notice_version", ConsentErrorCode.WRONG_TYPE,
                             "notice_version must be a whole number from 1."))
    occurred_at = None
    if raw.get("occurred_at") is not None:
        occurred_at = parse_timestamp(raw["occurred_at"])
        if occurred_at is None:
            errors.append(_error("occurred_at", ConsentErrorCode.INVALID_DATETIME,
                                 "Use an RFC 3339 date-time (UTC without an offset) or a date."))
    errors += _person_errors(raw, source)
    if errors:
        raise RecordRejected(errors)
    return ConsentChange(purpose, granted, version, occurred_at)


def _notice_check(change: ConsentChange, versions: dict) -> None:
    try:
        notice_version_check(change, versions)
    except ConsentError as error:
        raise RecordRejected([_error("notice_version", error.code, error.message)]) from None


def _person_errors(raw: dict, source: str | None) -> list[dict]:
    """What is wrong with how the record names its person (before anyone is looked up)."""
    if raw.get("profile_id") is not None:
        try:
            UUID(str(raw["profile_id"]))
        except ValueError:
            return [_error("profile_id", ConsentErrorCode.INVALID_UUID, "profile_id must be a UUID.")]
        return []
    identifiers = raw.get("profile")
    if not isinstance(identifiers, dict) or not identifiers:
        return [_error("profile", ConsentErrorCode.PROFILE_REQUIRED, "Name the person with profile or profile_id.")]
    # `country` is no identifier: it says how a phone without "+" is read.
    if any(kind not in IDENTIFIER_KINDS and kind != "country" for kind in identifiers):
        return [_error("profile", ConsentErrorCode.IDENTIFIER_UNKNOWN, "Unknown identifier kind.")]
    if any(kind in SOURCE_SCOPED_KINDS for kind in identifiers) and not source:
        return [_error("source", ConsentErrorCode.SOURCE_REQUIRED, "crm_id and user_id need source.")]
    return []


def _record_profile(raw: dict, source: str | None) -> UUID | None:
    """The active person a valid record names (a merged-away id: its survivor); None when
    nobody (unknown or erased)."""
    if raw.get("profile_id") is not None:
        try:
            return profile_canonical(UUID(str(raw["profile_id"])), follow_merge=True)
        except (ProfileUnknown, ProfileErased):
            return None
    try:
        found = [pid for ids in registry.run(registry.RESOLVE, identifiers=raw["profile"], source=source)
                 for pid in ids]
    except ValueError as error:
        # The RESOLVE handler's message is a code naming what is wrong (never the value).
        raise RecordRejected([_error("profile", str(error) or "invalid_identifier",
                                     "An identifier is not valid.")]) from None
    return UUID(str(found[0])) if found else None
