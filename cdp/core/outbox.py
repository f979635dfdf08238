"""Writing outbox messages inside the caller's transaction.

An outbox row is the promise that the outside world hears about a committed change: the
change feed (`cdp.core.changes`) lists the rows, and the webhook relay delivers them. Any
app announces a change by calling `outbox_put` (or `outbox_put_many`) inside the
transaction that makes it, e.g. `outbox_put(topic="consent.changed", payload={"profile_id":
..., "purpose": "marketing", "granted": False})`. A rolled-back change leaves no row.

Payloads leave the system, so they hold ids and purposes only: `_check_payload` refuses
anything else (an email in a payload is a programming error, caught by the tests).
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cdp.core.bulk import insert_rows
from cdp.core.ids import new_uuid4
from cdp.core.models import OutboxMessage

logger = logging.getLogger(__name__)

# The change feed's types (CONTRACT.md); `dsr.completed` and `recommendations.updated`
# (personalization's real-time refresh, written only while a subscription asks for it) go
# to webhooks only.
CHANGE_TYPES = (
    "profile.created",
    "profile.updated",
    "profile.merged",
    "profile.unmerged",
    "consent.changed",
    "profile.erased",
)
TOPICS = frozenset(CHANGE_TYPES) | {"dsr.completed", "recommendations.updated"}

# Keys whose values are short codes, never personal: everything else must be an `*_id`
# (a UUID) or `*_ids` (a list of UUIDs).
_CODE_KEYS = frozenset({"purpose", "purposes", "granted", "channel", "basis", "notice_version", "type",
                        "status", "reason", "source"})
_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

_listeners: list[Callable[[], None]] = []


def outbox_put(*, topic: str, payload: dict) -> OutboxMessage:
    _check(topic, payload)
    message = OutboxMessage.objects.create(topic=topic, payload=payload)
    _notify_after_commit()
    return message


def outbox_put_many(messages: list[tuple[str, dict]]) -> None:
    if messages:
        for topic, payload in messages:
            _check(topic, payload)
        # As bulk_create would write them, as plain rows (COPY on PostgreSQL): identity
        # resolution writes one per profile it touches.
        now = timezone.now()
        insert_rows(OutboxMessage, ("topic", "payload", "created_at", "event_id", "position"),
                    [(topic, payload, now, new_uuid4(), None) for topic, payload in messages])
        _notify_after_commit()


def outbox_listen(callback: Callable[[], None]) -> None:
    """Call `callback()` after each commit that wrote outbox rows (e.g. to wake a relay).

    Registered at start-up by the apps that consume the outbox. A wake-up is only a hint:
    consumers also sweep periodically, so a lost one delays a delivery but loses nothing.
    """
    if callback not in _listeners:
        _listeners.append(callback)


def _notify_after_commit() -> None:
    if not _listeners:
        return
    connection = transaction.get_connection()
    # One wake-up per transaction, however many rows it wrote. (Django keeps pending
    # callbacks as (savepoint ids, callback, robust); a savepoint rollback drops ours too,
    # and the next put registers it again.)
    if any(entry[1] is _wake_after_request for entry in connection.run_on_commit):
        return
    # robust: a broker hiccup after commit must not turn a committed change into an error.
    transaction.on_commit(_wake_after_request, robust=True)


# Inside an HTTP request the wake-up waits until the response has been handed to the
# server (OutboxWakeMiddleware), so a request that commits several transactions (a
# Segment batch commits up to three) wakes the consumers once, and with no broker the
# in-process relay runs after the answer, not before it. Per request (a context
# variable), so nothing carries over to other requests or to work outside one.
_request_wakes: ContextVar[list | None] = ContextVar("outbox_request_wakes", default=None)


def _wake_after_request() -> None:
    after_response(_wake)


def after_response(callback: Callable[[], None]) -> None:
    """Call `callback()` once the current request's response has been sent (once however
    often asked in the request), or at once outside a request: work the answer does not
    wait for, e.g. the in-process real-time refresh."""
    waiting = _request_wakes.get()
    if waiting is None:
        callback()
    elif callback not in waiting:
        waiting.append(callback)


# With a broker, beat runs the periodic sweeps (the webhook relay for due retries and
# missed wake-ups, the DSR sweep). With tasks in-process there is no beat: the same sweeps
# run here, after a response has been sent, at most once per TESSERA_IN_PROCESS_SWEEP_SECONDS
# in each process (0: never, as in the tests).
_sweeps: list[Callable[[], None]] = []
_last_sweep = {"at": time.monotonic()}
_sweep_lock = threading.Lock()


def outbox_sweep_register(callback: Callable[[], None]) -> None:
    """Register a periodic sweep for the in-process mode (beat runs it otherwise)."""
    if callback not in _sweeps:
        _sweeps.append(callback)


def _sweeps_due() -> list[Callable[[], None]]:
    every = getattr(settings, "TESSERA_IN_PROCESS_SWEEP_SECONDS", 0)
    if not (settings.TASKS_IN_PROCESS and every and _sweeps):
        return []
    now = time.monotonic()
    with _sweep_lock:
        if now - _last_sweep["at"] < every:
            return []
        _last_sweep["at"] = now
    return [_guarded(sweep) for sweep in _sweeps]


def _guarded(sweep: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            sweep()
        except Exception:  # the next sweep tries again
            logger.warning("in_process_sweep_failed", exc_info=True)

    return run


class OutboxWakeMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        waiting: list = []
        token = _request_wakes.set(waiting)
        try:
            response = self.get_response(request)
        except BaseException:
            _request_wakes.reset(token)
            for wake in waiting:
                wake()  # the changes committed before the failure still go out
            raise
        _request_wakes.reset(token)
        # Run by response.close(), which the server calls once the response is sent.
        response._resource_closers.extend(waiting)
        response._resource_closers.extend(_sweeps_due())
        return response


def _wake() -> None:
    for callback in list(_listeners):
        try:
            callback()
        except Exception:  # a wake-up is a hint; the periodic sweep catches up
            logger.warning("outbox_wake_failed", exc_info=True)


def _check(topic: str, payload: dict) -> None:
    if topic not in TOPICS:
        raise ValueError(f"Unknown outbox topic {topic!r}; add it to cdp.core.outbox.TOPICS.")
    if not isinstance(payload, dict):
        raise ValueError("An outbox payload is a dict of ids and purposes.")
    for key, value in payload.items():
        if not _allowed(key, value):
            # The key is ours; the value may be personal, so it is never echoed.
            raise ValueError(f"Outbox payload member {key!r} is not allowed: payloads hold ids and purposes only.")


def _allowed(key: str, value) -> bool:
    if key.endswith("_id"):
        return value is None or _is_uuid(value)
    if key.endswith("_ids"):
        return isinstance(value, list) and all(_is_uuid(v) for v in value)
    if key in _CODE_KEYS:
        values = value if isinstance(value, list) else [value]
        return all(v is None or isinstance(v, bool) or (isinstance(v, str) and _CODE.fullmatch(v))
                   for v in values)
    return False


def _is_uuid(value) -> bool:
    if isinstance(value, uuid.UUID):
        return False  # JSON cannot hold a UUID object: callers pass str(profile.id)
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True
