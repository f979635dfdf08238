"""Telling other apps which people newly stored events touched, once per transaction.

Any ingestion path stores events through `cdp.services.events.events_store`, which calls
`events_touched(profile_ids)` inside its transaction. After the commit (never inside it:
a listener's work must not hold the ingestion's locks or roll it back) every listener
gets the set of profile ids the transaction touched, once however many events and
batches it stored, with the commit's time (epoch seconds) to measure lag from. Listeners
are registered at start-up (AppConfig.ready), e.g. personalization's refresh.
`on_commit_collect` is the same coalescing for any other per-person after-commit work.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.db import transaction

_listeners: list[Callable] = []


def events_listen(callback: Callable) -> None:
    """Call `callback(profile_ids: set, committed_at: float)` after each commit that stored events."""
    if callback not in _listeners:
        _listeners.append(callback)


def events_unlisten(callback: Callable) -> None:
    if callback in _listeners:
        _listeners.remove(callback)


class _Collected:
    """The pending after-commit call of one transaction, collecting the ids it is called with."""

    def __init__(self, callback: Callable):
        self.callback = callback
        self.ids: set = set()

    def __call__(self) -> None:
        self.callback(set(self.ids), time.time())


def on_commit_collect(callback: Callable, ids) -> None:
    """After the current transaction commits, call `callback(ids, committed_at)` once with
    every id given to it with this callback in the transaction (at once outside one)."""
    connection = transaction.get_connection()
    # Django keeps pending callbacks as (savepoint ids, callback, robust): reuse ours.
    for entry in connection.run_on_commit:
        if isinstance(entry[1], _Collected) and entry[1].callback is callback:
            entry[1].ids.update(ids)
            return
    pending = _Collected(callback)
    pending.ids.update(ids)
    # robust: a listener's failure after commit must not turn the committed work into an error.
    transaction.on_commit(pending, robust=True)


def _notify(profile_ids: set, committed_at: float) -> None:
    for listener in list(_listeners):
        listener(profile_ids, committed_at)


def events_touched(profile_ids) -> None:
    if _listeners and profile_ids:
        on_commit_collect(_notify, profile_ids)
