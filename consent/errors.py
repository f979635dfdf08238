"""Error codes of the consent app (rendered as problem+json by cdp.core.http.problems)."""

from __future__ import annotations

from enum import StrEnum

from cdp.core.errors import ApplicationError, Conflict, Gone, NotFound


class ConsentErrorCode(StrEnum):
    PURPOSE_UNKNOWN = "purpose_unknown"
    CHANNEL_UNKNOWN = "channel_unknown"
    BASIS_UNKNOWN = "basis_unknown"
    NOTICE_UNKNOWN = "notice_unknown"
    JURISDICTION_INVALID = "jurisdiction_invalid"
    PROFILE_UNKNOWN = "unknown_profile"
    PROFILE_MERGED = "merged"
    PROFILE_ERASED = "erased"
    EVENT_UNKNOWN = "event_unknown"
    LEDGER_BROKEN = "ledger_broken"
    DSR_UNKNOWN = "dsr_unknown"
    DSR_TYPE_UNKNOWN = "dsr_type_unknown"
    DSR_NOT_PENDING = "dsr_not_pending"
    DSR_ALREADY_EXTENDED = "dsr_already_extended"
    DSR_CHANGES_REQUIRED = "changes_required"
    RETENTION_KIND_UNKNOWN = "retention_kind_unknown"
    INVALID_RANGE = "invalid_range"
    INVALID_FORMAT = "invalid_format"
    # A record of a consents batch, rejected alone (its `errors`).
    WRONG_TYPE = "wrong_type"
    INVALID_DATETIME = "invalid_datetime"
    INVALID_UUID = "invalid_uuid"
    PROFILE_REQUIRED = "required"
    IDENTIFIER_UNKNOWN = "unknown_identifier"
    SOURCE_REQUIRED = "source_required"
    NO_USABLE_IDENTIFIER = "no_usable_identifier"


class ConsentError(ApplicationError):
    code = "consent_invalid"


class ProfileUnknown(NotFound):
    code = ConsentErrorCode.PROFILE_UNKNOWN.value


class ProfileErased(Gone):
    code = ConsentErrorCode.PROFILE_ERASED.value


class ProfileMerged(Conflict):
    code = ConsentErrorCode.PROFILE_MERGED.value
