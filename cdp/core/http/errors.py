"""Error codes and problem types of the HTTP layer every API shares (rendered by
`cdp.core.http.problems`); each domain keeps its own codes (`cdp.errors.CdpErrorCode`, ...)."""

from __future__ import annotations

import re
from enum import StrEnum

from cdp.core.errors import ApplicationError
from cdp.core.identifiers import ATTRIBUTE_NAME, IDENTIFIER_KINDS


class ApiErrorCode(StrEnum):
    MISSING_SCOPE = "missing_scope"
    SOURCE_NOT_ALLOWED = "source_not_allowed"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    TOO_MANY_RECORDS = "too_many_records"
    INVALID_CURSOR = "invalid_cursor"
    INVALID_LIMIT = "invalid_limit"
    INVALID_IDEMPOTENCY_KEY = "invalid_idempotency_key"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    IDEMPOTENCY_KEY_IN_USE = "idempotency_key_in_use"
    PRECONDITION_REQUIRED = "precondition_required"
    PRECONDITION_FAILED = "precondition_failed"
    VALIDATION_FAILED = "validation_failed"
    UNKNOWN_SOURCE = "unknown_source"


class Forbidden(ApplicationError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class PayloadTooLarge(ApplicationError):
    status = 413
    code = ApiErrorCode.PAYLOAD_TOO_LARGE.value
    title = "Content too large"


class PreconditionRequired(ApplicationError):
    status = 428
    code = ApiErrorCode.PRECONDITION_REQUIRED.value
    title = "Precondition required"


class PreconditionFailed(ApplicationError):
    status = 412
    code = ApiErrorCode.PRECONDITION_FAILED.value
    title = "Precondition failed"


class InvalidInput(ApplicationError):
    """A 400 with the contract's `errors: [{field, code, message}]` member."""

    status = 400
    code = ApiErrorCode.VALIDATION_FAILED.value
    title = "Invalid request"

    def __init__(self, message: str, *, errors: list[dict], code: str | None = None):
        super().__init__(message, code=code, extra={"errors": errors})


# `...attributes.<name>`, `...identifiers.<kind>`, `...profile.<kind>`: the last part is a key the
# client chose, which can be anything, personal data included (an email used as a key).
_KEYED_PATH = re.compile(
    r"^(?P<parent>(?:.*?[.\]])??(?P<container>attributes|identifiers|profile))\.(?P<key>.+)$", re.S)


def safe_field_path(path: str) -> str:
    """An error's field path that names a client-chosen key only when it is a valid name.

    An invalid attribute name or an unknown identifier kind is the rejected value itself,
    so it is not repeated (CONTRACT.md: no error echoes the rejected value): the path
    stops at its container (`attributes`, `identifiers`, `profile`).
    """
    match = _KEYED_PATH.match(path or "")
    if match is None:
        return path
    key, container = match["key"], match["container"]
    valid = ATTRIBUTE_NAME.fullmatch(key) if container == "attributes" else key in (*IDENTIFIER_KINDS, "country")
    return path if valid else match["parent"]


def safe_errors(errors: list[dict]) -> list[dict]:
    return [{**e, "field": safe_field_path(e["field"])} if isinstance(e, dict) and "field" in e else e
            for e in errors]


def safe_batch_results(results: list[dict]) -> list[dict]:
    """Batch answers are replayed from storage too: their error paths must be safe as well."""
    return [{**r, "errors": safe_errors(r["errors"])} if r.get("errors") else r for r in results]
