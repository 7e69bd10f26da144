"""kill -9 in the middle of a 1,000-message stopmessage run, then run it again."""

from __future__ import annotations

import signal
from collections import Counter

from .test_command_process import Site, site  # noqa: F401 - the fixture


def calls_and_attempts(running: Site) -> tuple[Counter[str], Counter[str]]:
    """Requests the gateway received, and attempts recorded, per apimsgid."""
    # A request cut off by the kill may arrive without its body: that is no stop request at all.
    calls = Counter(
        call.form["apimsgid"] for call in running.gateway.calls_to("delmsg") if "apimsgid" in call.form
    )
    attempts: Counter[str] = Counter(
        str(apimsgid)
        for (apimsgid,) in running.query(
            "select m.apimsgid from django_clickatell_stop_stopattempt a "
            "join django_clickatell_stop_scheduledmessage m on m.id = a.message_id"
        )
    )
    return calls, attempts


def test_sigkill_mid_batch_then_rerun_is_consistent(site):  # noqa: F811
    ids = site.track(1000)
    site.gateway.latency = 0.004
    process = site.popen("stopmessage", "--all-scheduled", "--yes", "--concurrency", "4")
    site.wait_for_calls(300)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL
    first_run = len(site.gateway.calls_to("delmsg"))
    assert 300 <= first_run < 1000, "the kill must land mid-batch"

    # Straight after the kill: every request the gateway received has an attempt
    # (completed, or pending for the calls the process was killed in).
    per_id_calls, attempts = calls_and_attempts(site)
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
    per_id_calls, attempts = calls_and_attempts(site)
    assert set(per_id_calls) == set(ids)
    assert all(attempts[apimsgid] >= count for apimsgid, count in per_id_calls.items())
    # The calls cut short by the kill were reconciled, and counted as interrupted.
    assert outcomes.get("interrupted", 0) == sum(attempts.values()) - 1000
