"""Idempotency-Key handling: replay, reuse detection and in-flight detection.

The record is claimed, the effects are applied and the response is stored in ONE
transaction, so either all of it commits or none of it does: a crash never leaves a key
stuck "in progress", and a failed request (any error) leaves nothing to replay.

Concurrency: on PostgreSQL a second request with the same key first tries a
transaction-scoped advisory lock on the key; while the first request runs it cannot get
it and is answered 409 at once instead of queueing behind it. After the first commits,
the lock is free and the committed record is replayed. On SQLite every write
transaction is exclusive (BEGIN IMMEDIATE), so the second simply waits, then replays.

Stores a keyed hash of the request (never the body) and a response of ids, statuses
and codes; logs nothing personal. Expired records are purged by the retention job
(`cdp.consent_handlers`, kind `idempotency`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from cdp.core.errors import ApplicationError, Conflict, Unprocessable
from cdp.core.http.errors import ApiErrorCode
from cdp.core.http.models import ApiKey, IdempotencyRecord, IdempotencyStatus
from cdp.core.json_codec import json_bytes
from cdp.core.pseudonyms import keyed_digest

RETENTION = timedelta(hours=24)
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")


@dataclass
class StoredResponse:
    status: int
    body: object
    headers: dict = field(default_factory=dict)


def idempotency_key_check(key: str) -> str:
    if not KEY_PATTERN.match(key):
        raise ApplicationError("Idempotency-Key must be 1-255 visible ASCII characters.",
                               code=ApiErrorCode.INVALID_IDEMPOTENCY_KEY)
    return key


@dataclass(frozen=True)
class RequestFingerprint:
    """What an Idempotency-Key promises stays the same: path, preconditions and body.

    Hashed keyed, so a stored hash of a small body cannot be confirmed by guessing its
    content; and only when the request names a key (a batch's canonical text costs
    ~10 ms with the stdlib encoder, ~1 ms with orjson).
    """

    path: str
    body: object
    preconditions: str | None = None

    def _canonical(self) -> dict:
        return {"path": self.path, "if_match": self.preconditions, "body": self.body}

    @cached_property
    def digest(self) -> str:
        canonical = json_bytes(self._canonical(), sort_keys=True, default=str).decode()
        return keyed_digest(canonical, purpose="idempotency-request:v2")

    def matches(self, stored: str) -> bool:
        return hmac.compare_digest(stored, self.digest) or hmac.compare_digest(stored, self._legacy_digest())

    def _legacy_digest(self) -> str:
        # Hashes stored before orjson (kept 24 hours): a retry across the upgrade still replays.
        canonical = json.dumps(self._canonical(), sort_keys=True, separators=(",", ":"), default=str)
        return keyed_digest(canonical, purpose="idempotency-request")


def idempotent_run(*, api_key: ApiKey, endpoint: str, key: str | None, request: RequestFingerprint,
                   run: Callable[[], StoredResponse]) -> tuple[StoredResponse, bool]:
    """Run `run` once per key; returns the response and whether it is a replay.

    Without a key `run` still executes in one transaction, so every write request has
    the same all-or-nothing behaviour.
    """
    with transaction.atomic():
        if key is None:
            return run(), False
        _claim_lock(api_key=api_key, endpoint=endpoint, key=key)
        now = timezone.now()
        existing = IdempotencyRecord.objects.select_for_update().filter(
            api_key=api_key, endpoint=endpoint, key=key).first()
        if existing is not None and existing.expires_at <= now:
            existing.delete()
            existing = None
        if existing is not None:
            return _replay(existing, request), True
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    api_key=api_key, endpoint=endpoint, key=key, request_hash=request.digest,
                    status=IdempotencyStatus.IN_PROGRESS, expires_at=now + RETENTION)
        except IntegrityError:
            raise _in_use() from None
        response = run()
        record.status = IdempotencyStatus.COMPLETED
        record.response_status = response.status
        record.response_body = response.body
        record.response_headers = response.headers
        record.save(update_fields=["status", "response_status", "response_body", "response_headers"])
        return response, False


def _replay(record: IdempotencyRecord, request: RequestFingerprint) -> StoredResponse:
    if not request.matches(record.request_hash):
        raise Unprocessable("This Idempotency-Key was already used with a different request.",
                            code=ApiErrorCode.IDEMPOTENCY_KEY_REUSED)
    if record.status != IdempotencyStatus.COMPLETED:
        raise _in_use()
    return StoredResponse(record.response_status, record.response_body, dict(record.response_headers or {}))


def _in_use() -> Conflict:
    return Conflict("A request with this Idempotency-Key is still running; retry shortly.",
                    code=ApiErrorCode.IDEMPOTENCY_KEY_IN_USE)


def _claim_lock(*, api_key: ApiKey, endpoint: str, key: str) -> None:
    if connection.vendor != "postgresql":
        return
    digest = hashlib.sha256(f"idempotency\x00{api_key.pk}\x00{endpoint}\x00{key}".encode()).digest()
    lock_id = int.from_bytes(digest[:8], "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [lock_id])
        if not cursor.fetchone()[0]:
            raise _in_use()
