"""Client-side rate limits: per process (``RateLimiter``) or shared through Redis (``RedisRateLimiter``).

Both reserve the next free slot and sleep until it, so callers queue in order and the
long-run rate is exactly the limit. The Redis one keeps the next slot in one key and
takes the time from the Redis server, so processes on several hosts share one clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol


class Limiter(Protocol):
    def wait(self) -> None: ...


class RateLimiter:
    """Spaces calls at most ``rate`` per second across all threads of this process."""

    def __init__(self, rate: float, *, sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            self._sleep(slot - now)


# KEYS[1]: the key; ARGV[1]: interval in microseconds. Returns how long to wait, in microseconds.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local slot = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
redis.call('SET', KEYS[1], slot + interval, 'PX', math.ceil((slot + interval - now) / 1000) + 1000)
return slot - now
"""


class RedisRateLimiter:
    """Spaces calls at most ``rate`` per second across every process that uses *key* on the same Redis.

    Needs the ``redis`` package (``pip install django-clickatell-stop[celery]``).
    """

    def __init__(
        self,
        rate: float,
        url: str,
        *,
        key: str = "django_clickatell_stop:rate",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        import redis  # optional dependency

        self.interval_us = max(1, round(1_000_000 / rate))
        self.key = key
        self._sleep = sleep
        self._client: Any = redis.Redis.from_url(url)
        self._reserve: Any = self._client.register_script(_RESERVE)

    def wait(self) -> None:
        delay_us = int(self._reserve(keys=[self.key], args=[self.interval_us]))
        if delay_us > 0:
            self._sleep(delay_us / 1_000_000)
