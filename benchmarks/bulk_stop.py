"""Benchmark the bulk stop path against the fake gateway, measured as ratios in one run.

    .venv/bin/python benchmarks/bulk_stop.py              # the issue's targets
    .venv/bin/python benchmarks/bulk_stop.py --quick      # a smaller, faster run
    .venv/bin/python benchmarks/bulk_stop.py --celery     # stop jobs on 1 and 2 Celery workers

``--celery`` needs PostgreSQL (``--database-url``, default the local ``postgres`` user;
a ``clickatell_bench`` database is created and dropped) and Redis (``--broker-url``;
that Redis database is flushed).

The fake gateway runs in its own process (so it does not share our interpreter lock),
with TCP_NODELAY and a configurable per-request latency. Prints a table, then one JSON
line with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

USER, PASSWORD, API_ID, TOKEN = "bench-user", "bench-password", "1234567", "bench-token"
TRANSPORTS: dict[str, dict[str, str]] = {
    "http": {},
    "http-session": {"AUTH": "session"},
    "rest": {"TRANSPORT": "rest"},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gateway:
    """The fake gateway in a subprocess; a failed run shows as all_stopped false."""

    def __init__(self, latency: float) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "django_clickatell_stop.testing",
                "--port",
                str(self.port),
                "--latency",
                str(latency),
                "--accept-any-id",
                "--user",
                USER,
                "--password",
                PASSWORD,
                "--api-id",
                API_ID,
                "--token",
                TOKEN,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.process.stdout.readline()  # "listening on ..."
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def setup_django(db_path: str, base_url: str, **extra: Any) -> None:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        USE_TZ=True,
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": db_path}},
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "django_clickatell_stop"],
        CLICKATELL_STOP={
            "USER": USER,
            "PASSWORD": PASSWORD,
            "API_ID": API_ID,
            "TOKEN": TOKEN,
            "BASE_URL": base_url,
            **extra,
        },
        LOGGING_CONFIG=None,
    )
    django.setup()


def create_messages(n: int, prefix: int) -> None:
    from django_clickatell_stop.models import ScheduledMessage

    ScheduledMessage.objects.bulk_create(
        (ScheduledMessage(apimsgid=f"{prefix:08x}{i:024x}") for i in range(n)), batch_size=2000
    )


def fresh_db() -> str:
    handle, path = tempfile.mkstemp(suffix=".sqlite3", prefix="bench-")
    os.close(handle)
    return path


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def child(args: argparse.Namespace) -> None:
    """One measured run in a fresh process: print a JSON result."""
    extra: dict[str, Any] = {"CONCURRENCY": args.concurrency}
    if args.limit:
        extra["MAX_REQUESTS_PER_SECOND"] = args.limit
    extra.update(TRANSPORTS[args.transport])
    setup_django(args.db, args.url, **extra)
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    from django_clickatell_stop.models import ScheduledMessage
    from django_clickatell_stop.services import Result, stop_messages

    queryset = ScheduledMessage.objects.filter(apimsgid__startswith=f"{args.prefix:08x}")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reset_queries()
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        summary = stop_messages(queryset, concurrency=args.concurrency)
        elapsed = time.perf_counter() - started
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "n": summary.total,
                "stopped": summary.counts[Result.STOPPED],
                "seconds": elapsed,
                "per_second": summary.total / elapsed,
                "queries": len(queries),
                "rss_before_kib": rss_before,
                "rss_peak_kib": rss_after,
            }
        )
    )


def run_child(
    db: str, url: str, prefix: int, concurrency: int, rate: float | None = None, transport: str = "http"
) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--child",
        "--db",
        db,
        "--url",
        url,
        "--prefix",
        str(prefix),
        "--concurrency",
        str(concurrency),
    ]
    if rate:
        command += ["--limit", str(rate)]
    command += ["--transport", transport]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def raw_keepalive_loop(port: int, count: int) -> float:
    """Seconds per call of a bare keep-alive loop (http.client, one connection): the gateway's own cost."""
    import http.client
    from urllib.parse import urlencode

    connection = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    started = time.perf_counter()
    for i in range(count):
        body = urlencode(
            {"user": USER, "password": PASSWORD, "api_id": API_ID, "apimsgid": f"eeeeeeee{i:024x}"}
        )
        connection.request("POST", "/http/delmsg", body=body, headers=headers)
        connection.getresponse().read()
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed / count


def gateway_rate(url: str, prefix: int) -> float:
    """Requests per second as the gateway saw them arrive, for one run's messages."""
    import requests

    calls = requests.get(f"{url}/_fake/state", timeout=30).json()["calls"]
    stamps: list[float] = sorted(
        c["at"] for c in calls if c["form"].get("apimsgid", "").startswith(f"{prefix:08x}")
    )
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def bare_loop(url: str, count: int, session: bool) -> float:
    """Seconds per call of a plain requests.post + parse loop (no database)."""
    import requests

    from django_clickatell_stop.parsing import parse_stop_reply

    poster = requests.Session() if session else requests
    form = {"user": USER, "password": PASSWORD, "api_id": API_ID}
    started = time.perf_counter()
    for i in range(count):
        apimsgid = f"ffffffff{i:024x}"
        parse_stop_reply(
            poster.post(f"{url}/http/delmsg", data={**form, "apimsgid": apimsgid}, timeout=10).text
        )
    return (time.perf_counter() - started) / count


def naive_baseline(url: str, sample: int) -> float:
    """Messages per second of a plain loop: requests.post + parse + save() per message."""
    import requests

    from django_clickatell_stop.models import ScheduledMessage, State
    from django_clickatell_stop.parsing import parse_stop_reply

    form = {"user": USER, "password": PASSWORD, "api_id": API_ID}
    messages = list(ScheduledMessage.objects.filter(apimsgid__startswith=f"{99:08x}")[:sample])
    started = time.perf_counter()
    for message in messages:
        reply = parse_stop_reply(
            requests.post(f"{url}/http/delmsg", data={**form, "apimsgid": message.apimsgid}, timeout=10).text
        )
        message.state = State.STOPPED if reply.stopped else State.TOO_LATE
        message.gateway_status = reply.status_display
        message.save()
    return len(messages) / (time.perf_counter() - started)


# -- --celery: stop jobs on worker processes ------------------------------------------

BENCH_DB = "clickatell_bench"


class CeleryWorkers:
    """``celery worker`` processes (solo pool) against the benchmark's settings."""

    def __init__(self, count: int, env: dict[str, str]) -> None:
        self.logs = [tempfile.TemporaryFile("w+") for _ in range(count)]  # noqa: SIM115
        self.processes = [
            subprocess.Popen(
                [
                    sys.executable,
                    *("-m", "celery", "-A", "benchmarks.celery_app", "worker", "--pool=solo"),
                    *("--loglevel=WARNING", "--without-heartbeat", "--without-gossip", "--without-mingle"),
                    f"--hostname=bench{i}@%h",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            for i, log in enumerate(self.logs)
        ]
        from benchmarks.celery_app import app

        deadline = time.monotonic() + 60
        while len(app.control.ping(timeout=0.5) or []) < count:
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                raise RuntimeError("Celery workers did not start: " + self.output())
        time.sleep(0.5)

    def output(self) -> str:
        texts = []
        for log in self.logs:
            log.seek(0)
            texts.append(log.read()[-2000:])
        return "\n".join(texts)

    def close(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=30)


def celery_job(n: int, prefix: int, workers: int, env: dict[str, str]) -> dict[str, Any]:
    """Enqueue a stop of *n* fresh messages, time it to the job's end on *workers* workers."""
    from django_clickatell_stop.jobs import enqueue_stop, progress
    from django_clickatell_stop.models import ScheduledMessage

    create_messages(n, prefix)
    pool = CeleryWorkers(workers, env)
    try:
        started = time.perf_counter()
        job = enqueue_stop(
            ScheduledMessage.objects.filter(apimsgid__startswith=f"{prefix:08x}"), backend="celery"
        )
        while not (current := progress(job)).finished:
            if time.perf_counter() - started > 600:
                raise RuntimeError(f"job did not finish: {current.describe()}\n{pool.output()}")
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        pool.close()
    return {
        "n": job.total,
        "stopped": current.counts.get("stopped", 0),
        "seconds": elapsed,
        "per_second": job.total / elapsed,
    }


def celery_main(args: argparse.Namespace) -> None:
    import psycopg
    import redis

    admin_url = args.database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {BENCH_DB}")
    broker = redis.Redis.from_url(args.broker_url)
    broker.flushdb()
    n, c, chunk = args.n, args.concurrency, args.chunk_size
    gateway = Gateway(args.latency)

    def stop_settings(**extra: Any) -> str:
        config = {
            "USER": USER,
            "PASSWORD": PASSWORD,
            "API_ID": API_ID,
            "BASE_URL": gateway.url,
            "CONCURRENCY": c,
            "CHUNK_SIZE": chunk,
            "EXECUTION": "celery",
            **extra,
        }
        return json.dumps(config)

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "benchmarks.celery_settings",
        "DATABASE_URL": args.database_url.rsplit("/", 1)[0] + f"/{BENCH_DB}",
        "BENCH_BROKER_URL": args.broker_url,
        "BENCH_CLICKATELL_STOP": stop_settings(),
        "PYTHONPATH": str(ROOT),
    }
    rate_env = {
        **env,
        "BENCH_CLICKATELL_STOP": stop_settings(
            MAX_REQUESTS_PER_SECOND=args.rate, RATE_LIMIT_REDIS_URL=args.broker_url
        ),
    }
    os.environ.update({k: v for k, v in env.items() if k != "PYTHONPATH"})
    try:
        import django

        django.setup()
        migrate()
        from django.db import connections

        from django_clickatell_stop.models import ScheduledMessage
        from django_clickatell_stop.services import stop_messages

        create_messages(n, 30)
        started = time.perf_counter()
        inline = stop_messages(
            ScheduledMessage.objects.filter(apimsgid__startswith=f"{30:08x}"), concurrency=c
        )
        inline_per_second = inline.total / (time.perf_counter() - started)
        connections.close_all()
        one = celery_job(n, 31, 1, env)
        two = celery_job(n, 32, 2, env)
        rate_n = int(args.rate * 5)
        limited = celery_job(rate_n, 33, 2, rate_env)
        rate_seen = gateway_rate(gateway.url, 33)
        connections.close_all()
    finally:
        gateway.close()
        broker.flushdb()
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")

    ideal = c / args.latency
    figures = {
        "mode": "celery",
        "latency_s": args.latency,
        "n": n,
        "concurrency_per_worker": c,
        "chunk_size": chunk,
        "inline_per_second": round(inline_per_second, 1),
        "one_worker_per_second": round(one["per_second"], 1),
        "two_workers_per_second": round(two["per_second"], 1),
        "two_vs_one": round(two["per_second"] / one["per_second"], 2),
        "one_worker_vs_inline": round(one["per_second"] / inline_per_second, 2),
        "ideal_per_worker": round(ideal, 1),
        "rate_limit": args.rate,
        "rate_two_workers_at_gateway": round(rate_seen, 1),
        "rate_error": round(rate_seen / args.rate - 1, 4),
        "all_stopped": all(r["stopped"] == r["n"] for r in (one, two, limited)) and inline.ok,
    }
    rows = [
        (f"in process (stop_messages), N={n}, concurrency {c}", f"{inline_per_second:.1f} msg/s", "baseline"),
        (
            f"Celery, 1 worker, N={n}, chunks of {chunk}",
            f"{one['per_second']:.1f} msg/s",
            f"{figures['one_worker_vs_inline']}x in process; ideal {ideal:.0f}/worker",
        ),
        (
            f"Celery, 2 workers, N={n}",
            f"{two['per_second']:.1f} msg/s",
            f"{figures['two_vs_one']}x one worker",
        ),
        (
            f"2 workers, MAX_REQUESTS_PER_SECOND={args.rate:g} via Redis, at the gateway",
            f"{rate_seen:.1f} req/s",
            f"{figures['rate_error']:+.2%} (within 10%)",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>14}  {note}")
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency", type=float, default=0.05, help="per-request gateway latency (s)")
    parser.add_argument("-n", type=int, default=2000, help="messages for the main run")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--big-n", type=int, default=10_000, help="messages for the concurrency-64 run")
    parser.add_argument("--sample", type=int, default=60, help="messages for the naive baseline")
    parser.add_argument("--rate", type=float, default=200.0, help="MAX_REQUESTS_PER_SECOND for the rate run")
    parser.add_argument("--quick", action="store_true", help="smaller N everywhere")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--transport", default="http", choices=TRANSPORTS, help=argparse.SUPPRESS)
    parser.add_argument("--celery", action="store_true", help="stop jobs on 1 and 2 Celery workers instead")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="--celery: a PostgreSQL server to create the benchmark database on",
    )
    parser.add_argument(
        "--broker-url",
        default=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/13"),
        help="--celery: the Redis database for the broker and the shared rate limit (flushed)",
    )
    parser.add_argument("--chunk-size", type=int, default=250, help="--celery: CHUNK_SIZE")
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.celery:
        if args.quick:
            args.n = 600
        celery_main(args)
        return
    if args.quick:
        args.n, args.big_n, args.sample = 400, 2000, 20

    db = fresh_db()
    slow, fast = Gateway(args.latency), Gateway(0.0)
    try:
        setup_django(db, slow.url)
        migrate()
        n, big = args.n, args.big_n
        create_messages(n, 1)
        create_messages(big, 2)
        create_messages(n, 3)  # memory at N
        create_messages(10 * n, 4)  # memory at 10 x N
        create_messages(n, 5)  # zero-latency overhead
        rate_n = int(args.rate * 3)
        create_messages(rate_n, 6)
        create_messages(args.sample, 99)
        for index, _ in enumerate(TRANSPORTS):
            create_messages(n, 10 + index)  # at latency, per transport
            create_messages(n // 4, 20 + index)  # at zero latency, per transport
        from django.db import connections

        # An open SQLite connection here would make each child wait out its busy timeout.
        connections.close_all()

        bare_keepalive = raw_keepalive_loop(fast.port, 1000)
        naive = naive_baseline(slow.url, args.sample)
        connections.close_all()
        main_run = run_child(db, slow.url, 1, args.concurrency)
        big_run = run_child(db, slow.url, 2, 64)
        mem_n = run_child(db, fast.url, 3, args.concurrency)
        mem_10n = run_child(db, fast.url, 4, args.concurrency)
        overhead_run = run_child(db, fast.url, 5, 1)
        bare_parse = bare_loop(fast.url, n, session=True)
        rate_run = run_child(db, slow.url, 6, 16, rate=args.rate)
        rate_seen = gateway_rate(slow.url, 6)
        per_transport = {
            name: (
                run_child(db, slow.url, 10 + index, args.concurrency, transport=name),
                run_child(db, fast.url, 20 + index, 1, transport=name),
            )
            for index, name in enumerate(TRANSPORTS)
        }
    finally:
        slow.close()
        fast.close()
        os.unlink(db)

    ideal = args.concurrency / args.latency
    ideal_64 = 64 / args.latency
    overhead = (1 / overhead_run["per_second"]) / bare_parse
    figures = {
        "latency_s": args.latency,
        "gateway_ms_per_keepalive_call": round(bare_keepalive * 1000, 3),
        "naive_per_second": round(naive, 1),
        "n": n,
        "concurrency": args.concurrency,
        "stop_messages_per_second": round(main_run["per_second"], 1),
        "ideal_per_second": round(ideal, 1),
        "fraction_of_ideal": round(main_run["per_second"] / ideal, 3),
        "speedup_vs_naive": round(main_run["per_second"] / naive, 1),
        "queries_per_message": round(main_run["queries"] / main_run["n"], 4),
        "big_n": big,
        "c64_per_second": round(big_run["per_second"], 1),
        "c64_fraction_of_ideal": round(big_run["per_second"] / ideal_64, 3),
        "rss_peak_mib_n": round(mem_n["rss_peak_kib"] / 1024, 1),
        "rss_peak_mib_10n": round(mem_10n["rss_peak_kib"] / 1024, 1),
        "rss_growth_mib_10n_vs_n": round((mem_10n["rss_peak_kib"] - mem_n["rss_peak_kib"]) / 1024, 1),
        "zero_latency_ms_per_message": round(1000 / overhead_run["per_second"], 3),
        "bare_post_parse_ms_per_message": round(bare_parse * 1000, 3),
        "overhead_ratio_at_zero_latency": round(overhead, 2),
        "rate_limit": args.rate,
        "rate_at_gateway": round(rate_seen, 1),
        "rate_error": round(rate_seen / args.rate - 1, 4),
        "rate_end_to_end": round(rate_run["per_second"], 1),
        "transports": {
            name: {
                "per_second": round(slow_run["per_second"], 1),
                "fraction_of_ideal": round(slow_run["per_second"] / ideal, 3),
                "zero_latency_ms_per_message": round(1000 / fast_run["per_second"], 3),
            }
            for name, (slow_run, fast_run) in per_transport.items()
        },
        "all_stopped": all(
            r["stopped"] == r["n"]
            for r in (main_run, big_run, mem_n, mem_10n, overhead_run, rate_run)
            + tuple(run for pair in per_transport.values() for run in pair)
        ),
    }
    rows = [
        (
            "fake gateway, bare keep-alive call (latency 0)",
            f"{figures['gateway_ms_per_keepalive_call']} ms",
            "well under 1 ms",
        ),
        (f"naive loop (post + parse + save), {args.sample} msgs", f"{naive:.1f} msg/s", "baseline"),
        (
            f"stop_messages, N={n}, concurrency {args.concurrency}",
            f"{main_run['per_second']:.1f} msg/s",
            f"{figures['speedup_vs_naive']}x naive",
        ),
        (
            "ideal bound concurrency / latency",
            f"{ideal:.1f} msg/s",
            f"achieved {figures['fraction_of_ideal']:.1%} (>= 90%)",
        ),
        ("database queries per message", f"{figures['queries_per_message']}", "<= 0.05"),
        (
            f"stop_messages, N={big}, concurrency 64",
            f"{big_run['per_second']:.1f} msg/s",
            f"{figures['c64_fraction_of_ideal']:.1%} of {ideal_64:.0f}",
        ),
        (
            f"peak RSS at N={n} / 10xN",
            f"{figures['rss_peak_mib_n']} / {figures['rss_peak_mib_10n']} MiB",
            f"+{figures['rss_growth_mib_10n_vs_n']} MiB (<= 30)",
        ),
        (
            "per message at latency 0: stop_messages(c=1) / bare post+parse",
            f"{figures['zero_latency_ms_per_message']} / {figures['bare_post_parse_ms_per_message']} ms",
            f"{overhead:.2f}x (<= 1.5x)",
        ),
        (
            f"MAX_REQUESTS_PER_SECOND={args.rate:g}, as the gateway saw it",
            f"{rate_seen:.1f} req/s",
            f"{figures['rate_error']:+.2%} (within 5%)",
        ),
        ("   ...end to end, claims and records included", f"{rate_run['per_second']:.1f} msg/s", ""),
        *(
            (
                f"transport {name}: N={n}, c={args.concurrency} / per message at latency 0",
                f"{t['per_second']} msg/s / {t['zero_latency_ms_per_message']} ms",
                f"{t['fraction_of_ideal']:.1%} of ideal",
            )
            for name, t in figures["transports"].items()
        ),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>22}  {note}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
