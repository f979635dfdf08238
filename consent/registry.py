"""Handlers that other apps register so consent work can change data they own.

`consent` imports no app of ours; `cdp` and `personalization` register functions here
at start-up (AppConfig.ready) and consent calls them inside its own transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

_HANDLERS: dict[str, list[Callable]] = defaultdict(list)

WITHDRAWAL = "withdrawal"          # (profile_id, purpose)
GRANT = "grant"                    # (profile_id, purpose)


def register(hook: str, handler: Callable) -> None:
    if handler not in _HANDLERS[hook]:
        _HANDLERS[hook].append(handler)


def run(hook: str, **kwargs) -> list:
    return [handler(**kwargs) for handler in _HANDLERS[hook]]
