"""Two stopmessage processes and a service call stop the same 500 messages at once (PostgreSQL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter

import pytest
from django.db import connection
from django.db.models import Count

from django_clickatell_stop.models import Outcome, ScheduledMessage, State, StopAttempt
from django_clickatell_stop.services import stop_messages
from django_clickatell_stop.testing import fake_gateway

from .test_command_process import MANAGE

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_concurrent_runs_stop_each_message_exactly_once():
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL; run with DATABASE_URL=postgres://...")
    db = connection.settings_dict
    url = (
        f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )
    with fake_gateway(CHUNK_SIZE=50) as gw:
        ids = [f"{n:032x}" for n in range(1, 501)]
        ScheduledMessage.objects.bulk_create([ScheduledMessage(apimsgid=i) for i in ids])
        for apimsgid in ids:
            gw.add_message(apimsgid)
        gw.latency = 0.02  # long enough for the three runs to overlap
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "CLICKATELL_USER": gw.user,
            "CLICKATELL_PASSWORD": gw.password,
            "CLICKATELL_API_ID": gw.api_id,
            "CLICKATELL_BASE_URL": gw.url,
            "CLICKATELL_CHUNK_SIZE": "50",  # small claims, so that the runs interleave
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)  # the example project's own settings
        command = [sys.executable, str(MANAGE), "stopmessage", "--all-scheduled", "--yes", "--json"]
        # Output goes to files: a full pipe would block a run (and its row locks) on the test.
        outputs = [(tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")) for _ in range(2)]  # noqa: SIM115
        processes = [
            subprocess.Popen([*command, "--concurrency", str(c)], env=env, stdout=out, stderr=err, text=True)
            for c, (out, err) in zip((4, 8), outputs, strict=True)
        ]
        in_process: list[object] = []

        def service():
            try:
                in_process.append(stop_messages(ScheduledMessage.objects.all(), concurrency=4))
            finally:
                connection.close()

        thread = threading.Thread(target=service)
        deadline = time.monotonic() + 60
        while len(gw.calls) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        thread.start()
        for process in processes:
            process.wait(timeout=180)
        results = []
        for out, err in outputs:
            out.seek(0)
            err.seek(0)
            results.append((out.read(), err.read()))
        thread.join(timeout=180)
        calls = gw.calls_to("delmsg")

    seen: Counter[str] = Counter()
    stopped_by: list[int] = []
    for process, (stdout, stderr) in zip(processes, results, strict=True):
        # 1 when another run had some messages in flight: the command cannot know yet how those end.
        assert process.returncode in (0, 1), stderr
        assert "deadlock" not in stderr.lower() and "Traceback" not in stderr
        lines = [json.loads(line) for line in stdout.splitlines()]
        seen.update(line["result"] for line in lines[:-1])
        stopped_by.append(lines[-1]["summary"]["counts"]["stopped"])
    (summary,) = in_process
    seen.update({result.value: count for result, count in summary.counts.items()})  # type: ignore[attr-defined]
    stopped_by.append(summary.counts["stopped"])  # type: ignore[attr-defined]
    assert sum(1 for n in stopped_by if n) >= 2, f"the runs did not overlap: {stopped_by}"
    assert set(seen) <= {"stopped", "already_stopped", "skipped"}
    assert seen["stopped"] == 500
    assert ScheduledMessage.objects.filter(state=State.STOPPED).count() == 500
    per_message = (
        StopAttempt.objects.filter(outcome=Outcome.STOPPED).values("message").annotate(n=Count("pk"))
    )
    assert sorted({row["n"] for row in per_message}) == [1]  # each stopped exactly once in the records
    assert per_message.count() == 500
    assert StopAttempt.objects.count() == 500
    assert len(calls) == 500  # and each stop was sent once
