"""Scope checks per view and method, and the source binding of keys.

Keys see only their own (CONTRACT.md): a key bound to a source reads, corrects, records
consent and files requests only for the people that source contributed
(`profiles_visible_to_key`, the one place every profile-scoped endpoint asks). Anyone
else answers exactly as an unknown id does, so a bound key cannot tell "not yours"
from "nobody". Unbound keys see everyone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from uuid import UUID

from rest_framework import exceptions
from rest_framework.permissions import BasePermission

from cdp.api.errors import ApiErrorCode, Forbidden
from cdp.api.models import ApiKey
from cdp.core.errors import NotFound, Unprocessable
from cdp.models import Source
from cdp.selectors import profiles_contributed_by_source


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


def profiles_visible_to_key(*, api_key: ApiKey, profile_ids: Iterable) -> set[UUID]:
    """The ids among `profile_ids` this key may see (all of them for an unbound key)."""
    if api_key.source_id is None:
        return {pid if isinstance(pid, UUID) else UUID(str(pid)) for pid in profile_ids}
    return profiles_contributed_by_source(profile_ids=profile_ids, source_id=api_key.source_id)


def profile_visible_check(*, api_key: ApiKey, profile_id, unknown: Exception | None = None) -> None:
    """Raise `unknown`, the error the endpoint gives for an id nobody has (default: a 404
    "No profile has this id."), for a person the key may not see.

    Called before anything else looks at the profile (its status included: an erased or
    merged person the key may not see is unknown to it too).
    """
    if api_key.source_id is not None and not profiles_visible_to_key(api_key=api_key, profile_ids=[profile_id]):
        raise unknown or NotFound("No profile has this id.")


def key_boundary(api_key: ApiKey) -> Callable[[Iterable], set[UUID]] | None:
    """`profiles_visible_to_key` as a filter of ids, for services that resolve people
    themselves (a DSR, a consent or event batch); None for an unbound key (everyone)."""
    if api_key.source_id is None:
        return None
    return lambda profile_ids: profiles_visible_to_key(api_key=api_key, profile_ids=profile_ids)
