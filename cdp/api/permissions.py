"""Scope checks per view and method, and the source binding of keys."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.permissions import BasePermission

from cdp.api.errors import ApiErrorCode, Forbidden
from cdp.api.models import ApiKey
from cdp.core.errors import Unprocessable
from cdp.models import Source


class HasScopes(BasePermission):
    """The view declares `required_scopes = {"POST": "profiles:write", ...}`.

    A method the view does not list is refused (fail closed), so adding a handler
    without deciding its scope cannot open it to every key.
    """

    def has_permission(self, request, view) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            raise exceptions.NotAuthenticated("An API key is required: send 'Authorization: Bearer KEY'.")
        method = "GET" if request.method == "HEAD" else request.method
        if not hasattr(view, method.lower()):
            return True  # DRF answers 405 for a method the view does not implement
        scope = getattr(view, "required_scopes", {}).get(method)
        if scope is None:
            raise Forbidden("No API key may use this method here.")
        if scope not in api_key.scopes:
            raise Forbidden(f"The API key lacks the scope {scope}.", code=ApiErrorCode.MISSING_SCOPE,
                            extra={"missing_scope": scope})
        return True


def source_for_write(*, api_key: ApiKey, source_key: str) -> Source:
    """The source a request writes as, if this key may write as it.

    Checked before the source's existence, so a bound key learns nothing about other sources.
    """
    if api_key.source_id is not None and api_key.source.key != source_key:
        raise Forbidden("This API key can write only as the source it is bound to.",
                        code=ApiErrorCode.SOURCE_NOT_ALLOWED)
    return source_known(source_key)


def source_known(source_key: str) -> Source:
    source = Source.objects.filter(key=source_key).first()
    if source is None:
        # Unlike the commands' message, the API's never repeats the value it rejects.
        raise Unprocessable("No source has this key.", code="unknown_source")
    return source


def unbound_only(*, api_key: ApiKey) -> None:
    """For writes recorded as no integration's source (operator corrections)."""
    if api_key.source_id is not None:
        raise Forbidden("This API key can write only as the source it is bound to.",
                        code=ApiErrorCode.SOURCE_NOT_ALLOWED)
