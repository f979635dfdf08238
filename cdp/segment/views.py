"""Segment's HTTP Tracking API: /v1/batch and the single-message endpoints.

Answers as Segment does, so SDKs behave unchanged: 200 `{"success": true}` once the
body is read (bad messages inside it go to the ingestion-error log), 400 for a body that
is not JSON, 401 for an unknown write key, 413 for a body too large. Error bodies carry
`code` and `message` (what the SDKs read), never a value from the request.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.authentication import BaseAuthentication
from rest_framework.views import APIView

from cdp.core.http.problems import RETRY_AFTER_SECONDS, is_unavailable
from cdp.segment import transport
from cdp.segment.services import segment_messages_ingest
from cdp.services.sources import source_by_write_key

MAX_BATCH_MESSAGES = 5000  # the events batch limit; SDKs send 100 or ~500 KB at a time



class WriteKeyAuthentication(BaseAuthentication):
    """Documents the write key in the schema; the views check it themselves (below), so a
    refusal is answered the way Segment SDKs read it rather than as problem+json."""

    def authenticate(self, request):
        return None


class WriteKeyScheme(OpenApiAuthenticationExtension):
    target_class = WriteKeyAuthentication
    name = "writeKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "basic",
                "description": "A source's write key as the HTTP Basic user name, with an empty password."}


class SegmentSuccessSerializer(serializers.Serializer):
    success = serializers.BooleanField(help_text="Always true.")


class SegmentErrorSerializer(serializers.Serializer):
    success = serializers.BooleanField(help_text="Always false.")
    code = serializers.CharField(help_text="Stable snake_case code, e.g. `malformed_json`, `unauthenticated`.")
    message = serializers.CharField(help_text="One sentence; never quotes the request.")


class SegmentMessageSerializer(serializers.Serializer):
    """The members Tessera reads; any other member of Segment's spec is accepted and ignored."""

    type = serializers.CharField(required=False, help_text="In a batch: identify, track, page, screen, group "
                                                           "or alias.")
    userId = serializers.CharField(required=False, allow_null=True)  # Segment's member names
    anonymousId = serializers.CharField(required=False, allow_null=True)
    previousId = serializers.CharField(required=False, help_text="alias: the id being linked to userId.")
    event = serializers.CharField(required=False, help_text="track: the event name.")
    traits = serializers.DictField(required=False, help_text="identify: email and phone become identifiers, "
                                                             "other traits attributes.")
    properties = serializers.DictField(required=False)
    context = serializers.DictField(required=False)
    timestamp = serializers.CharField(required=False, help_text="ISO 8601.")
    messageId = serializers.CharField(required=False, help_text="Deduplicates, as at Segment.")


class SegmentBatchSerializer(serializers.Serializer):
    batch = SegmentMessageSerializer(many=True, help_text=f"At most {MAX_BATCH_MESSAGES} messages; a malformed "
                                                          "one goes to the ingestion-error log, the rest are stored.")
    context = serializers.DictField(required=False)
    sentAt = serializers.CharField(required=False)
    writeKey = serializers.CharField(required=False, help_text="Instead of HTTP Basic.")


class SegmentSingleMessageSerializer(SegmentMessageSerializer):
    writeKey = serializers.CharField(required=False, help_text="Instead of HTTP Basic.")
    sentAt = serializers.CharField(required=False)


_ERRORS = {
    400: "The body is not a JSON object (or not valid gzip), or `batch` is not a list.",
    401: "Unknown write key.",
    413: "Body (or inflated body) or batch too large.",
    415: "A Content-Encoding other than gzip or identity.",
    503: "Temporarily unavailable (the database is away): nothing was stored; retry after `Retry-After` seconds.",
}
_RESPONSES = {
    200: OpenApiResponse(SegmentSuccessSerializer, description='`{"success": true}`'),
    **{status: OpenApiResponse(SegmentErrorSerializer, description=description)
       for status, description in _ERRORS.items()},
}
_AUTH = ("Authenticate with the source's write key as the HTTP Basic user name (empty password), "
         "or as `writeKey` in the body. `Content-Encoding: gzip` is accepted.")


def _answer(status: int = 200, code: str | None = None, message: str | None = None) -> JsonResponse:
    if status == 200:
        return JsonResponse({"success": True})
    response = JsonResponse({"success": False, "code": code, "message": message}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Basic realm="tessera"'
    return response


@csrf_exempt  # SDKs post without cookies; nothing here reads or changes state
def segment_not_found(request):
    return _answer(404, "not_found", "No such endpoint.")


class _SegmentApi(APIView):
    # The write key is the only credential here, checked below; DRF's auth, parsers and
    # throttles would answer in problem+json, which Segment SDKs cannot read.
    authentication_classes: list = [WriteKeyAuthentication]
    permission_classes: list = []
    parser_classes: list = []
    throttle_classes: list = []

    def handle_exception(self, exc):
        # Segment's SDKs retry a 5xx; the body keeps Segment's shape, not problem+json.
        if is_unavailable(exc):
            response = _answer(503, "unavailable", "Temporarily unavailable; retry the batch later.")
            response["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return response
        return super().handle_exception(exc)

    def post(self, request, *args, **kwargs):
        try:
            raw = request.body
        except RequestDataTooBig:
            return _answer(413, "body_too_large", "The body is too large.")
        authorization = request.headers.get("Authorization")
        source = None
        if transport.basic_user_present(authorization):
            # Checked before inflating anything: an unknown caller costs no decompression.
            source = self._source(transport.write_key_from(authorization, None))
            if source is None:
                return _answer(401, "unauthenticated", "Unknown write key.")
        try:
            body = transport.body_decode(raw, content_encoding=request.headers.get("Content-Encoding"),
                                         limit=settings.TESSERA_SEGMENT_MAX_BODY_BYTES)
        except transport.BodyRejected as exc:
            return _answer(exc.status, exc.code, exc.message)
        if source is None:
            source = self._source(transport.write_key_from(None, body))
            if source is None:
                return _answer(401, "unauthenticated", "Unknown write key.")
        return self.handle_body(source, body)

    @staticmethod
    def _source(write_key: str | None):
        return source_by_write_key(write_key) if write_key else None

    def handle_body(self, source, body: dict) -> JsonResponse:
        raise NotImplementedError


class SegmentBatchApi(_SegmentApi):
    @extend_schema(tags=["segment"], request={"application/json": SegmentBatchSerializer}, responses=_RESPONSES,
                   summary="Segment batch", description="`{\"batch\": [message, ...], \"context\"?, \"sentAt\"?}`. "
                   + _AUTH)
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)

    def handle_body(self, source, body: dict) -> JsonResponse:
        batch = body.get("batch")
        if not isinstance(batch, list):
            return _answer(400, "malformed_batch", "batch must be a list of messages.")
        if len(batch) > MAX_BATCH_MESSAGES:
            return _answer(413, "batch_too_large", f"A batch may hold at most {MAX_BATCH_MESSAGES} messages.")
        context = body.get("context") if isinstance(body.get("context"), dict) else None
        segment_messages_ingest(source=source, messages=batch, context=context, sent_at=body.get("sentAt"))
        return _answer()


class SegmentMessageApi(_SegmentApi):
    message_type = ""  # set per route: the endpoint decides the type, as at Segment

    @extend_schema(tags=["segment"], request={"application/json": SegmentSingleMessageSerializer},
                   responses=_RESPONSES, summary="Segment single message",
                   description="One identify, track, page, screen, group or alias message. " + _AUTH)
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)

    def handle_body(self, source, body: dict) -> JsonResponse:
        message = {**body, "type": self.message_type}
        segment_messages_ingest(source=source, messages=[message], sent_at=body.get("sentAt"))
        return _answer()
