"""The rate limit shared through Redis holds across processes (needs Redis on 127.0.0.1:6379)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

REDIS_URL = os.environ.get("CLICKATELL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

WORKER = """
import json, sys, time
from django_clickatell_stop.ratelimit import RedisRateLimiter
limiter = RedisRateLimiter(float(sys.argv[1]), sys.argv[2], key=sys.argv[3])
print("ready", flush=True)
sys.stdin.readline()  # start together
stamps = []
for _ in range(int(sys.argv[4])):
    limiter.wait()
    stamps.append(time.time())
print(json.dumps(stamps))
"""


@pytest.fixture
def redis_url():
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except Exception as err:  # noqa: BLE001 - any failure means no Redis here
        if os.environ.get("CLICKATELL_REQUIRE_REDIS") == "1":
            pytest.fail(f"Redis is required in CI: {err}")
        pytest.skip(f"no Redis at {REDIS_URL}: {err}")
    return REDIS_URL


def test_two_processes_share_one_limit(redis_url):
    rate, per_process = 100.0, 100
    key = f"django_clickatell_stop:test:{uuid.uuid4().hex}"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(rate), redis_url, key, str(per_process)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for worker in workers:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    stamps = sorted(t for worker in workers for t in json.loads(worker.communicate(timeout=60)[0]))
    measured = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert len(stamps) == 2 * per_process
    assert abs(measured / rate - 1) <= 0.10, measured  # both processes together, not each
    # Never a burst: no second holds more than the limit (plus one for the window's edges).
    assert max(sum(1 for t in stamps if start <= t < start + 1) for start in stamps) <= rate + 1


def test_the_client_uses_redis_when_configured(redis_url, settings):
    from django_clickatell_stop.client import get_client
    from django_clickatell_stop.ratelimit import RedisRateLimiter
    from django_clickatell_stop.testing import FakeGateway

    with FakeGateway() as gw:
        settings.CLICKATELL_STOP = gw.settings(MAX_REQUESTS_PER_SECOND=50, RATE_LIMIT_REDIS_URL=redis_url)
        client = get_client()
        assert isinstance(getattr(client, "rate_limiter", None), RedisRateLimiter)
        gw.add_message("a" * 32)
        client.stop(apimsgid="a" * 32)
        assert len(gw.calls) == 1


def test_bad_rate():
    from django_clickatell_stop.ratelimit import RedisRateLimiter

    with pytest.raises(ValueError):
        RedisRateLimiter(0, REDIS_URL)
