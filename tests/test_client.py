"""The real client against the fake gateway, over real HTTP."""

from __future__ import annotations

import logging
import time

import pytest
import requests

from django_clickatell_stop import __version__
from django_clickatell_stop.client import ClickatellClient, Credentials, get_client
from django_clickatell_stop.codes import ErrorCode, MessageStatus
from django_clickatell_stop.exceptions import (
    ClickatellAPIError,
    ClickatellAuthenticationError,
    ClickatellConfigurationError,
    ClickatellInvalidIDError,
    ClickatellReplyMismatchError,
    ClickatellReplyParseError,
    ClickatellTransportError,
    ClickatellUnknownMessageError,
)
from django_clickatell_stop.testing import FakeGateway

APIMSGID = "f6b9af2a2c9e5b18ee2d257e3def5d66"


def make_client(gw: FakeGateway, **kwargs) -> ClickatellClient:
    options = {"max_retries": 2, "retry_backoff": 0.0, "timeout": 2.0, **kwargs}
    return ClickatellClient(
        base_url=gw.url,
        credentials=Credentials(gw.user, gw.password, gw.api_id),
        **options,
    )


@pytest.fixture
def gateway():
    with FakeGateway() as gateway:
        yield gateway


def test_stop_posts_a_form_with_credentials_in_the_body_only(gateway):
    gateway.add_message(APIMSGID)
    result = make_client(gateway).stop(apimsgid=APIMSGID)
    assert result.reply.stopped
    assert result.http_status == 200
    assert result.raw_reply == f"ID: {APIMSGID} Status: 006"
    assert result.tries == 1
    (call,) = gateway.calls
    assert call.method == "POST"
    assert call.target == "/http/delmsg"
    assert call.query == {}
    assert call.form == {
        "user": gateway.user,
        "password": gateway.password,
        "api_id": gateway.api_id,
        "apimsgid": APIMSGID,
    }
    assert call.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert call.headers["User-Agent"].startswith(f"django-clickatell-stop/{__version__} ")


def test_stop_by_climsgid(gateway):
    gateway.add_message(climsgid="Reminder42")
    result = make_client(gateway).stop(climsgid="Reminder42")
    assert result.reply.stopped
    assert gateway.calls[0].form["climsgid"] == "Reminder42"
    assert "apimsgid" not in gateway.calls[0].form


def test_apimsgid_wins_when_both_are_known(gateway):
    gateway.add_message(APIMSGID, climsgid="Reminder42")
    make_client(gateway).stop(apimsgid=APIMSGID, climsgid="Reminder42")
    assert "climsgid" not in gateway.calls[0].form


def test_delivered_message_answers_its_status(gateway):
    gateway.add_message(APIMSGID, state="delivered")
    result = make_client(gateway).stop(apimsgid=APIMSGID)
    assert not result.reply.stopped
    assert result.reply.status_code == 4


def test_unknown_message_raises_without_retry(gateway):
    with pytest.raises(ClickatellUnknownMessageError) as info:
        make_client(gateway).stop(apimsgid=APIMSGID)
    assert info.value.code == 103
    assert info.value.http_status == 200
    assert info.value.apimsgid == APIMSGID
    assert len(gateway.calls) == 1


def test_unknown_climsgid(gateway):
    with pytest.raises(ClickatellUnknownMessageError) as info:
        make_client(gateway).stop(climsgid="nope")
    assert info.value.code == 104


def test_bad_credentials_are_not_retried(gateway):
    client = ClickatellClient(
        base_url=gateway.url,
        credentials=Credentials("fake-user", "wrong", "1"),
        max_retries=5,
    )
    with pytest.raises(ClickatellAuthenticationError) as info:
        client.stop(apimsgid=APIMSGID)
    assert info.value.code == 1
    assert len(gateway.calls) == 1


def test_http_5xx_is_retried_then_succeeds(gateway):
    gateway.add_message(APIMSGID)
    gateway.fault("http", status=503, body="busy", times=2)
    result = make_client(gateway).stop(apimsgid=APIMSGID)
    assert result.reply.stopped
    assert result.tries == 3
    assert len(gateway.calls) == 3


def test_http_5xx_gives_up_after_max_retries(gateway):
    gateway.fault("http", status=500, body="<html>oops</html>", times=10)
    with pytest.raises(ClickatellTransportError) as info:
        make_client(gateway, max_retries=1).stop(apimsgid=APIMSGID)
    assert info.value.http_status == 500
    assert info.value.raw_reply == "<html>oops</html>"
    assert len(gateway.calls) == 2


def test_http_4xx_is_final(gateway):
    gateway.fault("http", status=404, body="not here")
    with pytest.raises(ClickatellAPIError) as info:
        make_client(gateway).stop(apimsgid=APIMSGID)
    assert info.value.http_status == 404
    assert not info.value.transient
    assert len(gateway.calls) == 1


def test_err_901_is_retried(gateway):
    gateway.add_message(APIMSGID)
    gateway.fault("error", code=901)
    assert make_client(gateway).stop(apimsgid=APIMSGID).reply.stopped
    assert len(gateway.calls) == 2


def test_read_timeout_is_a_transport_error_and_retried(gateway):
    gateway.add_message(APIMSGID)
    gateway.fault("latency", delay=0.5)
    result = make_client(gateway, timeout=0.2).stop(apimsgid=APIMSGID)
    assert result.tries == 2


def test_read_timeout_without_retries(gateway):
    gateway.fault("latency", delay=0.5)
    with pytest.raises(ClickatellTransportError, match="Timeout") as info:
        make_client(gateway, timeout=0.2, max_retries=0).stop(apimsgid=APIMSGID)
    assert isinstance(info.value.__cause__, requests.Timeout)


@pytest.mark.parametrize("kind", ["drop", "reset"])
def test_dropped_and_reset_connections_are_transport_errors(gateway, kind):
    gateway.fault(kind, times=5)
    with pytest.raises(ClickatellTransportError) as info:
        make_client(gateway, max_retries=1).stop(apimsgid=APIMSGID)
    assert info.value.__cause__ is not None


def test_connection_refused():
    with FakeGateway() as gateway:
        url = gateway.url
    client = ClickatellClient(base_url=url, credentials=Credentials("u", "p", "1"), max_retries=0)
    with pytest.raises(ClickatellTransportError, match="Connection to Clickatell failed"):
        client.stop(apimsgid=APIMSGID)


def test_malformed_body_is_not_retried(gateway):
    gateway.fault("body", body="<html>Welcome to our captive portal</html>")
    with pytest.raises(ClickatellReplyParseError) as info:
        make_client(gateway).stop(apimsgid=APIMSGID)
    assert info.value.http_status == 200
    assert "captive portal" in (info.value.raw_reply or "")
    assert len(gateway.calls) == 1


def test_reply_for_another_message_is_a_mismatch(gateway):
    gateway.reply(APIMSGID, f"ID: {'0' * 32} Status: 006")
    with pytest.raises(ClickatellReplyMismatchError):
        make_client(gateway).stop(apimsgid=APIMSGID)


def test_invalid_ids_send_nothing(gateway):
    client = make_client(gateway)
    with pytest.raises(ClickatellInvalidIDError):
        client.stop(apimsgid=f"{APIMSGID[:20]}&password=x")
    with pytest.raises(ClickatellInvalidIDError):
        client.stop(climsgid="a b")
    with pytest.raises(ValueError):
        client.stop()
    assert gateway.calls == []


def test_echoed_credentials_are_redacted_from_replies_and_errors(gateway):
    gateway.fault("body", body=f"debug: password={gateway.password} api_id={gateway.api_id}")
    with pytest.raises(ClickatellReplyParseError) as info:
        make_client(gateway).stop(apimsgid=APIMSGID)
    text = f"{info.value} {info.value.raw_reply} {info.value.args}"
    assert gateway.password not in text
    assert gateway.api_id not in text
    assert "[redacted]" in text


def test_credentials_never_logged(gateway, caplog):
    gateway.add_message(APIMSGID)
    gateway.fault("http", status=502)
    with caplog.at_level(logging.DEBUG):
        make_client(gateway).stop(apimsgid=APIMSGID)
    assert caplog.records
    logged = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    assert gateway.password not in logged
    assert gateway.api_id not in logged


def test_credentials_are_not_in_the_repr():
    credentials = Credentials("user", "s3cret-pass", "998877")
    assert "s3cret-pass" not in repr(credentials)
    assert "998877" not in repr(credentials)


@pytest.mark.parametrize(
    "url",
    [
        "http://api.clickatell.com",
        "ftp://127.0.0.1",
        "https://user:pw@api.clickatell.com",
        "https://x.test/?a=1",
    ],
)
def test_unsafe_base_urls_are_refused(url):
    with pytest.raises(ClickatellConfigurationError) as info:
        ClickatellClient(base_url=url, credentials=Credentials("u", "p", "1"))
    assert "pw" not in str(info.value)


def test_plain_http_allowed_when_explicit():
    client = ClickatellClient(
        base_url="http://gateway.internal",
        credentials=Credentials("u", "p", "1"),
        allow_insecure_http=True,
    )
    assert client.base_url == "http://gateway.internal"


def test_from_settings_needs_credentials(settings):
    settings.CLICKATELL_STOP = {"USER": "u"}
    with pytest.raises(ClickatellConfigurationError, match="PASSWORD, API_ID"):
        ClickatellClient.from_settings()


def test_get_client_is_shared_and_follows_settings(settings, gateway):
    settings.CLICKATELL_STOP = gateway.settings()
    first = get_client()
    assert get_client() is first
    settings.CLICKATELL_STOP = gateway.settings(TIMEOUT=3)
    client = get_client()
    assert client is not first
    assert isinstance(client, ClickatellClient) and client.timeout == 3


def test_connections_are_kept_alive(gateway):
    gateway.add_message(APIMSGID)
    client = make_client(gateway)
    started = time.perf_counter()
    for _ in range(50):
        client.stop(apimsgid=APIMSGID)
    elapsed = time.perf_counter() - started
    ports = {call.headers.get("Connection") for call in gateway.calls}
    assert ports == {"keep-alive"}
    assert elapsed < 5  # a generous sanity bound; the benchmark measures the real figure


def test_rate_limiter_spaces_requests_across_threads():
    import threading

    from django_clickatell_stop.ratelimit import RateLimiter

    limiter = RateLimiter(200)
    stamps: list[float] = []
    lock = threading.Lock()

    def worker():
        for _ in range(10):
            limiter.wait()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stamps.sort()
    elapsed = stamps[-1] - stamps[0]
    assert len(stamps) == 80
    assert elapsed >= 79 / 200 * 0.95  # never faster than the limit (the benchmark measures accuracy)
    with pytest.raises(ValueError):
        RateLimiter(0)


def test_client_uses_the_rate_limit(gateway):
    gateway.add_message(APIMSGID)
    client = make_client(gateway, max_requests_per_second=50)
    started = time.monotonic()
    for _ in range(6):
        client.stop(apimsgid=APIMSGID)
    assert time.monotonic() - started >= 5 / 50 * 0.95


@pytest.mark.parametrize("status", list(MessageStatus))
def test_every_status_code_over_http(gateway, status):
    gateway.reply(APIMSGID, f"ID: {APIMSGID} Status: {status:03d}")
    result = make_client(gateway).stop(apimsgid=APIMSGID)
    assert result.reply.status is status
    assert result.reply.stopped is (status == MessageStatus.USER_CANCELLED)


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_code_over_http(gateway, code):
    gateway.fault("error", code=code, times=5)
    with pytest.raises(ClickatellAPIError) as info:
        make_client(gateway, max_retries=1).stop(apimsgid=APIMSGID)
    assert info.value.code == code
    assert info.value.description == code.description
    # Only transient errors are retried; authentication errors never are.
    retried = code.transient and not isinstance(info.value, ClickatellAuthenticationError)
    assert len(gateway.calls) == (2 if retried else 1)
