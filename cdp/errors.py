"""Error codes of the profile domain (sources, records, profiles, merges, conflicts, API
keys), rendered as problem+json by `cdp.core.http.problems`. The HTTP layer's own codes
(scopes, cursors, idempotency, body limits) are `cdp.core.http.errors.ApiErrorCode`."""

from __future__ import annotations

from enum import StrEnum

from cdp.core.errors import Conflict, Gone


class CdpErrorCode(StrEnum):
    # profiles
    ERASED = "erased"
    MERGED = "merged"
    PROFILE_NOT_ACTIVE = "profile_not_active"
    # merges and their undoing
    ALREADY_UNDONE = "already_undone"
    SURVIVOR_NOT_ACTIVE = "survivor_not_active"
    ABSORBED_NOT_RESTORABLE = "absorbed_not_restorable"
    # merge conflicts under review
    ALREADY_RESOLVED = "already_resolved"
    NOT_APPLICABLE = "not_applicable"
    RECORD_GONE = "record_gone"
    INVALID_STATUS = "invalid_status"
    # sources
    INVALID_SOURCE_KEY = "invalid_key"
    INVALID_KIND = "invalid_kind"
    INVALID_ASSURANCE = "invalid_assurance"
    INVALID_TIME_ZONE = "invalid_time_zone"
    SOURCE_EXISTS = "source_exists"
    UNKNOWN_SOURCE = "unknown_source"
    # records, lookups and corrections
    SOURCE_REQUIRED = "source_required"
    EXACTLY_ONE_IDENTIFIER = "exactly_one_identifier"
    IDENTIFIER_CONFLICT = "identifier_conflict"
    IDENTIFIER_SUPPRESSED = "identifier_suppressed"
    # API keys
    INVALID_NAME = "invalid_name"
    INVALID_SCOPE = "invalid_scope"
    INVALID_EXPIRY = "invalid_expiry"


class ProfileErased(Gone):
    code = CdpErrorCode.ERASED.value

    def __init__(self, message: str = "The profile was erased.", **kwargs):
        super().__init__(message, **kwargs)


class ProfileMerged(Conflict):
    code = CdpErrorCode.MERGED.value
