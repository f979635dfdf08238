"""Webhook secrets and signatures (pure functions; no Django, no database).

`Tessera-Signature: t=UNIX,v1=HEX[,v1=HEX]`, where each HEX is HMAC-SHA256 under one
secret (the whole `whsec_...` string, UTF-8) of `f"{t}.{body}"` over the exact body
bytes. During a rotation window the header carries one v1 per live secret, so a
receiver holding either the old or the new secret verifies. docs/webhooks.md has the
receiver's side.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from collections.abc import Iterable

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
DEFAULT_TOLERANCE_SECONDS = 300


def secret_new() -> str:
    return SECRET_PREFIX + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


def signature(secret: str, *, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secrets: Iterable[str], *, timestamp: int, body: bytes) -> str:
    parts = [f"t={timestamp}"] + [f"v1={signature(s, timestamp=timestamp, body=body)}" for s in secrets]
    return ",".join(parts)


def signature_verify(header: str, *, body: bytes, secrets: Iterable[str],
                     tolerance: int = DEFAULT_TOLERANCE_SECONDS, now: float | None = None) -> bool:
    """True when the header is fresh and one of its v1 signatures matches one secret."""
    timestamp, candidates = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    for secret in secrets:
        expected = signature(secret, timestamp=timestamp, body=body)
        if any(hmac.compare_digest(expected, candidate) for candidate in candidates):
            return True
    return False
