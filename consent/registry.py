"""Handlers that other apps register so consent work can change data they own.

`consent` imports no app of ours; `cdp` and `personalization` register functions here
at start-up (AppConfig.ready) and consent calls them inside its own transaction. Every
handler takes keyword arguments only and must not log personal data.

Hooks (keyword arguments → what a handler returns):

WITHDRAWAL        (profile_id: UUID, purpose: str) → ignored. Delete or stop using what the
                  purpose covered (recommendations, explanations, segment memberships,
                  third-party attributes in the unified view).
GRANT             (profile_id: UUID, purpose: str) → ignored.
PROFILES_MERGED   (pairs: list[tuple[UUID, UUID]]) → ignored. Called once after consent
                  merged the states of these (survivor, absorbed) subjects, which share
                  no profile (all the merges of an ingestion batch at once).
RESOLVE           (identifiers: dict[kind, value], source: str | None) → list of active
                  profile ids the identifiers name (empty when unknown). Raise ValueError
                  with a code-like message for a malformed identifier.
SIGN_IN_ADDRESS   (email: str) → (profile id, address) when this email address may open
                  an active profile's preference center, else None; `address` is an
                  opaque, non-personal name of it (its blind index). The profile domain's
                  identity rules decide which addresses may.
SIGN_IN_ADDRESSES (profile_id: UUID) → the addresses (as above) that may open this
                  profile now; empty for a profile that is not active.
CANONICAL         (profile_id: UUID) → {"status": "active"|"merged"|"erased"|"unknown",
                  "profile_id": the id to use (the survivor for a merged id) or None}.
ALIASES           (profile_id: UUID) → list of profile ids merged into this one.
SURVIVORS         (profile_ids: list[UUID]) → {profile id: survivor id} for those of the
                  ids merged into another profile (the others are left out).
EXPORT            (profile_id: UUID, aliases: list[UUID]) → dict of export sections
                  (section name → JSON-serializable data) for an access request. Decrypted
                  values are fine here: the export goes only to the person.
ERASE             (profile_id: UUID) → dict of counts. Crypto-shred and delete everything
                  the app holds on the person; the consent ledger is kept by consent.
RECTIFY           (profile_id: UUID, attributes: dict, identifiers: dict) → dict of counts.
                  A null attribute value means "remove it".
RETENTION         (kind: str, source: str | None, older_than: datetime,
                  exclude_sources: list[str]) → number of rows purged, or None when the
                  handler does not own this kind.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

_HANDLERS: dict[str, list[Callable]] = defaultdict(list)

WITHDRAWAL = "withdrawal"
GRANT = "grant"
PROFILES_MERGED = "profiles_merged"
RESOLVE = "resolve"
SIGN_IN_ADDRESS = "sign_in_address"
SIGN_IN_ADDRESSES = "sign_in_addresses"
CANONICAL = "canonical"
ALIASES = "aliases"
SURVIVORS = "survivors"
EXPORT = "export"
ERASE = "erase"
RECTIFY = "rectify"
RETENTION = "retention"

HOOKS = (WITHDRAWAL, GRANT, PROFILES_MERGED, RESOLVE, SIGN_IN_ADDRESS, SIGN_IN_ADDRESSES, CANONICAL, ALIASES,
         SURVIVORS, EXPORT, ERASE, RECTIFY, RETENTION)


def register(hook: str, handler: Callable) -> None:
    if hook not in HOOKS:
        raise ValueError(f"Unknown consent hook {hook!r}.")
    if handler not in _HANDLERS[hook]:
        _HANDLERS[hook].append(handler)


def unregister(hook: str, handler: Callable) -> None:
    if handler in _HANDLERS[hook]:
        _HANDLERS[hook].remove(handler)


def run(hook: str, **kwargs) -> list:
    return [handler(**kwargs) for handler in list(_HANDLERS[hook])]


def has_handlers(hook: str) -> bool:
    return bool(_HANDLERS[hook])
