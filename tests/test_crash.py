"""kill -9 in the middle of a 1,000-message stopmessage run, then run it again."""

from __future__ import annotations

import signal
import time
from collections import Counter

from .test_command_process import site  # noqa: F401 - the fixture


def test_sigkill_mid_batch_then_rerun_is_consistent(site):  # noqa: F811
    ids = site.track(1000)
    site.gateway.latency = 0.004
    process = site.popen("stopmessage", "--all-scheduled", "--yes", "--concurrency", "4")
    deadline = time.monotonic() + 60
    while len(site.gateway.calls) < 300 and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL
    first_run = len(site.gateway.calls_to("delmsg"))
    assert 300 <= first_run < 1000, "the kill must land mid-batch"

    # Straight after the kill: every request the gateway received has an attempt
    # (completed, or pending for the calls the process was killed in).
    per_id_calls = Counter(call.form["apimsgid"] for call in site.gateway.calls_to("delmsg"))
    attempts = Counter(
        apimsgid
        for (apimsgid,) in site.query(
            "select m.apimsgid from django_clickatell_stop_stopattempt a "
            "join django_clickatell_stop_scheduledmessage m on m.id = a.message_id"
        )
    )
    assert all(attempts[apimsgid] >= count for apimsgid, count in per_id_calls.items())
    assert site.query(
        "select count(*) from django_clickatell_stop_scheduledmessage where state = 'stopped' and id not in "
        "(select message_id from django_clickatell_stop_stopattempt where outcome = 'stopped')"
    ) == [(0,)]

    again = site.manage("stopmessage", "--all-scheduled", "--yes", "--concurrency", "4")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr

    states = dict(
        site.query("select state, count(*) from django_clickatell_stop_scheduledmessage group by state")
    )
    assert states == {"stopped": 1000}
    outcomes = dict(
        site.query("select outcome, count(*) from django_clickatell_stop_stopattempt group by outcome")
    )
    assert "pending" not in outcomes
    assert outcomes["stopped"] == 1000  # exactly one stop recorded per message
    # Each stopped message has its 006 reply recorded.
    assert site.query(
        "select count(distinct message_id) from django_clickatell_stop_stopattempt "
        "where outcome = 'stopped' and gateway_status = '006' and raw_reply like '%Status: 006'"
    ) == [(1000,)]
    # Every request the gateway ever received has an attempt.
    per_id_calls = Counter(call.form["apimsgid"] for call in site.gateway.calls_to("delmsg"))
    attempts = Counter(
        apimsgid
        for (apimsgid,) in site.query(
            "select m.apimsgid from django_clickatell_stop_stopattempt a "
            "join django_clickatell_stop_scheduledmessage m on m.id = a.message_id"
        )
    )
    assert set(per_id_calls) == set(ids)
    assert all(attempts[apimsgid] >= count for apimsgid, count in per_id_calls.items())
    # The calls cut short by the kill were reconciled, and counted as interrupted.
    assert outcomes.get("interrupted", 0) == sum(attempts.values()) - 1000
