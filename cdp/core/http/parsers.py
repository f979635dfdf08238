"""JSON bodies with a size limit per view, answered 413 before anything is parsed."""

from __future__ import annotations

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from cdp.core.http.errors import PayloadTooLarge
from cdp.core.json_codec import NotJson, strict_json_loads


class LimitedJSONParser(BaseParser):
    """Reads at most the view's `max_body_bytes`.

    Not a JSONParser subclass on purpose: DRF reads `request.body` for those, where
    Django's global DATA_UPLOAD_MAX_MEMORY_SIZE would fail the request with a 400 before
    any per-endpoint limit (and its 413) could apply.
    """

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        view = (parser_context or {}).get("view")
        limit = getattr(view, "max_body_bytes", None) or settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"The body may hold at most {limit} bytes.")
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(f"The body may hold at most {limit} bytes.")
        try:
            return strict_json_loads(raw)
        except NotJson:
            raise ParseError("The body is not valid JSON.") from None
