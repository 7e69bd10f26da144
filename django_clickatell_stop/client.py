"""HTTP client for Clickatell's legacy HTTP/S API.

The client sends form-encoded POSTs (credentials never travel in a URL), over one
pooled ``requests.Session``, with explicit timeouts and retries for transient
failures only. What a reply *means* is decided in ``parsing``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import requests
from requests.adapters import HTTPAdapter

from . import __version__
from .checks import insecure_base_url_problem
from .conf import DEFAULTS, conf
from .exceptions import (
    ClickatellAPIError,
    ClickatellAuthenticationError,
    ClickatellConfigurationError,
    ClickatellStopError,
    ClickatellTransportError,
    ClickatellUnsupportedError,
)
from .parsing import (
    SendReply,
    StopReply,
    parse_auth_reply,
    parse_rest_stop_reply,
    parse_send_reply,
    parse_stop_reply,
    truncate,
    validate_apimsgid,
    validate_climsgid,
)
from .ratelimit import Limiter, RateLimiter, RedisRateLimiter

logger = logging.getLogger(__name__)

USER_AGENT = f"django-clickatell-stop/{__version__} python-requests/{requests.__version__}"
REDACTED = "[redacted]"
#: ERR 003 (session ID expired) and 005 (missing session ID): get a new session, retry once.
SESSION_ERRORS = frozenset({3, 5})


@dataclass(frozen=True, slots=True)
class StopResult:
    """A stop that Clickatell answered with ``ID: … Status: …``."""

    reply: StopReply
    http_status: int
    raw_reply: str
    tries: int


@dataclass(frozen=True, slots=True)
class SendResult:
    reply: SendReply
    http_status: int
    raw_reply: str


@dataclass(frozen=True, slots=True)
class _Response:
    http_status: int
    text: str


@dataclass(frozen=True, slots=True)
class Credentials:
    user: str
    password: str = field(repr=False)
    api_id: str = field(repr=False)

    def as_form(self) -> dict[str, str]:
        return {"user": self.user, "password": self.password, "api_id": self.api_id}

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.password, self.api_id) if s)


class Transport(Protocol):
    """One way of talking to Clickatell. The services only ever use these methods."""

    def stop(self, *, apimsgid: str | None = None, climsgid: str | None = None) -> StopResult: ...

    def query(self, *, apimsgid: str | None = None, climsgid: str | None = None) -> StopReply: ...

    def send(self, params: dict[str, str]) -> SendResult: ...

    def redact(self, text: str) -> str: ...

    def close(self) -> None: ...


class BaseTransport:
    """What every transport shares: pooled session, timeouts, rate limit, retries, redaction."""

    def __init__(
        self,
        *,
        base_url: str,
        connect_timeout: float = 5.0,
        timeout: float = 10.0,
        max_retries: int = 2,
        retry_backoff: float = 0.5,
        pool_size: int = 10,
        allow_insecure_http: bool = False,
        max_requests_per_second: float | None = None,
        rate_limit_redis_url: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        problem = insecure_base_url_problem(base_url, allow_insecure_http)
        if problem:
            raise ClickatellConfigurationError(problem)
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self._sleep = sleep
        self.rate_limiter: Limiter | None = None
        if max_requests_per_second and rate_limit_redis_url:
            # One limit for every process and host that shares this Redis.
            self.rate_limiter = RedisRateLimiter(max_requests_per_second, rate_limit_redis_url, sleep=sleep)
        elif max_requests_per_second:
            self.rate_limiter = RateLimiter(max_requests_per_second, sleep=sleep)
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(pool_size, 1), max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    @property
    def secrets(self) -> tuple[str, ...]:
        return ()

    def close(self) -> None:
        self.session.close()

    def redact(self, text: str) -> str:
        """*text* with every credential replaced by ``[redacted]``."""
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def stop(self, *, apimsgid: str | None = None, climsgid: str | None = None) -> StopResult:
        """Ask Clickatell to stop one message, by apimsgid when given, else by climsgid.

        Returns a ``StopResult`` for any status reply, whether or not it is 006. Raises
        ``ClickatellInvalidIDError`` before sending anything for a malformed ID, and
        after retries ``ClickatellTransportError``, ``ClickatellAPIError`` (and
        subclasses) or ``ClickatellReplyParseError``.
        """
        return self._retrying("stop", self._stop_once, apimsgid, climsgid)

    def query(self, *, apimsgid: str | None = None, climsgid: str | None = None) -> StopReply:
        """Ask Clickatell for a message's status (``querymsg``); raises like ``stop()``."""
        return self._retrying("query", self._query_once, apimsgid, climsgid).reply

    def _retrying(
        self,
        what: str,
        once: Callable[[dict[str, str], tuple[str, ...]], tuple[StopReply, _Response]],
        apimsgid: str | None,
        climsgid: str | None,
    ) -> StopResult:
        if apimsgid:
            params = {"apimsgid": validate_apimsgid(apimsgid)}
        elif climsgid:
            params = {"climsgid": validate_climsgid(climsgid)}
        else:
            raise ValueError(f"{what}() needs an apimsgid or a climsgid")
        # Which ID comes back when asking by climsgid is undocumented: accept either of
        # the IDs we know for the message, and nothing else.
        expected = tuple(i for i in (apimsgid, climsgid) if i)
        label = "&".join(f"{key}={value}" for key, value in params.items())
        tries = 0
        recovered = False
        while True:
            tries += 1
            try:
                reply, response = once(params, expected)
            except ClickatellStopError as err:
                err.apimsgid, err.climsgid = apimsgid, climsgid
                self._scrub(err)
                if not recovered and self._recover(err):
                    recovered = True  # e.g. a new session: once per call, not counted as a retry
                    tries -= 1
                    continue
                if self._should_retry(err, tries):
                    delay = max(
                        self.retry_backoff * 2 ** (tries - 1), getattr(err, "retry_after", None) or 0.0
                    )
                    logger.warning(
                        "Clickatell %s of %s failed (%s); retry %d in %.2fs", what, label, err, tries, delay
                    )
                    self._sleep(delay)
                    continue
                logger.info("Clickatell %s of %s failed after %d tries: %s", what, label, tries, err)
                raise
            logger.info("Clickatell %s of %s: status %s", what, label, reply.status_display)
            return StopResult(
                reply=reply,
                http_status=response.http_status,
                raw_reply=self._stored(response.text),
                tries=tries,
            )

    def send(self, params: dict[str, str]) -> SendResult:
        raise ClickatellUnsupportedError(
            f"{type(self).__name__} cannot schedule messages; use TRANSPORT 'http'."
        )

    # -- for subclasses ---------------------------------------------------------------

    def _stop_once(self, params: dict[str, str], expected: tuple[str, ...]) -> tuple[StopReply, _Response]:
        raise NotImplementedError

    def _query_once(self, params: dict[str, str], expected: tuple[str, ...]) -> tuple[StopReply, _Response]:
        raise NotImplementedError

    def _recover(self, err: ClickatellStopError) -> bool:
        """Fix what *err* says is wrong (e.g. an expired session); True to try again at once."""
        return False

    def _should_retry(self, err: ClickatellStopError, tries: int) -> bool:
        if tries > self.max_retries or isinstance(err, ClickatellAuthenticationError):
            return False
        return err.transient

    def _stored(self, text: str) -> str:
        return truncate(self.redact(text.strip()))

    def _scrub(self, err: ClickatellStopError) -> None:
        err.message = self.redact(err.message)
        if err.raw_reply is not None:
            err.raw_reply = truncate(self.redact(err.raw_reply))
        err.args = (err.message,)

    def _request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        if self.rate_limiter is not None:
            self.rate_limiter.wait()
        try:
            response = self.session.request(
                method, url, timeout=(self.connect_timeout, self.timeout), allow_redirects=False, **kwargs
            )
            response.text  # noqa: B018 - read the body inside the try: a reset mid-body is a transport error
        except requests.Timeout as err:
            raise ClickatellTransportError(f"Timeout talking to Clickatell ({url})") from err
        except requests.RequestException as err:
            raise ClickatellTransportError(
                f"Connection to Clickatell failed ({url}): {type(err).__name__}"
            ) from err
        return response


class ClickatellClient(BaseTransport):
    """The legacy HTTP/S API (``{base_url}/http/…``), with password or session auth.

    With ``session_auth``, one ``auth`` call gets a session ID that every later call
    sends instead of the password; threads share it (one ``auth`` call however many
    start at once), it is renewed before Clickatell's 15-minute idle expiry, and an
    expired one (ERR 003 / 005) is replaced once and the call retried.
    """

    def __init__(
        self,
        *,
        credentials: Credentials,
        session_auth: bool = False,
        session_refresh_after: float = 720.0,
        clock: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.credentials = credentials
        self.session_auth = session_auth
        self.session_refresh_after = session_refresh_after
        self._clock = clock
        self._session_lock = threading.Lock()
        self._session_id: str | None = None
        self._session_used = 0.0
        self._old_session_ids: deque[str] = deque(maxlen=16)

    @classmethod
    def from_settings(cls) -> ClickatellClient:
        """A client configured from ``settings.CLICKATELL_STOP`` (see ``build_transport``)."""
        transport = build_transport()
        if not isinstance(transport, ClickatellClient):
            raise ClickatellConfigurationError("CLICKATELL_STOP['TRANSPORT'] is not 'http'.")
        return transport

    @property
    def secrets(self) -> tuple[str, ...]:
        session_ids = tuple(self._old_session_ids) + ((self._session_id,) if self._session_id else ())
        return self.credentials.secrets + session_ids

    def send(self, params: dict[str, str]) -> SendResult:
        """Send one ``sendmsg`` call (never retried: a retry could send the SMS twice)."""
        try:
            response = self._post("sendmsg", params)
            reply = parse_send_reply(response.text)
        except ClickatellStopError as err:
            self._scrub(err)
            raise
        return SendResult(
            reply=reply, http_status=response.http_status, raw_reply=self._stored(response.text)
        )

    def _stop_once(self, params: dict[str, str], expected: tuple[str, ...]) -> tuple[StopReply, _Response]:
        return self._status_call("delmsg", params, expected)

    def _query_once(self, params: dict[str, str], expected: tuple[str, ...]) -> tuple[StopReply, _Response]:
        return self._status_call("querymsg", params, expected)

    def _status_call(
        self, command: str, params: dict[str, str], expected: tuple[str, ...]
    ) -> tuple[StopReply, _Response]:
        form = self._auth_form()
        response = self._raw_post(command, {**form, **params})
        try:
            return parse_stop_reply(response.text, expected_ids=expected), response
        except ClickatellStopError as err:
            err.http_status = response.http_status
            err.session_id = form.get("session_id")  # type: ignore[attr-defined]
            raise

    def _recover(self, err: ClickatellStopError) -> bool:
        if self.session_auth and isinstance(err, ClickatellAPIError) and err.code in SESSION_ERRORS:
            self._drop_session(getattr(err, "session_id", None))
            return True
        return False

    # -- auth ---------------------------------------------------------------------

    def _auth_form(self) -> dict[str, str]:
        if not self.session_auth:
            return self.credentials.as_form()
        with self._session_lock:
            idle = self._clock() - self._session_used
            if self._session_id is None or idle >= self.session_refresh_after:
                # Renew before Clickatell's idle expiry instead of failing first.
                self._drop_session_locked()
                self._session_id = self._authenticate()
            self._session_used = self._clock()
            return {"session_id": self._session_id}

    def _authenticate(self) -> str:
        response = self._raw_post("auth", self.credentials.as_form())
        try:
            session_id = parse_auth_reply(response.text)
        except ClickatellStopError as err:
            err.http_status = response.http_status
            self._scrub(err)
            raise
        logger.info("Clickatell session started")
        return session_id

    def _drop_session(self, session_id: str | None) -> None:
        with self._session_lock:
            # Only the session that failed: threads that saw it fail together renew once.
            if session_id is None or session_id == self._session_id:
                self._drop_session_locked()

    def _drop_session_locked(self) -> None:
        if self._session_id is not None:
            self._old_session_ids.append(self._session_id)
        self._session_id = None

    def _post(self, command: str, params: dict[str, str]) -> _Response:
        return self._raw_post(command, {**self._auth_form(), **params})

    def _raw_post(self, command: str, data: dict[str, str]) -> _Response:
        url = f"{self.base_url}/http/{command}"
        response = self._request("POST", url, data=data)
        if not 200 <= response.status_code < 300:
            error_class = ClickatellTransportError if response.status_code >= 500 else ClickatellAPIError
            raise error_class(
                f"Clickatell answered HTTP {response.status_code}",
                http_status=response.status_code,
                raw_reply=truncate(self.redact(response.text.strip())),
            )
        return _Response(http_status=response.status_code, text=response.text)


class RestTransport(BaseTransport):
    """The legacy REST API: ``DELETE {base_url}/rest/message/{apimsgid}`` with a bearer token.

    It has no way to stop by climsgid: such a stop raises ``ClickatellUnsupportedError``
    without sending anything. HTTP 429 and 503 are retried, honouring ``Retry-After``.
    """

    def __init__(self, *, token: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.token = token
        self.session.headers.update(
            {"Authorization": f"Bearer {token}", "X-Version": "1", "Accept": "application/json"}
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.token,) if self.token else ()

    def _stop_once(self, params: dict[str, str], expected: tuple[str, ...]) -> tuple[StopReply, _Response]:
        return self._message_call("DELETE", params, expected)

    def _query_once(self, params: dict[str, str], expected: tuple[str, ...]) -> tuple[StopReply, _Response]:
        return self._message_call("GET", params, expected)

    def _message_call(
        self, method: str, params: dict[str, str], expected: tuple[str, ...]
    ) -> tuple[StopReply, _Response]:
        apimsgid = params.get("apimsgid")
        if not apimsgid:
            raise ClickatellUnsupportedError(
                "The REST API cannot find a message by climsgid; track its apimsgid, or use TRANSPORT 'http'."
            )
        response = self._request(method, f"{self.base_url}/rest/message/{apimsgid}")
        text = response.text
        try:
            reply = parse_rest_stop_reply(response.status_code, text, expected_ids=expected)
        except ClickatellTransportError as err:
            err.retry_after = _retry_after(response.headers.get("Retry-After"))
            raise
        return reply, _Response(http_status=response.status_code, text=text)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date), capped at 5 minutes."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), 300.0)


def build_transport() -> Transport:
    """The transport that ``settings.CLICKATELL_STOP`` asks for.

    Raises ``ClickatellConfigurationError`` when credentials are missing, the base URL
    is unsafe, or ``TRANSPORT`` / ``AUTH`` hold unknown values.
    """
    common: dict[str, Any] = {
        "base_url": conf.BASE_URL,
        "connect_timeout": conf.CONNECT_TIMEOUT,
        "timeout": conf.TIMEOUT,
        "max_retries": conf.MAX_RETRIES,
        "retry_backoff": conf.RETRY_BACKOFF,
        "pool_size": max(conf.CONCURRENCY, 10),
        "allow_insecure_http": conf.ALLOW_INSECURE_HTTP,
        "max_requests_per_second": conf.MAX_REQUESTS_PER_SECOND,
        "rate_limit_redis_url": conf.RATE_LIMIT_REDIS_URL,
    }
    if conf.TRANSPORT == "rest":
        if not conf.TOKEN:
            raise ClickatellConfigurationError(
                "CLICKATELL_STOP is missing TOKEN (needed with TRANSPORT 'rest')."
            )
        return RestTransport(token=conf.TOKEN, **common)
    if conf.TRANSPORT != "http":
        raise ClickatellConfigurationError(
            f"Unknown CLICKATELL_STOP['TRANSPORT'] {conf.TRANSPORT!r}: 'http' or 'rest'."
        )
    if conf.AUTH not in ("password", "session"):
        raise ClickatellConfigurationError(
            f"Unknown CLICKATELL_STOP['AUTH'] {conf.AUTH!r}: 'password' or 'session'."
        )
    missing = [name for name in ("USER", "PASSWORD", "API_ID") if not getattr(conf, name)]
    if missing:
        raise ClickatellConfigurationError(f"CLICKATELL_STOP is missing {', '.join(missing)}.")
    return ClickatellClient(
        credentials=Credentials(user=conf.USER, password=conf.PASSWORD, api_id=conf.API_ID),
        session_auth=conf.AUTH == "session",
        session_refresh_after=conf.SESSION_REFRESH_SECONDS,
        **common,
    )


_client_lock = threading.Lock()
_client: tuple[tuple[object, ...], Transport] | None = None


def get_client() -> Transport:
    """The process-wide client for the current settings (rebuilt when they change)."""
    global _client
    key = tuple(getattr(conf, name) for name in DEFAULTS)
    with _client_lock:
        if _client is None or _client[0] != key:
            if _client is not None:
                _client[1].close()
            _client = (key, build_transport())
        return _client[1]
