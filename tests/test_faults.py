"""The fault matrix: one stop against each fault the fake gateway can inject.

Each case asserts the message's final state, the recorded attempt and what the gateway
received. ``docs/reliability.md`` carries the same table; ``test_reliability_doc_matches``
keeps it from drifting (regenerate it with ``python -m tests.test_faults``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from django_clickatell_stop.models import Outcome, ScheduledMessage, State, StopAttempt
from django_clickatell_stop.services import Result, stop_message, stop_messages
from django_clickatell_stop.testing import FakeGateway

APIMSGID = "f6b9af2a2c9e5b18ee2d257e3def5d66"
DOC = Path(__file__).resolve().parent.parent / "docs" / "reliability.md"
SETTINGS = {"TIMEOUT": 0.3, "CONNECT_TIMEOUT": 0.3, "MAX_RETRIES": 2, "RETRY_BACKOFF": 0.01}


@dataclass(frozen=True)
class Fault:
    name: str
    inject: Callable[[FakeGateway], Any]
    state: State
    outcome: Outcome
    calls: int
    http_status: int | None = None
    error: str = ""
    settings: dict[str, Any] = field(default_factory=dict)


def http(status: int, body: str, times: int = 3) -> Callable[[FakeGateway], Any]:
    return lambda gw: gw.fault("http", status=status, body=body, times=times)


FAULTS = [
    Fault(
        "latency beyond the read timeout, every try",
        lambda gw: gw.fault("latency", delay=0.8, times=3),
        State.FAILED,
        Outcome.FAILED,
        3,
        error="Timeout talking to Clickatell",
    ),
    Fault(
        "latency beyond the read timeout, once",
        lambda gw: gw.fault("latency", delay=0.8),
        State.STOPPED,
        Outcome.STOPPED,
        2,
        http_status=200,
    ),
    Fault(
        "connection refused",
        lambda gw: None,
        State.FAILED,
        Outcome.FAILED,
        0,
        error="Connection to Clickatell failed",
        settings={"BASE_URL": "http://127.0.0.1:9"},
    ),
    Fault(
        "connection reset mid-reply, every try",
        lambda gw: gw.fault("reset", times=3),
        State.FAILED,
        Outcome.FAILED,
        3,
        error="Connection to Clickatell failed",
    ),
    Fault(
        "connection dropped before the reply, every try",
        lambda gw: gw.fault("drop", times=3),
        State.FAILED,
        Outcome.FAILED,
        3,
        error="Connection to Clickatell failed",
    ),
    Fault(
        "HTTP 500 with a body",
        http(500, "Internal Server Error"),
        State.FAILED,
        Outcome.FAILED,
        3,
        http_status=500,
        error="Clickatell answered HTTP 500",
    ),
    Fault(
        "HTTP 500 without a body",
        http(500, ""),
        State.FAILED,
        Outcome.FAILED,
        3,
        http_status=500,
        error="Clickatell answered HTTP 500",
    ),
    Fault(
        "HTTP 502 with a body",
        http(502, "Bad Gateway"),
        State.FAILED,
        Outcome.FAILED,
        3,
        http_status=502,
        error="Clickatell answered HTTP 502",
    ),
    Fault(
        "HTTP 502 without a body",
        http(502, ""),
        State.FAILED,
        Outcome.FAILED,
        3,
        http_status=502,
        error="Clickatell answered HTTP 502",
    ),
    Fault(
        "HTTP 503 with a body",
        http(503, "Service Unavailable"),
        State.FAILED,
        Outcome.FAILED,
        3,
        http_status=503,
        error="Clickatell answered HTTP 503",
    ),
    Fault(
        "HTTP 503 without a body",
        http(503, ""),
        State.FAILED,
        Outcome.FAILED,
        3,
        http_status=503,
        error="Clickatell answered HTTP 503",
    ),
    Fault(
        "HTTP 503, then success",
        http(503, "busy", times=1),
        State.STOPPED,
        Outcome.STOPPED,
        2,
        http_status=200,
    ),
    Fault(
        "HTML error page with HTTP 200",
        lambda gw: gw.fault("body", body="<html><body><h1>Maintenance</h1></body></html>"),
        State.FAILED,
        Outcome.FAILED,
        1,
        http_status=200,
        error="Unreadable reply from Clickatell",
    ),
    Fault(
        "empty body",
        lambda gw: gw.fault("body", body=""),
        State.FAILED,
        Outcome.FAILED,
        1,
        http_status=200,
        error="Empty reply from Clickatell",
    ),
    Fault(
        "truncated line",
        lambda gw: gw.fault("body", body=f"ID: {APIMSGID} Sta"),
        State.FAILED,
        Outcome.FAILED,
        1,
        http_status=200,
        error="Unreadable reply from Clickatell",
    ),
    Fault(
        "reply for a different ID",
        lambda gw: gw.reply(APIMSGID, f"ID: {'0' * 32} Status: 006"),
        State.FAILED,
        Outcome.FAILED,
        1,
        http_status=200,
        error="Reply is for message 00000000",
    ),
    Fault(
        "ERR 901, then success",
        lambda gw: gw.fault("error", code=901),
        State.STOPPED,
        Outcome.STOPPED,
        2,
        http_status=200,
    ),
    Fault(
        "ERR 901 every try",
        lambda gw: gw.fault("error", code=901, times=3),
        State.FAILED,
        Outcome.FAILED,
        3,
        http_status=200,
        error="Internal error (please retry)",
    ),
    Fault(
        "ERR 001, bad credentials (never retried)",
        lambda gw: gw.fault("error", code=1),
        State.FAILED,
        Outcome.FAILED,
        1,
        http_status=200,
        error="Authentication failed",
    ),
    Fault(
        "ERR 114, a final error (never retried)",
        lambda gw: gw.fault("error", code=114),
        State.FAILED,
        Outcome.FAILED,
        1,
        http_status=200,
        error="Cannot route message",
    ),
    Fault(
        "message already delivered",
        lambda gw: setattr(gw.message(APIMSGID), "state", "delivered"),
        State.TOO_LATE,
        Outcome.TOO_LATE,
        1,
        http_status=200,
    ),
    Fault(
        "message already handed to the network",
        lambda gw: setattr(gw.message(APIMSGID), "state", "handed_on"),
        State.TOO_LATE,
        Outcome.TOO_LATE,
        1,
        http_status=200,
    ),
    Fault(
        "ID unknown to Clickatell",
        lambda gw: gw.messages.clear(),
        State.UNKNOWN,
        Outcome.UNKNOWN,
        1,
        http_status=200,
        error="Unknown API message ID",
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault(gw, fault):
    gw.add_message(APIMSGID)
    message = ScheduledMessage.objects.create(apimsgid=APIMSGID)
    fault.inject(gw)
    with override_settings(CLICKATELL_STOP={**gw.settings(), **SETTINGS, **fault.settings}):
        attempt = stop_message(message)
    message.refresh_from_db()
    assert message.state == fault.state
    assert StopAttempt.objects.get() == attempt  # one attempt per stop, retries included
    assert attempt.outcome == fault.outcome
    assert attempt.finished_at is not None
    assert attempt.http_status == fault.http_status
    assert fault.error in f"{attempt.error_description}"
    if fault.outcome == Outcome.STOPPED:
        assert attempt.gateway_status == "006" and message.stopped_at is not None
    else:
        assert message.stopped_at is None
    calls = gw.calls_to("delmsg")
    assert len(calls) == fault.calls
    assert all(call.form["apimsgid"] == APIMSGID and call.method == "POST" for call in calls)


@pytest.mark.django_db
def test_err_001_in_the_middle_of_a_batch_of_100(gw):
    ids = [f"{n:032x}" for n in range(1, 101)]
    ScheduledMessage.objects.bulk_create([ScheduledMessage(apimsgid=i) for i in ids])
    for apimsgid in ids:
        gw.add_message(apimsgid)
    gw.fault("error", code=1, message_id=ids[49])
    with override_settings(CLICKATELL_STOP={**gw.settings(), **SETTINGS, "CHUNK_SIZE": 30}):
        summary = stop_messages(ScheduledMessage.objects.all(), concurrency=1)
    assert summary.counts == {Result.STOPPED: 49, Result.FAILED: 1, Result.NOT_ATTEMPTED: 50}
    assert "rejected the account" in summary.aborted
    assert [call.form["apimsgid"] for call in gw.calls] == ids[:50]
    untouched = ScheduledMessage.objects.filter(apimsgid__in=ids[50:])
    assert {m.state for m in untouched} == {State.SCHEDULED}
    assert not StopAttempt.objects.filter(message__in=untouched).exists()
    assert StopAttempt.objects.filter(outcome=Outcome.STOPPED).count() == 49
    assert StopAttempt.objects.get(outcome=Outcome.FAILED).message.apimsgid == ids[49]


def reliability_table() -> str:
    rows = ["| fault | message state | attempt outcome | calls the gateway saw |", "|---|---|---|---|"]
    for fault in FAULTS:
        rows.append(f"| {fault.name} | `{fault.state.value}` | `{fault.outcome.value}` | {fault.calls} |")
    rows.append(
        "| ERR 001 in the middle of a batch of 100 | 49 `stopped`, 1 `failed`, 50 untouched `scheduled` "
        "| 49 `stopped`, 1 `failed`, no attempt for the 50 not sent | 50 |"
    )
    return "\n".join(rows)


def test_reliability_doc_matches():
    text = DOC.read_text()
    start, end = "<!-- fault-table:start -->\n", "\n<!-- fault-table:end -->"
    assert text[text.index(start) + len(start) : text.index(end)] == reliability_table()


if __name__ == "__main__":
    print(reliability_table())
