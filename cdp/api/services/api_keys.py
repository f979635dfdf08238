"""Creating and revoking API keys, each with an audit row in consent's operator log.

A key reads `tsk_<prefix>_<secret>`; only the prefix and a SHA-256 of the secret are
stored (`cdp.core.http.keys`, which checks keys on every request), and the whole key is
returned once, at creation. Logs nothing secret.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from cdp.core.errors import ApplicationError, NotFound
from cdp.core.http.keys import KEY_PREFIX, secret_hash
from cdp.core.http.models import ApiKey
from cdp.core.http.scopes import SCOPES
from cdp.errors import CdpErrorCode
from cdp.services.sources import source_get
from consent.services.access import operator_action_event

MAX_EXPIRY_DAYS = 3650


def scopes_parse(scopes) -> list[str]:
    """Scopes from a list or a comma-separated string; unknown ones are refused."""
    if isinstance(scopes, str):
        scopes = scopes.split(",")
    cleaned = sorted({s.strip() for s in scopes if s and s.strip()})
    unknown = [s for s in cleaned if s not in SCOPES]
    if unknown or not cleaned:
        raise ApplicationError(f"Give one or more of these scopes: {', '.join(SCOPES)}.",
                               code=CdpErrorCode.INVALID_SCOPE)
    return cleaned


@transaction.atomic
def api_key_create(*, name: str, scopes, source_key: str | None = None,
                   expires_days: int | None = None, actor: str = "system") -> tuple[ApiKey, str]:
    """A new key and its plaintext (shown once; never stored)."""
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise ApplicationError("A key needs a name of 1-200 characters.", code=CdpErrorCode.INVALID_NAME)
    scope_list = scopes_parse(scopes)
    source = source_get(source_key) if source_key else None
    expires_at = None
    if expires_days is not None:
        if not 1 <= int(expires_days) <= MAX_EXPIRY_DAYS:
            raise ApplicationError(f"--expires-days must be between 1 and {MAX_EXPIRY_DAYS}.",
                                   code=CdpErrorCode.INVALID_EXPIRY)
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
        raise NotFound("No API key has this id.")
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        operator_action_event(actor=actor, action="api_key.revoked", detail={"api_key_id": str(key.id)})
    return key
