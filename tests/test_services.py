"""The stop service against the fake gateway: states, attempts, signals, batches."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection
from django.utils import timezone

from django_clickatell_stop import services
from django_clickatell_stop.client import get_client
from django_clickatell_stop.exceptions import (
    ClickatellConfigurationError,
    ClickatellInvalidIDError,
    ClickatellStopError,
)
from django_clickatell_stop.models import Outcome, ScheduledMessage, State, StopAttempt
from django_clickatell_stop.services import (
    Result,
    StopOutcome,
    stop_message,
    stop_messages,
)
from django_clickatell_stop.signals import message_stop_failed, message_stopped
from django_clickatell_stop.testing import fake_gateway
from tests.conftest import stored_text

pytestmark = pytest.mark.django_db


def hexid(n: int) -> str:
    return f"{n:032x}"


def make(n: int = 1, *, gw=None, state=State.SCHEDULED, gw_state="scheduled"):
    messages = []
    for i in range(n):
        message = ScheduledMessage.objects.create(apimsgid=hexid(i + 1), recipient="27999000001", state=state)
        if gw is not None:
            gw.add_message(message.apimsgid, state=gw_state)
        messages.append(message)
    return messages


def test_stop_of_a_scheduled_message_records_stopped_and_006(gw):
    (message,) = make(gw=gw)
    attempt = stop_message(message)
    message.refresh_from_db()
    assert message.state == State.STOPPED
    assert message.gateway_status == "006"
    assert message.gateway_status_description == "User cancelled message delivery"
    assert message.stopped_at is not None
    assert attempt.outcome == Outcome.STOPPED
    assert attempt.trigger == "service"
    assert attempt.gateway_status == "006"
    assert attempt.http_status == 200
    assert attempt.raw_reply == f"ID: {message.apimsgid} Status: 006"
    assert attempt.sent_id == f"apimsgid={message.apimsgid}"
    assert attempt.finished_at is not None and attempt.started_at <= attempt.finished_at
    assert len(gw.calls_to("delmsg")) == 1


def test_delivered_message_is_too_late(gw):
    (message,) = make(gw=gw, gw_state="delivered")
    attempt = stop_message(message)
    assert message.state == State.TOO_LATE
    assert message.gateway_status == "004"
    assert message.stopped_at is None
    assert attempt.outcome == Outcome.TOO_LATE


def test_status_001_is_unknown_not_too_late(gw):
    (message,) = make(gw=gw)
    gw.reply(message.apimsgid, f"ID: {message.apimsgid} Status: 001")
    assert stop_message(message).outcome == Outcome.UNKNOWN
    assert message.state == State.UNKNOWN


def test_unknown_id_is_recorded_as_unknown(gw):
    (message,) = make()  # the gateway never heard of it
    attempt = stop_message(message)
    assert message.state == State.UNKNOWN
    assert message.error_code == "103"
    assert message.error_description == "Unknown API message ID"
    assert attempt.outcome == Outcome.UNKNOWN
    assert attempt.error_display == "ERR 103: Unknown API message ID"


def test_stop_by_climsgid(gw):
    message = ScheduledMessage.objects.create(climsgid="Reminder42")
    gw.add_message(climsgid="Reminder42")
    assert stop_message(message).outcome == Outcome.STOPPED
    assert gw.calls[0].form["climsgid"] == "Reminder42"


def test_bad_credentials_fail_without_retry(gw, settings):
    settings.CLICKATELL_STOP = {
        **settings.CLICKATELL_STOP,
        "PASSWORD": "wrong",
        "MAX_RETRIES": 3,
    }
    (message,) = make(gw=gw)
    attempt = stop_message(message)
    assert message.state == State.FAILED
    assert attempt.outcome == Outcome.FAILED
    assert attempt.error_code == "001"
    assert len(gw.calls) == 1


def test_5xx_then_success_is_one_recorded_success(gw):
    (message,) = make(gw=gw)
    gw.fault("http", status=502, body="Bad Gateway")
    attempt = stop_message(message)
    assert attempt.outcome == Outcome.STOPPED
    assert StopAttempt.objects.count() == 1
    assert len(gw.calls) == 2


def test_transport_failure_is_failed_and_retryable(gw):
    (message,) = make(gw=gw)
    gw.fault("http", status=503, times=3)  # the first call and both retries
    attempt = stop_message(message)
    assert attempt.outcome == Outcome.FAILED
    assert attempt.http_status == 503
    assert message.state == State.FAILED
    assert message.is_stoppable
    assert stop_message(message).outcome == Outcome.STOPPED
    assert message.attempts.count() == 2


def test_already_stopped_is_not_sent_again(gw):
    (message,) = make(gw=gw)
    first = stop_message(message)
    again = stop_message(message)
    assert again.pk == first.pk
    assert len(gw.calls) == 1


def test_not_stoppable_without_attempts_raises(gw):
    (message,) = make(state=State.TOO_LATE)
    with pytest.raises(ClickatellStopError, match="has no stop attempt"):
        stop_message(message)
    assert gw.calls == []


def test_user_and_trigger_are_recorded(gw, django_user_model):
    user = django_user_model.objects.create_user("ops")
    (message,) = make(gw=gw)
    attempt = stop_message(message, trigger="admin", user=user)
    assert (attempt.trigger, attempt.user) == ("admin", user)


def test_anonymous_user_is_not_recorded(gw):
    from django.contrib.auth.models import AnonymousUser

    (message,) = make(gw=gw)
    assert stop_message(message, user=AnonymousUser()).user is None


def test_signals(gw):
    stopped, failed = [], []

    def on_stopped(sender, message, attempt, **kwargs):
        stopped.append((message.apimsgid, attempt.outcome))

    def on_failed(sender, message, attempt, outcome, **kwargs):
        failed.append((message.apimsgid, outcome))

    message_stopped.connect(on_stopped)
    message_stop_failed.connect(on_failed)
    try:
        a, b = make(2, gw=gw)
        gw.message(b.apimsgid).state = "delivered"
        stop_messages([a, b])
    finally:
        message_stopped.disconnect(on_stopped)
        message_stop_failed.disconnect(on_failed)
    assert stopped == [(a.apimsgid, Outcome.STOPPED)]
    assert failed == [(b.apimsgid, Outcome.TOO_LATE)]


def test_invalid_id_is_rejected_before_anything_is_sent(gw):
    message = ScheduledMessage.objects.create(apimsgid="not-hex&password=x")
    with pytest.raises(ClickatellInvalidIDError):
        stop_message(message)
    summary = stop_messages(ScheduledMessage.objects.all())
    assert summary.counts == {Result.FAILED: 1}
    assert gw.calls == []
    message.refresh_from_db()
    assert message.state == State.SCHEDULED
    assert not StopAttempt.objects.exists()


def test_missing_configuration_raises_before_sending(settings):
    settings.CLICKATELL_STOP = {"BASE_URL": "https://api.clickatell.com"}
    make(1)
    with pytest.raises(ClickatellConfigurationError):
        stop_messages(ScheduledMessage.objects.all())
    assert not StopAttempt.objects.exists()
    assert ScheduledMessage.objects.get().state == State.SCHEDULED


@pytest.mark.parametrize("concurrency", [1, 4])
def test_batch_summary_counts_by_outcome(gw, concurrency):
    messages = make(8, gw=gw)
    gw.message(messages[0].apimsgid).state = "delivered"
    gw.messages.pop(messages[1].apimsgid)
    messages[2].state = State.STOPPED
    messages[2].save()
    messages[3].state = State.TOO_LATE
    messages[3].save()
    gw.fault("http", status=500, times=10, message_id=messages[4].apimsgid)
    seen: list[StopOutcome] = []
    progress: list[tuple[int, int]] = []
    summary = stop_messages(
        ScheduledMessage.objects.all(),
        concurrency=concurrency,
        on_outcome=seen.append,
        progress=lambda done, total: progress.append((done, total)),
    )
    assert summary.total == 8
    assert summary.counts == {
        Result.STOPPED: 3,
        Result.TOO_LATE: 1,
        Result.UNKNOWN: 1,
        Result.ALREADY_STOPPED: 1,
        Result.SKIPPED: 1,
        Result.FAILED: 1,
    }
    assert not summary.ok
    assert len(seen) == 8
    assert progress[-1] == (8, 8)
    assert [d for d, _ in progress] == list(range(1, 9))
    (reason,) = [key for key in summary.reasons if key[0] == Result.FAILED]
    assert "HTTP 500" in reason[1]
    states = dict(ScheduledMessage.objects.values_list("apimsgid", "state"))
    assert states[messages[4].apimsgid] == State.FAILED
    assert StopAttempt.objects.filter(outcome=Outcome.PENDING).count() == 0
    assert StopAttempt.objects.count() == 6  # one per call; skipped ones sent nothing


def test_describe_and_as_dict(gw):
    (message,) = make(gw=gw, gw_state="delivered")
    seen: list[StopOutcome] = []
    summary = stop_messages([message], on_outcome=seen.append)
    (outcome,) = seen
    assert (
        outcome.describe()
        == f"{message.apimsgid} - too late - status 004 (Received by recipient) - Received by recipient"
    )
    assert outcome.as_dict()["result"] == "too_late"
    assert summary.as_dict()["counts"]["too_late"] == 1


def test_authentication_error_stops_the_batch_and_leaves_the_rest_untouched(gw, settings):
    make(30, gw=gw)
    settings.CLICKATELL_STOP = {**settings.CLICKATELL_STOP, "CHUNK_SIZE": 7}
    gw.fault("error", code=1, message_id=hexid(10))
    summary = stop_messages(ScheduledMessage.objects.all(), concurrency=1)
    assert summary.counts == {
        Result.STOPPED: 9,
        Result.FAILED: 1,
        Result.NOT_ATTEMPTED: 20,
    }
    assert "rejected the account" in summary.aborted
    assert not summary.ok
    assert len(gw.calls) == 10
    assert ScheduledMessage.objects.filter(state=State.SCHEDULED).count() == 20
    assert StopAttempt.objects.count() == 10
    assert not StopAttempt.objects.filter(outcome=Outcome.PENDING).exists()


def test_authentication_error_with_concurrency_sends_no_new_calls(gw):
    make(40, gw=gw)
    gw.password = "rotated"  # every call now fails authentication
    summary = stop_messages(ScheduledMessage.objects.all(), concurrency=4)
    assert summary.counts[Result.FAILED] == len(gw.calls) <= 4
    assert summary.counts[Result.NOT_ATTEMPTED] == 40 - len(gw.calls)
    assert ScheduledMessage.objects.filter(state=State.SCHEDULED).count() == 40 - len(gw.calls)


def test_unexpected_exception_is_recorded_and_the_batch_goes_on(gw, monkeypatch):
    a, b = make(2, gw=gw)
    client = get_client()
    real_stop = client.stop

    def flaky(*, apimsgid=None, climsgid=None):
        if apimsgid == a.apimsgid:
            raise RuntimeError("boom")
        return real_stop(apimsgid=apimsgid, climsgid=climsgid)

    monkeypatch.setattr(client, "stop", flaky)
    summary = stop_messages([a, b], concurrency=1)
    assert summary.counts == {Result.FAILED: 1, Result.STOPPED: 1}
    assert "Internal error: RuntimeError: boom" in a.attempts.get().error_description


def test_interrupted_attempts_are_reconciled(gw):
    (message,) = make(gw=gw)
    # What a process killed mid-call leaves behind:
    ScheduledMessage.objects.filter(pk=message.pk).update(state=State.STOPPING)
    StopAttempt.objects.create(
        message=message,
        trigger="command",
        sent_id="x",
        started_at=timezone.now() - timedelta(days=1),
    )
    summary = stop_messages(ScheduledMessage.objects.all())
    attempts = list(message.attempts.order_by("pk"))
    assert [a.outcome for a in attempts] == [Outcome.INTERRUPTED, Outcome.STOPPED]
    assert summary.counts == {Result.STOPPED: 1}


def test_recent_pending_attempts_are_left_alone(gw):
    (message,) = make(gw=gw)
    ScheduledMessage.objects.filter(pk=message.pk).update(state=State.STOPPING)
    StopAttempt.objects.create(message=message, trigger="command", sent_id="x", started_at=timezone.now())
    assert services.reconcile_interrupted() == 0
    summary = stop_messages(ScheduledMessage.objects.all())
    assert summary.counts == {Result.SKIPPED: 1}
    assert gw.calls == []


def test_keyboard_interrupt_records_the_call_in_flight(gw, monkeypatch):
    a, b, c = make(3, gw=gw)
    client = get_client()
    real_stop = client.stop

    def interrupting(*, apimsgid=None, climsgid=None):
        if apimsgid == b.apimsgid:
            raise KeyboardInterrupt
        return real_stop(apimsgid=apimsgid, climsgid=climsgid)

    monkeypatch.setattr(client, "stop", interrupting)
    with pytest.raises(services.StopInterrupted) as info:
        stop_messages(ScheduledMessage.objects.order_by("pk"), concurrency=1)
    assert info.value.summary.interrupted
    assert info.value.summary.counts == {
        Result.STOPPED: 1,
        Result.INTERRUPTED: 1,
        Result.NOT_ATTEMPTED: 1,
    }
    states = dict(ScheduledMessage.objects.values_list("apimsgid", "state"))
    assert states == {
        a.apimsgid: State.STOPPED,
        b.apimsgid: State.FAILED,
        c.apimsgid: State.SCHEDULED,
    }
    assert not StopAttempt.objects.filter(outcome=Outcome.PENDING).exists()
    assert b.attempts.get().outcome == Outcome.INTERRUPTED
    assert not c.attempts.exists()


def test_credentials_absent_from_urls_logs_and_stored_replies(gw, caplog):
    messages = make(3, gw=gw)
    gw.fault(
        "body",
        body=f"<pre>{gw.password} {gw.api_id}</pre>",
        message_id=messages[0].apimsgid,
    )
    gw.fault(
        "http",
        status=500,
        body=f"echo {gw.password}",
        times=5,
        message_id=messages[1].apimsgid,
    )
    with caplog.at_level("DEBUG"):
        stop_messages(ScheduledMessage.objects.all())
    secrets = (gw.password, gw.api_id)
    stored = stored_text(StopAttempt, ScheduledMessage)
    logged = [f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records]
    for secret in secrets:
        assert not any(secret in call.target for call in gw.calls)
        assert not any(secret in text for text in stored)
        assert not any(secret in text for text in logged)
    assert all(call.form["password"] == gw.password for call in gw.calls)  # they did go, in the body


def test_db_constraint_requires_an_id():
    with pytest.raises(IntegrityError):
        ScheduledMessage.objects.create()


def test_blank_ids_are_stored_as_null_so_uniqueness_holds():
    ScheduledMessage.objects.create(apimsgid="", climsgid="a1")
    ScheduledMessage.objects.create(apimsgid=hexid(1).upper(), climsgid="")
    assert ScheduledMessage.objects.filter(apimsgid__isnull=True).count() == 1
    assert ScheduledMessage.objects.get(climsgid__isnull=True).apimsgid == hexid(1)


def test_stoppable_queryset():
    make(1)
    ScheduledMessage.objects.create(apimsgid=hexid(98), state=State.FAILED)
    ScheduledMessage.objects.create(apimsgid=hexid(99), state=State.STOPPED)
    assert ScheduledMessage.objects.stoppable().count() == 2


def test_track_untracked_creates_once():
    message, created = services.track_untracked(apimsgid=hexid(5).upper())
    assert created and message.untracked and message.apimsgid == hexid(5)
    assert services.track_untracked(apimsgid=hexid(5)) == (message, False)
    assert services.track_untracked(climsgid="abc")[1]
    with pytest.raises(ClickatellInvalidIDError):
        services.track_untracked(apimsgid="nope")
    with pytest.raises(ClickatellInvalidIDError):
        services.track_untracked()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_stops_of_the_same_message_record_one_stop():
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL; run with DATABASE_URL=postgres://...")
    with fake_gateway() as gw:
        (message,) = make(gw=gw)
        gw.latency = 0.2  # keep the first call in flight while the others arrive
        barrier = threading.Barrier(4)
        errors: list[BaseException] = []

        def worker():
            from django.db import connection as thread_connection

            try:
                barrier.wait()
                stop_message(ScheduledMessage.objects.get(pk=message.pk))
            except BaseException as err:  # pragma: no cover - reported below
                errors.append(err)
            finally:
                thread_connection.close()

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert len(gw.calls_to("delmsg")) == 1
    assert StopAttempt.objects.filter(outcome=Outcome.STOPPED).count() == 1
    assert StopAttempt.objects.count() == 1
    assert ScheduledMessage.objects.get(pk=message.pk).state == State.STOPPED


def test_user_model_is_swappable_friendly():
    assert StopAttempt._meta.get_field("user").related_model is get_user_model()


@pytest.mark.parametrize("n", [100, 1000])
def test_queries_are_per_chunk_not_per_message(gw, n, django_assert_max_num_queries):
    ScheduledMessage.objects.bulk_create([ScheduledMessage(apimsgid=hexid(i)) for i in range(1, n + 1)])
    gw.accept_any_id = True
    # SQLite splits bulk writes into batches of 999 parameters; PostgreSQL writes each in one.
    per_chunk = 25 if connection.vendor == "sqlite" else 8
    with django_assert_max_num_queries(8 + per_chunk * (-(-n // 500))):
        summary = stop_messages(ScheduledMessage.objects.all(), concurrency=8)
    assert summary.counts == {Result.STOPPED: n}


@pytest.mark.parametrize(("chunk_size", "setting", "claims"), [(2, 500, 3), (100, 2, 3), (None, 5, 1)])
def test_chunk_size_narrows_the_claims_never_widens_them(gw, settings, chunk_size, setting, claims):
    settings.CLICKATELL_STOP = {**settings.CLICKATELL_STOP, "CHUNK_SIZE": setting}
    make(5, gw=gw)
    summary = stop_messages(ScheduledMessage.objects.all(), concurrency=2, chunk_size=chunk_size)
    assert summary.counts[Result.STOPPED] == 5
    # The attempts of one claim share its timestamp.
    assert len(set(StopAttempt.objects.values_list("started_at", flat=True))) == claims
