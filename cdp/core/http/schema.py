"""OpenAPI pieces shared by every endpoint: the bearer scheme and problem+json errors."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

PROBLEM = "application/problem+json"
IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key", {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
    OpenApiParameter.HEADER, required=False,
    description="Send the same key with the same request to have it applied once: for 24 h the first response "
                "is replayed (header `Idempotent-Replayed: true`). A different request under the same key: 422; "
                "while the first is still running: 409. 1-255 visible ASCII characters (else 400 "
                "`invalid_idempotency_key`).")


class BearerApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "cdp.core.http.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "tsk_<prefix>_<secret>",
            "description": "An API key from `manage.py create_api_key`, as `Authorization: Bearer KEY`.",
        }


class ProblemErrorSerializer(serializers.Serializer):
    field = serializers.CharField(help_text="Dotted path of the offending field, e.g. `records[3].email`.")
    code = serializers.CharField()
    message = serializers.CharField()


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details; never holds personal data or the rejected value."""

    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    code = serializers.CharField(help_text="Stable snake_case error code.")
    errors = ProblemErrorSerializer(many=True, required=False, help_text="Validation errors.")
    missing_scope = serializers.CharField(required=False, help_text="On 403 `missing_scope`: the scope needed.")


_DESCRIPTIONS = {
    400: "Malformed JSON or a body that does not fit the schema.",
    401: "No valid API key (missing, unknown, expired or revoked).",
    403: "The key lacks the scope (`missing_scope`) or may not write as this source (`source_not_allowed`).",
    404: "Unknown id.",
    409: "Conflict; for an Idempotency-Key: the first request with this key is still running.",
    410: "The profile was erased (`erased`).",
    412: "If-Match does not name the current version.",
    413: "Batch limits exceeded (record count or body size).",
    422: "Unknown source, or an Idempotency-Key reused with a different body.",
    428: "If-Match is required.",
    429: "Throttled; see Retry-After.",
}


def problems(*statuses: int) -> dict:
    """`responses` entries for the given error statuses (401, 403 and 429 always apply)."""
    wanted = sorted({401, 403, 429, *statuses})
    return {(status, PROBLEM): OpenApiResponse(ProblemSerializer, description=_DESCRIPTIONS[status])
            for status in wanted}



RETRY_AFTER = OpenApiParameter("Retry-After", int, OpenApiParameter.HEADER, response=[429],
                               description="Seconds to wait before the key may call again.")
ETAG = OpenApiParameter("ETag", str, OpenApiParameter.HEADER, response=[200],
                        description="The profile's version, quoted; send it back as If-Match to correct it.")


class ApiAutoSchema(AutoSchema):
    """Names nested serializers after their view (`ProfilesBatchApi.InputSerializer` →
    `ProfilesBatchInput`), since every view calls its own `InputSerializer`; documents
    the throttling header every operation can answer."""

    def get_override_parameters(self):
        return [*super().get_override_parameters(), RETRY_AFTER]

    def get_serializer_name(self, serializer, direction):
        qualname = type(serializer).__qualname__
        if "." in qualname:
            outer, inner = qualname.split(".")[-2:]
            return outer.removesuffix("Api") + inner.removesuffix("Serializer")
        return super().get_serializer_name(serializer, direction)
