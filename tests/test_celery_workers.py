"""Stop jobs on real Celery workers: two worker processes, Redis broker, PostgreSQL, fake gateway.

Run with ``DATABASE_URL=postgres://postgres@127.0.0.1:5432/test`` and Redis on
127.0.0.1:6379 (database 14 is the broker here, and is flushed).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from django_clickatell_stop import jobs
from django_clickatell_stop.models import JobState, Outcome, ScheduledMessage, State, StopAttempt, StopJob
from django_clickatell_stop.testing import FakeGateway

pytestmark = [pytest.mark.postgres, pytest.mark.celery, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
BROKER_URL = os.environ.get("CLICKATELL_TEST_BROKER_URL", "redis://127.0.0.1:6379/14")


@pytest.fixture
def pg() -> None:
    """Skip before touching Redis when the tests do not run on PostgreSQL."""
    postgres_url()


def postgres_url() -> str:
    if connection.vendor != "postgresql":
        pytest.skip("workers share the test database: run with DATABASE_URL=postgres://...")
    db = connection.settings_dict
    return (
        f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )


@pytest.fixture
def broker(pg: None) -> Iterator[str]:
    try:
        import redis

        client = redis.Redis.from_url(BROKER_URL, socket_connect_timeout=1)
        client.ping()
    except Exception as err:  # noqa: BLE001 - any failure means no Redis here
        if os.environ.get("CLICKATELL_REQUIRE_REDIS") == "1":
            pytest.fail(f"Redis is required in CI: {err}")
        pytest.skip(f"no Redis at {BROKER_URL}: {err}")
    client.flushdb()
    from tests.celery_app import app

    app.conf.task_always_eager = False  # this process only enqueues; the workers run the tasks
    yield BROKER_URL
    app.conf.task_always_eager = True
    client.flushdb()


class Workers:
    """``celery worker`` processes (solo pool: the task runs in the process we may kill)."""

    def __init__(
        self, count: int, stop_settings: dict[str, object], *, visibility_timeout: float = 3600
    ) -> None:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": postgres_url(),
            "CLICKATELL_STOP_JSON": json.dumps(stop_settings),
            "CLICKATELL_TEST_BROKER_URL": BROKER_URL,
            "CLICKATELL_TEST_CELERY_EAGER": "0",
            "CLICKATELL_TEST_VISIBILITY": str(visibility_timeout),
            "PYTHONPATH": str(ROOT),
        }
        self.logs = [tempfile.NamedTemporaryFile("w+", suffix=".log") for _ in range(count)]  # noqa: SIM115
        self.processes = [
            subprocess.Popen(
                [
                    sys.executable,
                    *("-m", "celery", "-A", "tests.celery_app", "worker", "--pool=solo", "--loglevel=INFO"),
                    *("--without-heartbeat", "--without-gossip", "--without-mingle", f"--hostname=w{i}@%h"),
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            for i, log in enumerate(self.logs)
        ]
        deadline = time.monotonic() + 60
        while not all(" ready." in self.log(i) for i in range(count)):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                raise AssertionError("workers did not start:\n" + "\n".join(map(self.log, range(count))))
            time.sleep(0.1)

    def log(self, i: int) -> str:
        return Path(self.logs[i].name).read_text()

    def owner(self, i: int) -> str:
        """What this worker writes in ``StopAttempt.claimed_by``."""
        import socket

        return f"{socket.gethostname()[:40]}:{self.processes[i].pid}"

    def kill(self, i: int) -> None:
        self.processes[i].send_signal(signal.SIGKILL)
        self.processes[i].wait(timeout=10)

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in self.logs:
            log.close()


def make_messages(gw: FakeGateway, n: int) -> list[str]:
    ids = [f"{i:032x}" for i in range(1, n + 1)]
    ScheduledMessage.objects.bulk_create([ScheduledMessage(apimsgid=i) for i in ids])
    for apimsgid in ids:
        gw.add_message(apimsgid)
    return ids


def wait_finished(job: StopJob, workers: Workers, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        job.refresh_from_db()
        if job.state == JobState.FINISHED:
            return
        if time.monotonic() > deadline:
            logs = "\n".join(workers.log(i)[-3000:] for i in range(len(workers.processes)))
            raise AssertionError(f"{jobs.progress(job).describe()}\n{logs}")
        time.sleep(0.2)


def assert_stopped_exactly_once(ids: list[str]) -> None:
    assert not StopAttempt.objects.filter(outcome=Outcome.PENDING).exists()
    assert ScheduledMessage.objects.filter(state=State.STOPPED).count() == len(ids)
    stopped = Counter(
        StopAttempt.objects.filter(outcome=Outcome.STOPPED).values_list("message__apimsgid", flat=True)
    )
    assert set(stopped) == set(ids)
    assert set(stopped.values()) == {1}  # one "stopped" record per message, never two


def test_two_workers_stop_1000_messages_once_within_the_shared_rate(broker, settings):
    rate, n = 100.0, 1000
    with FakeGateway() as gw:
        gw.latency = 0.02
        stop_settings = gw.settings(
            # Each chunk spends ~0.15 s on PostgreSQL claiming and recording, sending nothing;
            # chunks of 2.5 s keep that under 10% even when both workers hit a boundary together.
            CHUNK_SIZE=125,
            CONCURRENCY=8,
            MAX_REQUESTS_PER_SECOND=rate,
            RATE_LIMIT_REDIS_URL=broker,
            EXECUTION="celery",
        )
        settings.CLICKATELL_STOP = stop_settings
        ids = make_messages(gw, n)
        workers = Workers(2, stop_settings)
        try:
            job = jobs.enqueue_stop(ScheduledMessage.objects.all(), trigger="command")
            assert job.total == n
            wait_finished(job, workers)
            from celery.result import AsyncResult

            final: dict[str, Any] = AsyncResult(str(job.pk)).get(timeout=30)  # the chord's last task
        finally:
            workers.close()
        calls = gw.calls_to("delmsg")

    assert_stopped_exactly_once(ids)
    assert Counter(call.params["apimsgid"] for call in calls) == Counter(ids)  # each sent exactly once
    job.refresh_from_db()
    assert job.summary[State.STOPPED] == n and job.summary[State.STOPPING] == 0
    assert final["counts"] == {"stopped": n} and final["total"] == n and final["ok"]
    assert jobs.progress(job).chunks_done == 8
    owners = set(StopAttempt.objects.values_list("claimed_by", flat=True))
    assert owners == {workers.owner(0), workers.owner(1)}  # both workers took part
    # The limit holds for both workers together: measured at the gateway.
    stamps = sorted(call.at for call in calls)
    measured = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    print(f"2 workers, {n} messages: {measured:.1f} requests/s against a limit of {rate:g}")
    assert abs(measured / rate - 1) <= 0.10, measured
    busiest = max(bisect_left(stamps, start + 1) - i for i, start in enumerate(stamps))  # calls in any 1 s
    assert busiest <= rate * 1.10, busiest


def test_a_worker_killed_mid_chunk_loses_nothing_and_stops_nothing_twice(broker, settings):
    n = 600
    with FakeGateway() as gw:
        gw.latency = 0.02
        stop_settings = gw.settings(
            CHUNK_SIZE=50,
            CONCURRENCY=4,
            MAX_REQUESTS_PER_SECOND=150,
            RATE_LIMIT_REDIS_URL=broker,
            EXECUTION="celery",
        )
        settings.CLICKATELL_STOP = stop_settings
        ids = make_messages(gw, n)
        # A dead worker's unacknowledged task goes back to the queue after the visibility timeout.
        workers = Workers(2, stop_settings, visibility_timeout=5)
        try:
            job = jobs.enqueue_stop(ScheduledMessage.objects.all(), trigger="command")
            victim = workers.owner(0)
            deadline = time.monotonic() + 60
            # Kill it while it has calls on the wire, after some of the job is done.
            while not (
                len(gw.calls_to("delmsg")) > 100
                and StopAttempt.objects.filter(outcome=Outcome.PENDING, claimed_by=victim).exists()
            ):
                assert time.monotonic() < deadline, "worker 0 never had a call in flight"
                time.sleep(0.005)
            workers.kill(0)
            killed_at = StopAttempt.objects.filter(outcome=Outcome.PENDING, claimed_by=victim).count()
            assert killed_at > 0
            wait_finished(job, workers)
            survivor_log = workers.log(1)
        finally:
            workers.close()
        calls = gw.calls_to("delmsg")

    assert_stopped_exactly_once(ids)
    assert f"Job {job.pk} chunk" in survivor_log and "was redelivered" in survivor_log  # Redis says so
    interrupted = set(
        StopAttempt.objects.filter(outcome=Outcome.INTERRUPTED).values_list("message__apimsgid", flat=True)
    )
    assert interrupted, "the killed worker's calls in flight are recorded as interrupted"
    assert StopAttempt.objects.filter(outcome=Outcome.INTERRUPTED, claimed_by=victim).count() == len(
        interrupted
    )
    # SIGKILL can land mid-request: the gateway then saw a delmsg cut short, with no ID.
    cut_short = [call for call in calls if "apimsgid" not in call.params]
    assert len(cut_short) <= len(interrupted)
    sent = Counter(call.params["apimsgid"] for call in calls if "apimsgid" in call.params)
    assert set(sent) == set(ids)  # nothing lost
    sent_twice = {apimsgid for apimsgid, count in sent.items() if count > 1}
    assert sent_twice <= interrupted  # only a call whose reply died with the worker is sent again
    assert max(sent.values()) <= 2
    print(
        f"killed holding {killed_at} claims; {len(interrupted)} interrupted, {len(sent_twice)} resent, "
        f"{len(cut_short)} cut short"
    )
    job.refresh_from_db()
    assert job.summary[State.STOPPED] == n
    assert max(job.chunks.values_list("tries", flat=True)) == 2  # the dead worker's chunk, run again
    owners = set(StopAttempt.objects.filter(outcome=Outcome.STOPPED).values_list("claimed_by", flat=True))
    assert workers.owner(1) in owners
