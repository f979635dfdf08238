"""Telling other apps which people newly stored events touched, once per transaction.

Any ingestion path stores events through `cdp.services.events.events_store`, which calls
`events_touched(profile_ids)` inside its transaction. After the commit (never inside it:
a listener's work must not hold the ingestion's locks or roll it back) every listener
gets the set of profile ids the transaction touched, once however many events and
batches it stored, with the commit's time (epoch seconds) to measure lag from. Listeners
are registered at start-up (AppConfig.ready), e.g. personalization's refresh.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.db import transaction

logger = logging.getLogger(__name__)

_listeners: list[Callable] = []


def events_listen(callback: Callable) -> None:
    """Call `callback(profile_ids: set, committed_at: float)` after each commit that stored events."""
    if callback not in _listeners:
        _listeners.append(callback)


def events_unlisten(callback: Callable) -> None:
    if callback in _listeners:
        _listeners.remove(callback)


class _Touched:
    """The pending after-commit call of one transaction, collecting its profile ids."""

    def __init__(self):
        self.profile_ids: set = set()

    def __call__(self) -> None:
        committed_at = time.time()
        for listener in list(_listeners):
            listener(set(self.profile_ids), committed_at)


def events_touched(profile_ids) -> None:
    if not _listeners or not profile_ids:
        return
    connection = transaction.get_connection()
    # Django keeps pending callbacks as (savepoint ids, callback, robust): reuse ours.
    for entry in connection.run_on_commit:
        if isinstance(entry[1], _Touched):
            entry[1].profile_ids.update(profile_ids)
            return
    pending = _Touched()
    pending.profile_ids.update(profile_ids)
    # robust: a listener's failure after commit must not turn stored events into an error.
    transaction.on_commit(pending, robust=True)
