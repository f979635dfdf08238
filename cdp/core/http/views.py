"""The base of every API view (profiles, consent, personalization, webhooks): key auth,
scopes, throttling, JSON limits, and the Idempotency-Key wrapper for writes."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp.core.errors import NotFound
from cdp.core.http.authentication import ApiKeyAuthentication
from cdp.core.http.errors import ApiErrorCode, PayloadTooLarge
from cdp.core.http.idempotency import (
    RequestFingerprint,
    StoredResponse,
    idempotency_key_check,
    idempotent_run,
)
from cdp.core.http.parsers import LimitedJSONParser
from cdp.core.http.permissions import HasScopes
from cdp.core.http.schema import ApiAutoSchema
from cdp.core.http.throttling import ApiKeyRateThrottle
from cdp.core.observability import route_of


class ApiView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasScopes]
    throttle_classes = [ApiKeyRateThrottle]
    parser_classes = [LimitedJSONParser]
    renderer_classes = [JSONRenderer]
    schema = ApiAutoSchema()
    required_scopes: dict[str, str] = {}
    max_body_bytes: int | None = None  # None: settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    def actor(self) -> str:
        return f"api_key:{self.request.auth.prefix}"

    def idempotent(self, run: Callable[[], StoredResponse], *, preconditions: str | None = None) -> Response:
        """Run a write once per Idempotency-Key (optional) and answer its response."""
        request = self.request
        key = request.headers.get("Idempotency-Key")
        if key is not None:
            idempotency_key_check(key)
        stored, replayed = idempotent_run(
            api_key=request.auth, endpoint=f"{request.method} {route_of(request)}", key=key,
            request=RequestFingerprint(request.path, request.data, preconditions),
            run=run)
        response = Response(stored.body, status=stored.status, headers=stored.headers)
        if replayed:
            response["Idempotent-Replayed"] = "true"
        return response


def validated(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def uuid_or_404(value: str, *, message: str):
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound(message) from None


def batch_limit(entries: list, *, limit: int, noun: str) -> None:
    """Too many entries rejects the whole request (CONTRACT.md: 413)."""
    if len(entries) > limit:
        raise PayloadTooLarge(f"A batch may hold at most {limit} {noun}.", code=ApiErrorCode.TOO_MANY_RECORDS)
