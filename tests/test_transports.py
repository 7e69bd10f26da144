"""Session auth and the REST transport against the fake gateway; the service over every transport."""

from __future__ import annotations

import logging
import threading
from collections import Counter

import pytest
from django.test import override_settings

from django_clickatell_stop.client import ClickatellClient, Credentials, RestTransport, get_client
from django_clickatell_stop.exceptions import (
    ClickatellAuthenticationError,
    ClickatellConfigurationError,
    ClickatellReplyParseError,
    ClickatellStopError,
    ClickatellTransportError,
    ClickatellUnknownMessageError,
    ClickatellUnsupportedError,
)
from django_clickatell_stop.models import Outcome, ScheduledMessage, State, StopAttempt
from django_clickatell_stop.services import Result, stop_message, stop_messages
from django_clickatell_stop.testing import FakeGateway
from tests.conftest import stored_text

APIMSGID = "f6b9af2a2c9e5b18ee2d257e3def5d66"


def ids(n, start=1):
    return [f"{i:032x}" for i in range(start, start + n)]


@pytest.fixture
def gateway():
    with FakeGateway() as gateway:
        yield gateway


def session_client(gw, **kwargs):
    return ClickatellClient(
        base_url=gw.url,
        credentials=Credentials(gw.user, gw.password, gw.api_id),
        session_auth=True,
        retry_backoff=0.0,
        **kwargs,
    )


def rest_client(gw, **kwargs):
    return RestTransport(base_url=gw.url, token=gw.token, retry_backoff=0.0, **kwargs)


# -- session auth -----------------------------------------------------------------


@pytest.mark.django_db
def test_a_batch_of_500_makes_one_auth_call(gateway):
    for apimsgid in ids(500):
        gateway.add_message(apimsgid)
    ScheduledMessage.objects.bulk_create([ScheduledMessage(apimsgid=i) for i in ids(500)])
    with override_settings(CLICKATELL_STOP=gateway.settings(AUTH="session", CONCURRENCY=8)):
        summary = stop_messages(ScheduledMessage.objects.all())
    assert summary.counts == {Result.STOPPED: 500}
    assert len(gateway.calls_to("auth")) == 1
    stops = gateway.calls_to("delmsg")
    assert len(stops) == 500
    assert all("password" not in call.form and "session_id" in call.form for call in stops)


def test_sixteen_threads_starting_together_make_one_auth_call(gateway):
    client = session_client(gateway)
    for apimsgid in ids(16):
        gateway.add_message(apimsgid)
    barrier = threading.Barrier(16)
    results = []

    def worker(apimsgid):
        barrier.wait()
        results.append(client.stop(apimsgid=apimsgid).reply.stopped)

    threads = [threading.Thread(target=worker, args=(i,)) for i in ids(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [True] * 16
    assert len(gateway.calls_to("auth")) == 1


@pytest.mark.django_db
def test_expired_session_mid_batch_reauthenticates_once_and_loses_nothing(gateway):
    for apimsgid in ids(500):
        gateway.add_message(apimsgid)
    ScheduledMessage.objects.bulk_create([ScheduledMessage(apimsgid=i) for i in ids(500)])
    expired = threading.Event()

    def progress(done, total):
        if done >= 250 and not expired.is_set():
            expired.set()
            gateway.advance(16 * 60)  # Clickatell's 15-minute idle expiry passes

    with override_settings(CLICKATELL_STOP=gateway.settings(AUTH="session", CONCURRENCY=8, CHUNK_SIZE=100)):
        summary = stop_messages(ScheduledMessage.objects.all(), progress=progress)
    assert expired.is_set()
    assert summary.counts == {Result.STOPPED: 500}
    assert len(gateway.calls_to("auth")) == 2
    per_message = Counter(
        StopAttempt.objects.filter(outcome=Outcome.STOPPED).values_list("message_id", flat=True)
    )
    assert len(per_message) == 500 and set(per_message.values()) == {1}
    assert StopAttempt.objects.count() == 500
    stops = Counter(call.form["apimsgid"] for call in gateway.calls_to("delmsg"))
    # Only the calls that met the expired session were sent twice, and at most one per thread.
    assert 500 < sum(stops.values()) <= 500 + 8
    assert max(stops.values()) == 2


def test_session_is_renewed_before_the_idle_expiry(gateway):
    client = session_client(gateway, clock=gateway.now)
    first, second = ids(2)
    gateway.add_message(first)
    gateway.add_message(second)
    client.stop(apimsgid=first)
    gateway.advance(13 * 60)  # idle longer than SESSION_REFRESH_SECONDS, not yet expired
    assert client.stop(apimsgid=second).reply.stopped
    assert len(gateway.calls_to("auth")) == 2
    assert len(gateway.calls_to("delmsg")) == 2  # no call was spent on an expired session


@pytest.mark.parametrize("code", [3, 5])
def test_err_003_and_005_get_a_new_session_and_one_retry(gateway, code):
    client = session_client(gateway)
    gateway.add_message(APIMSGID)
    gateway.fault("error", code=code)
    assert client.stop(apimsgid=APIMSGID).reply.stopped
    assert len(gateway.calls_to("auth")) == 2
    assert len(gateway.calls_to("delmsg")) == 2


def test_a_session_that_keeps_failing_is_not_renewed_forever(gateway):
    client = session_client(gateway)
    gateway.add_message(APIMSGID)
    gateway.fault("error", code=3, times=10)
    with pytest.raises(ClickatellAuthenticationError):
        client.stop(apimsgid=APIMSGID)
    assert len(gateway.calls_to("auth")) == 2
    assert len(gateway.calls_to("delmsg")) == 2


def test_rejected_auth_is_an_authentication_error(gateway):
    client = ClickatellClient(
        base_url=gateway.url,
        credentials=Credentials(gateway.user, "wrong", gateway.api_id),
        session_auth=True,
    )
    with pytest.raises(ClickatellAuthenticationError):
        client.stop(apimsgid=APIMSGID)
    assert gateway.calls_to("delmsg") == []


def test_unreadable_auth_reply_does_not_echo_it(gateway):
    gateway.fault("body", command="auth", body="OK but here is a secret-looking thing")
    with pytest.raises(ClickatellReplyParseError) as info:
        session_client(gateway).stop(apimsgid=APIMSGID)
    assert "secret-looking" not in f"{info.value} {info.value.raw_reply}"


def test_ping_with_a_session(gateway):
    import requests

    session_id = requests.post(
        f"{gateway.url}/http/auth",
        data={"user": gateway.user, "password": gateway.password, "api_id": gateway.api_id},
        timeout=5,
    ).text.removeprefix("OK: ")
    assert (
        requests.post(f"{gateway.url}/http/ping", data={"session_id": session_id}, timeout=5).text == "OK: "
    )
    assert requests.post(
        f"{gateway.url}/http/ping", data={"session_id": "0" * 32}, timeout=5
    ).text.startswith("ERR: 003")


# -- REST ---------------------------------------------------------------------------


def test_rest_stop_sends_delete_with_bearer_token(gateway):
    gateway.add_message(APIMSGID)
    result = rest_client(gateway).stop(apimsgid=APIMSGID)
    assert result.reply.stopped and result.http_status == 200
    (call,) = gateway.calls
    assert (call.method, call.target) == ("DELETE", f"/rest/message/{APIMSGID}")
    assert call.headers["Authorization"] == f"Bearer {gateway.token}"
    assert call.headers["X-Version"] == "1"
    assert call.headers["Accept"] == "application/json"
    assert '"messageStatus": "006"' in result.raw_reply


def test_rest_delivered_is_a_status_not_an_error(gateway):
    gateway.add_message(APIMSGID, state="delivered")
    assert rest_client(gateway).stop(apimsgid=APIMSGID).reply.status_code == 4


@pytest.mark.parametrize(
    ("setup", "error", "calls"),
    [
        (lambda gw: setattr(gw, "token", "rotated"), ClickatellAuthenticationError, 1),
        (lambda gw: gw.messages.clear(), ClickatellUnknownMessageError, 1),
        (
            lambda gw: gw.fault("http", command="rest", status=500, body="{}", times=3),
            ClickatellTransportError,
            3,
        ),
        (
            lambda gw: gw.fault("http", command="rest", status=503, body="", times=3),
            ClickatellTransportError,
            3,
        ),
        (lambda gw: gw.fault("body", command="rest", body="<html>oops</html>"), ClickatellReplyParseError, 1),
        (lambda gw: gw.fault("body", command="rest", body='{"data": {}}'), ClickatellReplyParseError, 1),
        (
            lambda gw: gw.fault("body", command="rest", body='{"error": {"code": "x1"}}'),
            ClickatellReplyParseError,
            1,
        ),
        (
            lambda gw: gw.fault(
                "body",
                command="rest",
                body='{"data": {"messageStatus": "006", "apiMessageId": "' + "0" * 32 + '"}}',
            ),
            ClickatellReplyParseError,
            1,
        ),
    ],
    ids=["401", "404", "500", "503", "html", "no-status", "bad-code", "other-id"],
)
def test_rest_error_shapes(gateway, setup, error, calls):
    gateway.add_message(APIMSGID)
    client = rest_client(gateway, max_retries=2)
    setup(gateway)
    with pytest.raises(error):
        client.stop(apimsgid=APIMSGID)
    assert len(gateway.calls) == calls


def test_rest_429_honours_retry_after(gateway):
    gateway.add_message(APIMSGID)
    gateway.fault(
        "http", command="rest", status=429, body='{"error": {"code": "130"}}', headers={"Retry-After": "2"}
    )
    slept: list[float] = []
    result = rest_client(gateway, sleep=slept.append).stop(apimsgid=APIMSGID)
    assert result.reply.stopped
    assert slept == [2.0]
    assert len(gateway.calls) == 2


def test_retry_after_as_an_http_date_and_garbage():
    from django_clickatell_stop.client import _retry_after

    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert _retry_after("soon") is None
    assert _retry_after("99999") == 300.0
    assert _retry_after(None) is None


def test_rest_cannot_stop_by_climsgid_and_says_so(gateway):
    with pytest.raises(ClickatellUnsupportedError, match="cannot find a message by climsgid"):
        rest_client(gateway).stop(climsgid="reminder42")
    assert gateway.calls == []


def test_rest_cannot_schedule(gateway):
    with pytest.raises(ClickatellUnsupportedError):
        rest_client(gateway).send({"to": "1", "text": "x"})


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"TRANSPORT": "rest"}, "TOKEN"),
        ({"TRANSPORT": "smoke-signals", "USER": "u", "PASSWORD": "p", "API_ID": "1"}, "TRANSPORT"),
        ({"AUTH": "kerberos", "USER": "u", "PASSWORD": "p", "API_ID": "1"}, "AUTH"),
    ],
)
def test_bad_transport_settings(settings, config, match):
    settings.CLICKATELL_STOP = config
    with pytest.raises(ClickatellConfigurationError, match=match):
        get_client()


def test_from_settings_refuses_rest(settings, gateway):
    settings.CLICKATELL_STOP = gateway.settings(TRANSPORT="rest")
    with pytest.raises(ClickatellConfigurationError):
        ClickatellClient.from_settings()


def test_checks_know_transports():
    from django_clickatell_stop.checks import check_settings

    with override_settings(CLICKATELL_STOP={"TRANSPORT": "rest"}):
        assert [m.id for m in check_settings()] == ["django_clickatell_stop.W001"]
    with override_settings(CLICKATELL_STOP={"TRANSPORT": "rest", "TOKEN": "t"}):
        assert check_settings() == []
    with override_settings(
        CLICKATELL_STOP={
            "TRANSPORT": "x",
            "AUTH": "y",
            "TOKEN": "t",
            "USER": "u",
            "PASSWORD": "p",
            "API_ID": "1",
        }
    ):
        assert [m.id for m in check_settings()] == ["django_clickatell_stop.E004"] * 2


# -- the same service behaviour over every transport --------------------------------

TRANSPORTS = {"http": {}, "http-session": {"AUTH": "session"}, "rest": {"TRANSPORT": "rest"}}


@pytest.fixture(params=list(TRANSPORTS))
def over(request, gateway):
    with override_settings(CLICKATELL_STOP=gateway.settings(**TRANSPORTS[request.param])):
        yield gateway


@pytest.mark.django_db
class TestServiceOverEveryTransport:
    def make(self, gw, state="scheduled"):
        gw.add_message(APIMSGID, state=state)
        return ScheduledMessage.objects.create(apimsgid=APIMSGID)

    def test_scheduled_is_stopped(self, over):
        message = self.make(over)
        attempt = stop_message(message)
        assert (message.state, attempt.outcome, attempt.gateway_status) == (
            State.STOPPED,
            Outcome.STOPPED,
            "006",
        )

    def test_delivered_is_too_late(self, over):
        message = self.make(over, state="delivered")
        assert stop_message(message).outcome == Outcome.TOO_LATE
        assert message.gateway_status == "004"

    def test_unknown_is_unknown(self, over):
        message = ScheduledMessage.objects.create(apimsgid=APIMSGID)
        assert stop_message(message).outcome == Outcome.UNKNOWN
        assert message.error_code == "103"

    def test_server_error_then_success(self, over):
        message = self.make(over)
        for command in ("delmsg", "rest"):  # whichever this transport uses
            over.fault("http", command=command, status=502)
        attempt = stop_message(message)
        assert attempt.outcome == Outcome.STOPPED
        assert len([c for c in over.calls if c.command in ("delmsg", "rest")]) == 2

    def test_rejected_credentials_fail_and_stop_the_batch(self, over):
        over.password = over.token = "rotated"
        for apimsgid in ids(3):
            over.add_message(apimsgid)
        ScheduledMessage.objects.bulk_create([ScheduledMessage(apimsgid=i) for i in ids(3)])
        summary = stop_messages(ScheduledMessage.objects.all(), concurrency=1)
        assert summary.counts == {Result.FAILED: 1, Result.NOT_ATTEMPTED: 2}
        assert "rejected the account" in summary.aborted


# -- secrets: session IDs and tokens too ----------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("transport", ["http-session", "rest"])
def test_session_ids_and_tokens_never_leak(gateway, transport, caplog):
    for apimsgid in ids(6):
        gateway.add_message(apimsgid)
    ScheduledMessage.objects.bulk_create([ScheduledMessage(apimsgid=i) for i in ids(6)])
    errors: list[str] = []
    with (
        override_settings(CLICKATELL_STOP=gateway.settings(**TRANSPORTS[transport])),
        caplog.at_level(logging.DEBUG),
    ):
        client = get_client()
        # A broken proxy echoing the request back: headers and body.
        echo = f"token={gateway.token} sessions={' '.join(gateway.sessions) or 'none-yet'}"
        stop_messages(ScheduledMessage.objects.filter(apimsgid=ids(1)[0]))
        echo = f"token={gateway.token} sessions={' '.join(gateway.sessions)}"
        command = "rest" if transport == "rest" else "delmsg"
        gateway.fault("body", command=command, body=echo, message_id=ids(2)[1])
        gateway.fault("http", command=command, status=500, body=echo, times=3, message_id=ids(3)[2])
        stop_messages(ScheduledMessage.objects.all())
        try:
            gateway.fault("body", command=command, body=echo)
            client.stop(apimsgid=ids(4)[3])
        except ClickatellStopError as err:
            errors += [str(err), repr(err), str(err.raw_reply)]
    secrets = [gateway.token] if transport == "rest" else list(gateway.sessions)
    assert secrets
    stored = stored_text(StopAttempt, ScheduledMessage)
    logged = [f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records]
    urls = [call.target for call in gateway.calls]
    for secret in secrets:
        for where, texts in {"rows": stored, "logs": logged, "errors": errors, "URLs": urls}.items():
            assert not any(secret in text for text in texts), f"secret in {where}"
    assert any("[redacted]" in text for text in stored)
