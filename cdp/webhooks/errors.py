"""Error codes of the webhooks API (rendered as problem+json by cdp.core.http.problems)."""

from __future__ import annotations

from enum import StrEnum


class WebhookErrorCode(StrEnum):
    INVALID_URL = "invalid_url"
    INVALID_SCHEME = "invalid_scheme"
    HTTPS_REQUIRED = "https_required"
    URL_HAS_CREDENTIALS = "url_has_credentials"
    PRIVATE_ADDRESS = "private_address"
    URL_TAKEN = "webhook_url_exists"
    UNKNOWN_EVENT = "unknown_event"
    NOT_FOUND = "not_found"
    # field codes in a 400's `errors`
    INVALID = "invalid"
    OUT_OF_RANGE = "out_of_range"
