"""Checking a presented API key (`tsk_<prefix>_<secret>`) on every request.

Only the prefix (to find the row and to tell keys apart in lists) and a SHA-256 of the
secret are stored. The secret is 256 random bits, so a plain SHA-256 cannot be reversed
by guessing. Creating and revoking keys (with their audit rows) is
`cdp.api.services.api_keys`. Logs nothing secret.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

from django.utils import timezone

from cdp.core.http.models import ApiKey

KEY_PREFIX = "tsk"
# Writing last_used_at on every request would put a write on the hot path of every read.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyRejected(Exception):
    """Why a presented key does not authenticate (the message is safe to show)."""


def api_key_authenticate(token: str) -> ApiKey:
    """The active key this plaintext names, or KeyRejected."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        raise KeyRejected("The API key is not valid.")
    # Plain SQL: this runs on every API request, and building the ORM query cost more than
    # running it. A bound key's source loads only when a write checks it.
    key = next(iter(ApiKey.objects.raw(_KEY_BY_PREFIX_SQL.format(table=ApiKey._meta.db_table), [parts[1]])), None)
    # Compare even when no row matched, so timing does not tell whether a prefix exists.
    expected = key.secret_hash if key is not None else "0" * 64
    if not hmac.compare_digest(expected, secret_hash(parts[2])) or key is None:
        raise KeyRejected("The API key is not valid.")
    now = timezone.now()
    if key.revoked_at is not None:
        raise KeyRejected("The API key was revoked.")
    if key.expires_at is not None and key.expires_at <= now:
        raise KeyRejected("The API key has expired.")
    _touch(key, now)
    return key


_KEY_BY_PREFIX_SQL = "SELECT * FROM {table} WHERE prefix = %s"


def _touch(key: ApiKey, now) -> None:
    if key.last_used_at is not None and now - key.last_used_at < LAST_USED_RESOLUTION:
        return
    # The filter makes concurrent requests write at most once per interval.
    stale_before = now - LAST_USED_RESOLUTION
    ApiKey.objects.filter(pk=key.pk).exclude(last_used_at__gte=stale_before).update(last_used_at=now)
    key.last_used_at = now
