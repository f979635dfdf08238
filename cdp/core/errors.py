"""Error types shared by every app.

`ApplicationError` carries a stable snake_case `code`; the DRF exception handler in
`cdp.core.http.problems` renders it as RFC 9457 problem+json. Messages never contain personal
data or the rejected value.
"""

from __future__ import annotations


class ConfigurationError(Exception):
    """A setting is missing or malformed; the message is one sentence naming it."""


class ApplicationError(Exception):
    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 extra: dict | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.extra = extra or {}


class NotFound(ApplicationError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(ApplicationError):
    status = 409
    code = "conflict"
    title = "Conflict"


class Gone(ApplicationError):
    status = 410
    code = "erased"
    title = "Gone"


class Unprocessable(ApplicationError):
    status = 422
    code = "unprocessable"
    title = "Unprocessable content"
