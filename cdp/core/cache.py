"""The shared cache (Redis), answered from per-process memory while Redis is away.

The cache holds throttle counters, wake-up flags and progress figures: nothing that must
survive, so an unreachable Redis must not fail a request. An operation that cannot reach
Redis is answered by a per-process memory cache instead, and for the next
`RETRY_SECONDS` no operation tries Redis (a request does not wait on a dead socket every
time). Then one operation tries again; once Redis answers it is used again, no restart.
While degraded, every count is per process: with N web processes a key may make up to N
times its rate, and a lock-out set in one process is not seen by the others.
"""

from __future__ import annotations

import logging
import threading
import time

from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

RETRY_SECONDS = 5.0
UNREACHABLE = (RedisConnectionError, RedisTimeoutError)


class CircuitBreaker:
    """Shared by every thread of a process: `open()` after a failure skips the service for
    `retry_seconds`; `closed()` says whether to try it now."""

    def __init__(self, name: str, retry_seconds: float = RETRY_SECONDS):
        self.name = name
        self.retry_seconds = retry_seconds
        self._open_until = 0.0
        self._failing = False
        self._lock = threading.Lock()

    def closed(self) -> bool:
        return time.monotonic() >= self._open_until

    @property
    def degraded(self) -> bool:
        return self._failing

    def failed(self) -> None:
        with self._lock:
            self._open_until = time.monotonic() + self.retry_seconds
            first = not self._failing
            self._failing = True
        if first:
            logger.warning("service_unreachable", extra={"service": self.name})

    def succeeded(self) -> None:
        if self._failing:
            with self._lock:
                recovered, self._failing = self._failing, False
                self._open_until = 0.0
            if recovered:
                logger.warning("service_recovered", extra={"service": self.name})


_breakers: dict[str, CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def breaker(name: str) -> CircuitBreaker:
    with _breakers_lock:
        return _breakers.setdefault(name, CircuitBreaker(name))


class ResilientRedisCache(RedisCache):
    """Django's Redis cache, falling back to per-process memory while Redis is unreachable.

    Django builds one cache object per thread; the breaker and the memory (LocMemCache
    storage is keyed by name) are shared by the whole process.
    """

    def __init__(self, server, params):
        super().__init__(server, params)
        self._breaker = breaker(f"cache:{server}")
        self._memory = LocMemCache(f"tessera-cache-fallback:{server}", {
            "TIMEOUT": params.get("TIMEOUT", 300), "OPTIONS": {"MAX_ENTRIES": 10_000},
            "KEY_PREFIX": params.get("KEY_PREFIX", ""), "VERSION": params.get("VERSION", 1)})

    @property
    def degraded(self) -> bool:
        return self._breaker.degraded

    def ping(self) -> bool:
        """Whether Redis answers now (for /readyz); a success ends the degraded state."""
        try:
            self._cache.get_client(write=True).ping()
        except UNREACHABLE:
            self._breaker.failed()
            return False
        self._breaker.succeeded()
        return True

    def _call(self, name: str, *args, **kwargs):
        if self._breaker.closed():
            try:
                result = getattr(super(), name)(*args, **kwargs)
            except UNREACHABLE:
                self._breaker.failed()
            else:
                self._breaker.succeeded()
                return result
        return getattr(self._memory, name)(*args, **kwargs)

    def add(self, *args, **kwargs):
        return self._call("add", *args, **kwargs)

    def get(self, *args, **kwargs):
        return self._call("get", *args, **kwargs)

    def set(self, *args, **kwargs):
        return self._call("set", *args, **kwargs)

    def touch(self, *args, **kwargs):
        return self._call("touch", *args, **kwargs)

    def delete(self, *args, **kwargs):
        return self._call("delete", *args, **kwargs)

    def get_many(self, *args, **kwargs):
        return self._call("get_many", *args, **kwargs)

    def has_key(self, *args, **kwargs):
        return self._call("has_key", *args, **kwargs)

    def incr(self, *args, **kwargs):
        return self._call("incr", *args, **kwargs)

    def set_many(self, *args, **kwargs):
        return self._call("set_many", *args, **kwargs)

    def delete_many(self, *args, **kwargs):
        return self._call("delete_many", *args, **kwargs)

    def clear(self):
        return self._call("clear")
