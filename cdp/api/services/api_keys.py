"""Creating, revoking and checking API keys.

A key reads `tsk_<prefix>_<secret>`. Only the prefix (to find the row and to tell keys
apart in lists) and a SHA-256 of the secret are stored; the whole key is returned once,
at creation. The secret is 256 random bits, so a plain SHA-256 cannot be reversed by
guessing. Logs nothing secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from cdp.api.errors import ApiErrorCode
from cdp.api.models import ApiKey
from cdp.api.scopes import SCOPES
from cdp.core.errors import ApplicationError
from cdp.services.sources import source_get
from consent.events import operator_action_event

KEY_PREFIX = "tsk"
# Writing last_used_at on every request would put a write on the hot path of every read.
LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_EXPIRY_DAYS = 3650


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def scopes_parse(scopes) -> list[str]:
    """Scopes from a list or a comma-separated string; unknown ones are refused."""
    if isinstance(scopes, str):
        scopes = scopes.split(",")
    cleaned = sorted({s.strip() for s in scopes if s and s.strip()})
    unknown = [s for s in cleaned if s not in SCOPES]
    if unknown or not cleaned:
        raise ApplicationError(f"Give one or more of these scopes: {', '.join(SCOPES)}.",
                               code=ApiErrorCode.INVALID_SCOPE)
    return cleaned


@transaction.atomic
def api_key_create(*, name: str, scopes, source_key: str | None = None,
                   expires_days: int | None = None, actor: str = "system") -> tuple[ApiKey, str]:
    """A new key and its plaintext (shown once; never stored)."""
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise ApplicationError("A key needs a name of 1-200 characters.", code="invalid_name")
    scope_list = scopes_parse(scopes)
    source = source_get(source_key) if source_key else None
    expires_at = None
    if expires_days is not None:
        if not 1 <= int(expires_days) <= MAX_EXPIRY_DAYS:
            raise ApplicationError(f"--expires-days must be between 1 and {MAX_EXPIRY_DAYS}.",
                                   code=ApiErrorCode.INVALID_EXPIRY)
        expires_at = timezone.now() + timedelta(days=int(expires_days))
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    with transaction.atomic():
        key = ApiKey.objects.create(name=name, prefix=prefix, secret_hash=secret_hash(secret), scopes=scope_list,
                                    source=source, expires_at=expires_at)
        operator_action_event(actor=actor, action="api_key.created",
                              detail={"api_key_id": str(key.id), "scopes": scope_list})
    return key, f"{KEY_PREFIX}_{prefix}_{secret}"


def api_key_revoke(*, api_key_id, actor: str = "system") -> ApiKey:
    """Revoke a key at once; revoking twice keeps the first time."""
    key = ApiKey.objects.filter(pk=api_key_id).first()
    if key is None:
        raise ApplicationError("No API key has this id.", code="not_found", status=404)
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        operator_action_event(actor=actor, action="api_key.revoked", detail={"api_key_id": str(key.id)})
    return key


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
