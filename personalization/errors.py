"""Error codes of the personalization app (rendered as problem+json by cdp.core.http.problems)."""

from __future__ import annotations

from enum import StrEnum

from cdp.core.errors import ApplicationError, Conflict


class PersonalizationErrorCode(StrEnum):
    CONSENT_REQUIRED = "consent_required"
    PIPELINE_ACTIVE = "pipeline_active"
    PIPELINE_FAILED = "pipeline_failed"
    BUDGET_EXCEEDED = "privacy_budget_exceeded"
    NOT_ENOUGH_DATA = "not_enough_data"
    UNKNOWN_PURPOSE = "unknown_purpose"
    PROFILE_ERASED = "erased"
    NO_PREDICTION = "no_prediction"
    PROFILE_MERGED = "merged"
    INVALID_OVERRIDE = "invalid_override"


class ConsentRequired(ApplicationError):
    status = 403
    code = PersonalizationErrorCode.CONSENT_REQUIRED.value
    title = "Consent required"


class PipelineActive(Conflict):
    code = PersonalizationErrorCode.PIPELINE_ACTIVE.value


class BudgetExceeded(ApplicationError):
    """The release would take the ledger past its limit; nothing was computed or stored."""

    status = 409
    code = PersonalizationErrorCode.BUDGET_EXCEEDED.value
    title = "Privacy budget exhausted"


class InvalidOverride(ApplicationError):
    """An operator's block or pin names no catalogue item or segment, or gives no reason."""

    status = 422
    code = PersonalizationErrorCode.INVALID_OVERRIDE.value
    title = "Invalid override"
