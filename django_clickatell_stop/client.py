"""HTTP client for Clickatell's legacy HTTP/S API.

The client sends form-encoded POSTs (credentials never travel in a URL), over one
pooled ``requests.Session``, with explicit timeouts and retries for transient
failures only. What a reply *means* is decided in ``parsing``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

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
)
from .parsing import (
    SendReply,
    StopReply,
    parse_send_reply,
    parse_stop_reply,
    truncate,
    validate_apimsgid,
    validate_climsgid,
)

logger = logging.getLogger(__name__)

USER_AGENT = f"django-clickatell-stop/{__version__} python-requests/{requests.__version__}"
REDACTED = "[redacted]"


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


class RateLimiter:
    """Spaces requests at most ``rate`` per second across all threads of this process.

    Each caller reserves the next free slot under a lock, then sleeps until it outside
    the lock, so threads queue in order and the long-run rate is exactly ``rate``.
    """

    def __init__(self, rate: float, *, sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            self._sleep(slot - now)


class ClickatellClient:
    """Talks to ``{base_url}/http/…``; safe to share between threads."""

    def __init__(
        self,
        *,
        base_url: str,
        credentials: Credentials,
        connect_timeout: float = 5.0,
        timeout: float = 10.0,
        max_retries: int = 2,
        retry_backoff: float = 0.5,
        pool_size: int = 10,
        allow_insecure_http: bool = False,
        max_requests_per_second: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        problem = insecure_base_url_problem(base_url, allow_insecure_http)
        if problem:
            raise ClickatellConfigurationError(problem)
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self._sleep = sleep
        self.rate_limiter = (
            RateLimiter(max_requests_per_second, sleep=sleep) if max_requests_per_second else None
        )
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(pool_size, 1), max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    @classmethod
    def from_settings(cls) -> ClickatellClient:
        """A client configured from ``settings.CLICKATELL_STOP``.

        Raises ``ClickatellConfigurationError`` when credentials are missing or the
        base URL is unsafe.
        """
        credentials = Credentials(user=conf.USER, password=conf.PASSWORD, api_id=conf.API_ID)
        missing = [name for name in ("USER", "PASSWORD", "API_ID") if not getattr(conf, name)]
        if missing:
            raise ClickatellConfigurationError(f"CLICKATELL_STOP is missing {', '.join(missing)}.")
        return cls(
            base_url=conf.BASE_URL,
            credentials=credentials,
            connect_timeout=conf.CONNECT_TIMEOUT,
            timeout=conf.TIMEOUT,
            max_retries=conf.MAX_RETRIES,
            retry_backoff=conf.RETRY_BACKOFF,
            pool_size=max(conf.CONCURRENCY, 10),
            allow_insecure_http=conf.ALLOW_INSECURE_HTTP,
            max_requests_per_second=conf.MAX_REQUESTS_PER_SECOND,
        )

    def close(self) -> None:
        self.session.close()

    def redact(self, text: str) -> str:
        """*text* with every credential replaced by ``[redacted]``."""
        for secret in self.credentials.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def stop(self, *, apimsgid: str | None = None, climsgid: str | None = None) -> StopResult:
        """Ask Clickatell to stop one message, by apimsgid when given, else by climsgid.

        Returns a ``StopResult`` for any ``ID: … Status: …`` reply, whether or not the
        status is 006. Raises ``ClickatellInvalidIDError`` before sending anything for a
        malformed ID, and after retries ``ClickatellTransportError``,
        ``ClickatellAPIError`` (and subclasses) or ``ClickatellReplyParseError``.
        """
        if apimsgid:
            params = {"apimsgid": validate_apimsgid(apimsgid)}
        elif climsgid:
            params = {"climsgid": validate_climsgid(climsgid)}
        else:
            raise ValueError("stop() needs an apimsgid or a climsgid")
        # Which ID comes back when stopping by climsgid is undocumented: accept either
        # of the IDs we know for the message, and nothing else.
        expected = tuple(i for i in (apimsgid, climsgid) if i)
        label = "&".join(f"{key}={value}" for key, value in params.items())
        tries = 0
        while True:
            tries += 1
            response: _Response | None = None
            try:
                response = self._post("delmsg", params)
                reply = parse_stop_reply(response.text, expected_ids=expected)
            except ClickatellStopError as err:
                err.apimsgid, err.climsgid = apimsgid, climsgid
                if response is not None and err.http_status is None:
                    err.http_status = response.http_status
                self._scrub(err)
                if self._should_retry(err, tries):
                    delay = self.retry_backoff * 2 ** (tries - 1)
                    logger.warning(
                        "Clickatell stop of %s failed (%s); retry %d in %.2fs",
                        label,
                        err,
                        tries,
                        delay,
                    )
                    self._sleep(delay)
                    continue
                logger.info(
                    "Clickatell stop of %s failed after %d tries: %s",
                    label,
                    tries,
                    err,
                )
                raise
            logger.info("Clickatell stop of %s: status %s", label, reply.status_display)
            return StopResult(
                reply=reply,
                http_status=response.http_status,
                raw_reply=self._stored(response.text),
                tries=tries,
            )

    def send(self, params: dict[str, str]) -> SendResult:
        """Send one ``sendmsg`` call (never retried: a retry could send the SMS twice)."""
        try:
            response = self._post("sendmsg", params)
            reply = parse_send_reply(response.text)
        except ClickatellStopError as err:
            self._scrub(err)
            raise
        return SendResult(
            reply=reply,
            http_status=response.http_status,
            raw_reply=self._stored(response.text),
        )

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

    def _post(self, command: str, params: dict[str, str]) -> _Response:
        url = f"{self.base_url}/http/{command}"
        if self.rate_limiter is not None:
            self.rate_limiter.wait()
        try:
            response = self.session.post(
                url,
                data={**self.credentials.as_form(), **params},
                timeout=(self.connect_timeout, self.timeout),
                allow_redirects=False,
            )
            text = response.text
        except requests.Timeout as err:
            raise ClickatellTransportError(f"Timeout talking to Clickatell ({url})") from err
        except requests.RequestException as err:
            raise ClickatellTransportError(
                f"Connection to Clickatell failed ({url}): {type(err).__name__}"
            ) from err
        if not 200 <= response.status_code < 300:
            error_class = ClickatellTransportError if response.status_code >= 500 else ClickatellAPIError
            raise error_class(
                f"Clickatell answered HTTP {response.status_code}",
                http_status=response.status_code,
                raw_reply=truncate(text.strip()),
            )
        return _Response(http_status=response.status_code, text=text)


_client_lock = threading.Lock()
_client: tuple[tuple[object, ...], ClickatellClient] | None = None


def get_client() -> ClickatellClient:
    """The process-wide client for the current settings (rebuilt when they change)."""
    global _client
    key = tuple(getattr(conf, name) for name in DEFAULTS)
    with _client_lock:
        if _client is None or _client[0] != key:
            if _client is not None:
                _client[1].close()
            _client = (key, ClickatellClient.from_settings())
        return _client[1]
