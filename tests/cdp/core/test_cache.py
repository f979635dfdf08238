"""The Redis cache answers from per-process memory while Redis is away, and uses Redis
again once it answers (no restart)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest
import redis

from cdp.core import cache as cache_module
from cdp.core.cache import ResilientRedisCache


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cache(port: int) -> ResilientRedisCache:
    return ResilientRedisCache(f"redis://127.0.0.1:{port}/0", {
        "KEY_PREFIX": "t", "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}})


@pytest.fixture
def fresh_breakers(monkeypatch):
    monkeypatch.setattr(cache_module, "_breakers", {})


def test_an_unreachable_redis_is_answered_from_memory_without_waiting(fresh_breakers):
    cache = _cache(_closed_port())
    cache.set("a", 1)
    started = time.monotonic()
    assert cache.get("a") == 1
    assert cache.add("n", 0) and cache.incr("n") == 1 and cache.incr("n") == 2
    cache.delete_many(["a"])
    assert cache.get("a") is None
    assert cache.degraded and not cache.ping()
    assert time.monotonic() - started < 1


def test_redis_is_used_again_once_it_answers(fresh_breakers, tmp_path):
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("needs redis-server")
    port = _closed_port()
    cache = _cache(port)
    cache._breaker.retry_seconds = 0.2
    cache.set("k", "memory")
    assert cache.degraded
    server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        time.sleep(0.3)  # the breaker's window passes
        cache.set("k", "redis")
        assert not cache.degraded
        assert client.exists(cache.make_key("k")) == 1  # in Redis, not in memory
        assert cache.get("k") == "redis"
    finally:
        server.kill()
        server.wait()
