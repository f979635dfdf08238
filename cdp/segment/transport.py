"""The wire side of the Segment API: gzip bodies with a size cap, JSON, write keys.

Pure functions over bytes and header values. Errors carry a status and a stable code and
never echo the body.
"""

from __future__ import annotations

import base64
import binascii
import zlib

from cdp.core.json_codec import NotJson, strict_json_loads


class BodyRejected(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def body_decode(raw: bytes, *, content_encoding: str | None, limit: int) -> dict:
    """The JSON object a request carries; gzip is inflated to at most `limit` bytes."""
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        data = _gunzip(raw, limit=limit)
    elif encoding in ("", "identity"):
        data = raw
    else:
        raise BodyRejected(415, "unsupported_encoding", "Send the body as is or gzip-compressed.")
    if len(data) > limit:
        raise BodyRejected(413, "body_too_large", f"The body may hold at most {limit} bytes.")
    try:
        body = strict_json_loads(data)
    except NotJson:
        raise BodyRejected(400, "malformed_json", "The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise BodyRejected(400, "malformed_json", "The body must be a JSON object.")
    return body


def _gunzip(raw: bytes, *, limit: int) -> bytes:
    # Inflate at most one byte past the cap: a zip bomb is refused after `limit` bytes of
    # work, never inflated whole into memory.
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(raw, limit + 1)
    except zlib.error:
        raise BodyRejected(400, "malformed_gzip", "The body is not valid gzip.") from None
    if len(data) > limit:
        raise BodyRejected(413, "body_too_large", f"The body may inflate to at most {limit} bytes.")
    if not inflater.eof or inflater.unused_data:
        raise BodyRejected(400, "malformed_gzip", "The body is not one complete gzip stream.")
    return data


def write_key_from(authorization: str | None, body: dict | None) -> str | None:
    """The write key: HTTP Basic user name (password ignored), else the body's writeKey."""
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
            return decoded.partition(":")[0] or None
    key = (body or {}).get("writeKey")
    return key if isinstance(key, str) and key else None


def basic_user_present(authorization: str | None) -> bool:
    return bool(authorization) and authorization.partition(" ")[0].lower() == "basic"
