"""Keyed pseudonyms for cache and throttle keys built from personal data.

A plain SHA-256 of an e-mail or IP address in a cache key is one hash of a guessed
address away from the address, so whoever reads the cache (Redis) would learn who asked
for a sign-in link or tried to log in. These are HMAC-SHA256 under a key derived from
TESSERA_INDEX_KEY for this use alone, and separated by purpose.
"""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings

from cdp.core.crypto_primitives import derive_key, keyed_hash

_KEY_NAME = "cache-pseudonyms"


@lru_cache(maxsize=2)
def _key(index_key: bytes) -> bytes:
    return derive_key(index_key, name=_KEY_NAME)


def pseudonym(purpose: str, *parts: str) -> str:
    """64 hex characters naming `parts` for `purpose`, unlinkable without the index key."""
    # "\x1e" between parts: ("a", "b") and ("a\x1eb",) never come from one caller's data.
    return keyed_hash(_key(settings.TESSERA_INDEX_KEY), "\x1e".join(parts), purpose=purpose)


def keyed_digest(value: str, *, purpose: str) -> str:
    """A keyed hash for equality checks on personal data (record payloads, idempotent
    requests): HMAC-SHA256 under TESSERA_INDEX_KEY itself, separated by purpose."""
    return keyed_hash(settings.TESSERA_INDEX_KEY, value, purpose=purpose)
