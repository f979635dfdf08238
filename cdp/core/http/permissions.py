"""Scope checks per view and method, and the key boundary: what a key bound to a source may see.

Keys see only their own (CONTRACT.md): a key bound to a source reads, corrects, records
consent and files requests only for the people that source contributed
(`profiles_visible_to_key`, the one place every profile-scoped endpoint asks). Anyone
else answers exactly as an unknown id does, so a bound key cannot tell "not yours"
from "nobody". Unbound keys see everyone.

Which sources exist and which people a source contributed are the profile domain's
facts, and this package sits below the domains: `cdp` hands them over at start-up with
`boundary_register` (cdp.apps), the way the domains register handlers with consent.
Until then every bound key's request fails closed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from rest_framework import exceptions
from rest_framework.permissions import BasePermission

from cdp.core.errors import NotFound, Unprocessable
from cdp.core.http.errors import ApiErrorCode, Forbidden
from cdp.core.http.models import ApiKey


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


@dataclass(frozen=True)
class Boundary:
    """What the profile domain tells the HTTP layer (both plain functions of plain values)."""

    # The source with this key (a model instance with `.pk`), or None when there is none.
    source_by_key: Callable[[str], Any]
    # The ids among `profile_ids` that the source with this id contributed.
    profiles_of_source: Callable[..., set[UUID]]


_boundary: Boundary | None = None


def boundary_register(boundary: Boundary) -> None:
    global _boundary
    _boundary = boundary


def _registered() -> Boundary:
    if _boundary is None:
        raise RuntimeError("No key boundary registered: cdp.apps registers it at start-up.")
    return _boundary


def source_for_write(*, api_key: ApiKey, source_key: str):
    """The source a request writes as, if this key may write as it.

    A bound key naming any other source, known or not, is refused the same way, so it
    learns nothing about other sources.
    """
    source = _registered().source_by_key(source_key)
    if api_key.source_id is not None and (source is None or source.pk != api_key.source_id):
        raise Forbidden("This API key can write only as the source it is bound to.",
                        code=ApiErrorCode.SOURCE_NOT_ALLOWED)
    return _known(source)


def source_known(source_key: str):
    return _known(_registered().source_by_key(source_key))


def _known(source):
    if source is None:
        # Unlike the commands' message, the API's never repeats the value it rejects.
        raise Unprocessable("No source has this key.", code=ApiErrorCode.UNKNOWN_SOURCE)
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
    return _registered().profiles_of_source(profile_ids=profile_ids, source_id=api_key.source_id)


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
