"""The one DRF exception handler: every API error becomes RFC 9457 problem+json.

Bodies carry `type`, `title`, `status`, `detail`, a stable `code` and, for validation,
`errors: [{field, code, message}]`. They never echo the rejected value.

Errors that never reach DRF (a path no URL pattern matches, a view outside DRF) or that a
DRF view rendered with its own non-JSON renderer (the schema's YAML, the docs' HTML) are
made problem+json by ApiProblemMiddleware, for every path under /api/.
"""

from __future__ import annotations

import json
import logging

import psycopg
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpResponse, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

from cdp.core.errors import ApplicationError
from cdp.core.http.errors import safe_errors, safe_field_path

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "https://tessera.dev/problems/"

_DRF_CODES = {
    drf.ParseError: ("malformed_request", "Malformed request"),
    drf.AuthenticationFailed: ("unauthenticated", "Unauthenticated"),
    drf.NotAuthenticated: ("unauthenticated", "Unauthenticated"),
    drf.PermissionDenied: ("forbidden", "Forbidden"),
    drf.NotFound: ("not_found", "Not found"),
    drf.MethodNotAllowed: ("method_not_allowed", "Method not allowed"),
    drf.NotAcceptable: ("not_acceptable", "Not acceptable"),
    drf.UnsupportedMediaType: ("unsupported_media_type", "Unsupported media type"),
    drf.Throttled: ("throttled", "Too many requests"),
}


# The database unreachable, restarting, shutting down or dropping the connection: the
# request did nothing (its transaction, with its idempotency record, was not committed),
# so the client may send it again. psycopg's own types arrive when raised outside
# Django's wrapper (the connection pool).
UNAVAILABLE_ERRORS = (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)
RETRY_AFTER_SECONDS = 2


def is_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, UNAVAILABLE_ERRORS)


def unavailable_problem() -> dict:
    return problem(503, "unavailable", "Service unavailable",
                   "A service the API depends on is unavailable; retry the request later.")


def problem(status: int, code: str, title: str, detail: str, **extra) -> dict:
    body = {"type": TYPE_BASE + code, "title": title, "status": status, "detail": detail, "code": code}
    body.update(extra)
    return body


def flatten_validation_errors(detail, prefix: str = "") -> list[dict]:
    """DRF's nested error dict/list → [{field, code, message}] with dotted field paths."""
    errors: list[dict] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            field = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors":
                field = prefix or "body"
            errors.extend(flatten_validation_errors(value, field))
    elif isinstance(detail, list):
        for index, value in enumerate(detail):
            if isinstance(value, (dict, list)):
                errors.extend(flatten_validation_errors(value, f"{prefix}[{index}]" if prefix else f"[{index}]"))
            else:
                errors.extend(flatten_validation_errors(value, prefix))
    else:
        code = str(getattr(detail, "code", None) or "invalid")
        # DRF quotes the rejected value in some messages ('"x" is not a valid choice.').
        message = _VALUE_FREE_MESSAGES.get(code, str(detail))
        errors.append({"field": safe_field_path(prefix or "body"), "code": code, "message": message})
    return errors


_VALUE_FREE_MESSAGES = {
    "invalid_choice": "Not one of the allowed values.",
    "does_not_exist": "No object has this value.",
    "incorrect_type": "Wrong type.",
}


def problem_exception_handler(exc, context):
    if isinstance(exc, ApplicationError):
        extra = dict(exc.extra)
        if isinstance(extra.get("errors"), list):
            extra["errors"] = safe_errors(extra["errors"])
        body = problem(exc.status, exc.code, exc.title, exc.message, **extra)
        return _problem_response(body)
    if isinstance(exc, DjangoValidationError):
        exc = drf.ValidationError(detail=exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    if isinstance(exc, drf.ValidationError):
        errors = flatten_validation_errors(exc.detail)
        body = problem(400, "validation_failed", "Invalid request",
                       "The request body does not fit the schema.", errors=errors)
        return _problem_response(body)
    if isinstance(exc, drf.APIException):
        code, title = _DRF_CODES.get(type(exc), (exc.default_code, "Error"))
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.default_detail)
        body = problem(exc.status_code, code, title, str(detail))
        response = _problem_response(body)
        if isinstance(exc, drf.Throttled) and exc.wait is not None:
            response["Retry-After"] = str(max(1, int(exc.wait + 0.999)))
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            response["WWW-Authenticate"] = auth_header
        return response
    if is_unavailable(exc):
        logger.warning("service_unavailable", exc_info=exc, extra={"view": type(context.get("view")).__name__})
        response = _problem_response(unavailable_problem())
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    logger.error("unhandled_error", exc_info=exc, extra={"view": type(context.get("view")).__name__})
    body = problem(500, "internal_error", "Internal error", "An unexpected error occurred.")
    return _problem_response(body)


def _problem_response(body: dict) -> Response:
    response = Response(body, status=body["status"])
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


API_PREFIX = "/api/"
_PLAIN_ERRORS = {
    400: ("bad_request", "Bad request", "The request could not be read."),
    403: ("forbidden", "Forbidden", "This request is not allowed."),
    404: ("not_found", "Not found", "No resource at this path."),
    405: ("method_not_allowed", "Method not allowed", "This method is not allowed on this path."),
    500: ("internal_error", "Internal error", "An unexpected error occurred."),
}
# Headers a problem answer keeps from the response it replaces.
_KEPT_HEADERS = ("Allow", "WWW-Authenticate", "Retry-After")


class ApiProblemMiddleware:
    """Under /api/, an error answer that is not JSON becomes problem+json (decided by path,
    since Django's 404 for an unmatched path and views outside DRF know nothing of the API)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code < 400 or getattr(response, "streaming", False):
            return response
        if not (request.path_info.startswith(API_PREFIX) or request.path_info == API_PREFIX.rstrip("/")):
            return response
        if _is_json(response):
            return response
        data = getattr(response, "data", None)
        if isinstance(data, dict) and isinstance(data.get("code"), str) and data.get("status") == response.status_code:
            body = data  # DRF's problem, rendered by the view's own renderer (YAML, HTML)
        elif response.status_code in _PLAIN_ERRORS:
            body = problem(response.status_code, *_PLAIN_ERRORS[response.status_code])
        else:
            return response
        answer = JsonResponse(body, status=response.status_code, content_type=PROBLEM_CONTENT_TYPE)
        for header in _KEPT_HEADERS:
            if header in response:
                answer[header] = response[header]
        return answer


def _is_json(response) -> bool:
    content_type = response.get("Content-Type", "").split(";")[0].strip()
    if content_type not in ("application/json", PROBLEM_CONTENT_TYPE):
        return False
    try:
        json.loads(response.content)
    except ValueError:
        return False
    return True


class UnavailableMiddleware:
    """Plain Django views (web pages, health, anything outside DRF): the database away is
    a 503 with Retry-After too, never a 500 (problem+json under /api/)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not is_unavailable(exception):
            return None
        logger.warning("service_unavailable", exc_info=exception)
        if request.path.startswith("/api/"):
            response = JsonResponse(unavailable_problem(), status=503, content_type=PROBLEM_CONTENT_TYPE)
        else:
            response = HttpResponse("Temporarily unavailable: please try again in a moment.\n", status=503,
                                    content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
