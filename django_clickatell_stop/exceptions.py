"""Every error the app raises.

``ClickatellStopError`` is the base of everything that can go wrong with one message:
the services catch it per message, record it, and carry on. Configuration errors are
deliberately outside that tree (they subclass ``ImproperlyConfigured``), so a missing
API key stops a run instead of being recorded once per message.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from .codes import (
    ACCOUNT_ERRORS,
    TRANSIENT_ERRORS,
    UNKNOWN_MESSAGE_ERRORS,
    error_description,
    format_code,
)


class ClickatellStopError(Exception):
    """Base class: something went wrong stopping one message.

    ``raw_reply`` is the (truncated, redacted) body Clickatell sent, if any;
    ``http_status`` its HTTP status, if a response arrived at all.
    """

    def __init__(
        self,
        message: str,
        *,
        apimsgid: str | None = None,
        climsgid: str | None = None,
        http_status: int | None = None,
        raw_reply: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.apimsgid = apimsgid
        self.climsgid = climsgid
        self.http_status = http_status
        self.raw_reply = raw_reply

    @property
    def transient(self) -> bool:
        """Whether the same call may succeed if retried."""
        return False

    def __str__(self) -> str:
        parts = [self.message]
        if self.http_status is not None and f"HTTP {self.http_status}" not in self.message:
            parts.append(f"(HTTP {self.http_status})")
        if self.raw_reply:
            parts.append(f"reply: {self.raw_reply!r}")
        return " ".join(parts)


class ClickatellTransportError(ClickatellStopError):
    """No usable HTTP answer: connection refused or reset, timeout, HTTP 5xx or 429.

    ``retry_after`` is the delay Clickatell asked for (``Retry-After``), in seconds.
    """

    retry_after: float | None = None

    @property
    def transient(self) -> bool:
        return True


class ClickatellReplyParseError(ClickatellStopError, ValueError):
    """Clickatell answered with a body we cannot read (kept, truncated, in ``raw_reply``)."""


class ClickatellReplyMismatchError(ClickatellReplyParseError):
    """The reply names another message than the one we asked to stop."""


class ClickatellAPIError(ClickatellStopError):
    """Clickatell answered ``ERR: <code>, <description>`` (or a non-2xx HTTP status)."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        description: str = "",
        apimsgid: str | None = None,
        climsgid: str | None = None,
        http_status: int | None = None,
        raw_reply: str | None = None,
    ) -> None:
        super().__init__(
            message,
            apimsgid=apimsgid,
            climsgid=climsgid,
            http_status=http_status,
            raw_reply=raw_reply,
        )
        self.code = code
        self.description = description

    @property
    def transient(self) -> bool:
        return self.code in TRANSIENT_ERRORS or (self.http_status is not None and self.http_status >= 500)

    @classmethod
    def from_reply(
        cls,
        code: int,
        description: str,
        *,
        apimsgid: str | None = None,
        climsgid: str | None = None,
        http_status: int | None = None,
        raw_reply: str | None = None,
    ) -> ClickatellAPIError:
        """Build the most specific subclass for an ``ERR:`` reply."""
        klass: type[ClickatellAPIError] = ClickatellAPIError
        if code in ACCOUNT_ERRORS:
            klass = ClickatellAuthenticationError
        elif code in UNKNOWN_MESSAGE_ERRORS:
            klass = ClickatellUnknownMessageError
        description = description or error_description(code)
        return klass(
            f"ERR {format_code(code)}: {description}",
            code=code,
            description=description,
            apimsgid=apimsgid,
            climsgid=climsgid,
            http_status=http_status,
            raw_reply=raw_reply,
        )


class ClickatellAuthenticationError(ClickatellAPIError):
    """The account was rejected (bad credentials, frozen, IP lockdown): stop the batch."""


class ClickatellUnknownMessageError(ClickatellAPIError):
    """Clickatell does not know the message ID (ERR 103 / 104)."""


class ClickatellUnsupportedError(ClickatellStopError):
    """The configured transport cannot do this (e.g. stop by climsgid over REST); nothing sent."""


class ClickatellValidationError(ClickatellStopError, ValueError):
    """Input rejected before anything was sent (bad ID, recipient, body or time)."""


class ClickatellInvalidIDError(ClickatellValidationError):
    """An ID that Clickatell could never have issued; nothing was sent."""


class ClickatellConfigurationError(ImproperlyConfigured):
    """``settings.CLICKATELL_STOP`` is missing something or holds a bad value."""


class ClickatellQueueError(ClickatellStopError):
    """A stop job could not be handed to its queue (broker down, Celery app not loaded).

    Nothing was sent, and the job's messages are back in the state they were in.
    """
