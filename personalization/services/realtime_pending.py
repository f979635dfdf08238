"""Coalescing the real-time refresh: the events of one person, across requests, make one refresh.

After a commit that stored events (cdp.core.event_hooks; never inside the ingestion's
transaction), `events_refresh_schedule` writes one RefreshPending row per person it
touched and asks for a drain:
- with a broker, one `recommendations_refresh_drain` task is queued to run
  TESSERA_REALTIME_WINDOW_MS later, unless one is already waiting (a flag in the shared
  cache, set with `add`): every person whose events commit in that window, in any
  request or process, is refreshed once by it. The ingestion pays one INSERT and one
  cache `add` a transaction, and an enqueue a window;
- without one (and TESSERA_REALTIME_IN_PROCESS on), the drain runs in the ingesting
  process once the response has been sent (cdp.core.outbox.after_response), one drain
  at a time in a process: people whose events commit while it runs wait for its next
  round, so under load the rounds grow and the refreshes coalesce.
`refresh_pending_drain` takes up to REFRESH_BATCH rows a round (deleting them as it takes
them; concurrent drains skip each other's rows), refreshes each person once and puts the
rows back if the refresh fails. Rows left by a lost task or an unreachable broker are
drained by beat's sweep (settings), and in-process by the after-response sweep.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from uuid import UUID

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from cdp.core.broker import enqueue_in, task_named
from cdp.core.bulk import insert_rows
from cdp.core.outbox import after_response
from personalization.models import RefreshPending
from personalization.services import realtime

logger = logging.getLogger(__name__)
DRAIN_TASK = "personalization.recommendations_refresh_drain"
_SCHEDULED = "realtime:refresh-drain-scheduled"
# The flag outlives a lost task by this much at most: the next event queues another drain.
_FLAG_SECONDS = 10
# One in-process drain (after a response) stops after this many rounds: the next response
# (or the sweep) goes on, so one request's thread is not held by sustained traffic.
_IN_PROCESS_ROUNDS = 20
_draining = threading.Lock()


def events_refresh_schedule(profile_ids: set, committed_at: float | None = None) -> None:
    """The event hook's listener (after a commit): note these people, then ask for a drain."""
    if not profile_ids or not settings.TESSERA_REALTIME_REFRESH or (
            settings.TASKS_IN_PROCESS and not settings.TESSERA_REALTIME_IN_PROCESS):
        return
    at = datetime.fromtimestamp(committed_at, tz=UTC) if committed_at else datetime.now(UTC)
    # One COPY on PostgreSQL, no model instances: this is the ingestion's whole share.
    insert_rows(RefreshPending, ("profile_id", "committed_at"), [(UUID(str(pid)), at) for pid in profile_ids])
    if settings.TASKS_IN_PROCESS:
        after_response(refresh_pending_drain_in_process)
    elif cache.add(_SCHEDULED, 1, timeout=_FLAG_SECONDS) and not enqueue_in(
            task_named(DRAIN_TASK), settings.TESSERA_REALTIME_WINDOW_MS / 1000):  # the window others join
        cache.delete(_SCHEDULED)  # not queued: the next event tries again (beat sweeps meanwhile)


def refresh_pending_drain(*, rounds: int | None = None, until_empty: bool = False) -> int:
    """Refresh everyone waiting (at most `rounds` batches); returns how many rows were taken.
    `until_empty`: go on after a short round too (in-process, where people noted meanwhile
    queue no drain of their own while this one runs)."""
    # First, so that a person noted from now on queues a new drain rather than relying on
    # this one having seen them.
    cache.delete(_SCHEDULED)
    taken_total, done = 0, 0
    while rounds is None or done < rounds:
        taken = _take(realtime.REFRESH_BATCH)
        if not taken:
            break
        # A short round took everyone: people noted since have queued their own drain.
        last = len(taken) < realtime.REFRESH_BATCH and not until_empty
        done += 1
        taken_total += len(taken)
        committed: dict[str, float] = {}
        for pid, at in taken:
            key = str(pid)
            committed[key] = min(committed.get(key, at.timestamp()), at.timestamp())
        try:
            realtime.recommendations_refresh(profile_ids=list(committed), committed_at=committed)
        except Exception:
            # Back in the set for the next drain (or the sweep), then fail as before.
            RefreshPending.objects.bulk_create([RefreshPending(profile_id=pid, committed_at=at) for pid, at in taken])
            raise
        if last:
            break
    return taken_total


def refresh_pending_drain_in_process() -> None:
    """After a response: drain, unless another thread of this process is already at it
    (it will see the new rows in its next round)."""
    for _ in range(2):
        if not _draining.acquire(blocking=False):
            return
        try:
            refresh_pending_drain(rounds=_IN_PROCESS_ROUNDS, until_empty=True)
        except Exception:  # the rows are back; the next response or sweep tries again
            logger.warning("refresh_drain_failed", exc_info=True)
            return
        finally:
            _draining.release()
        # A thread that noted someone just before the release found the lock taken.
        if not RefreshPending.objects.exists():
            return


def _take(limit: int) -> list[tuple]:
    """Up to `limit` waiting rows, deleted as they are taken; rows another drain holds are
    skipped (PostgreSQL; SQLite's writers take turns anyway)."""
    with transaction.atomic():
        rows = list(RefreshPending.objects.select_for_update(skip_locked=True).order_by("id")
                    .values_list("id", "profile_id", "committed_at")[:limit])
        if rows:
            RefreshPending.objects.filter(id__in=[row[0] for row in rows]).delete()
    return [(pid, at) for _, pid, at in rows]


def in_process_sweep() -> None:
    if settings.TESSERA_REALTIME_IN_PROCESS:
        refresh_pending_drain_in_process()

