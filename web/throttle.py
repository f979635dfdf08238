"""Counting failures in the cache and locking out for a while: the staff log-in and the
customers' sign-in-link requests.

Keys are HMAC-SHA256 digests of what they count (a user name, an address, an IP address)
under a key derived from SECRET_KEY, so the cache never holds those values and a reader
of the cache cannot confirm a guess by hashing it. With Redis configured every web process shares
the counts; the embedded default counts per process, which is fine for one machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.core.cache import cache
from django.utils.crypto import salted_hmac


@dataclass(frozen=True)
class Throttle:
    """`limit` hits within `window` seconds lock the key for `lock` seconds."""

    scope: str
    limit: int
    window: int
    lock: int

    def _key(self, kind: str, parts: tuple) -> str:
        digest = salted_hmac("web.throttle", "\x1f".join(str(p).strip().lower() for p in parts),
                             algorithm="sha256").hexdigest()
        return f"web:throttle:{self.scope}:{kind}:{digest}"

    def locked_for(self, *parts) -> int:
        """Seconds until the lock on these parts ends (0: not locked)."""
        until = cache.get(self._key("lock", parts))
        return max(0, int(until - time.time()) + 1) if until else 0

    def hit(self, *parts) -> int:
        """Count one hit; returns the lock's length in seconds when this hit set it, else 0."""
        key = self._key("count", parts)
        cache.add(key, 0, timeout=self.window)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=self.window)
            count = 1
        if count >= self.limit:
            cache.set(self._key("lock", parts), time.time() + self.lock, timeout=self.lock)
            cache.delete(key)
            return self.lock
        return 0

    def reset(self, *parts) -> None:
        cache.delete_many([self._key("count", parts), self._key("lock", parts)])


# Staff log-in: five wrong passwords for one user name from one address lock that pair
# for five minutes; thirty from one address lock the address (user-name spraying).
STAFF_LOGIN = Throttle("staff-login", limit=5, window=15 * 60, lock=5 * 60)
STAFF_LOGIN_ADDRESS = Throttle("staff-login-ip", limit=30, window=15 * 60, lock=15 * 60)
# Sign-in links: a few per address and per e-mail address, so nobody floods a mailbox.
SIGN_IN_REQUEST_ADDRESS = Throttle("sign-in-ip", limit=10, window=15 * 60, lock=15 * 60)
SIGN_IN_REQUEST_EMAIL = Throttle("sign-in-email", limit=3, window=15 * 60, lock=15 * 60)


def client_address(request) -> str:
    return request.META.get("REMOTE_ADDR") or "unknown"


def minutes(seconds: int) -> int:
    return max(1, (seconds + 59) // 60)
