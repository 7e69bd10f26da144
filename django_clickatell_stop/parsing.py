"""Pure functions: Clickatell reply text -> typed values.

No HTTP, no ORM, no settings. ``parse_stop_reply`` either returns a ``StopReply`` or
raises a ``ClickatellStopError`` subclass; it never raises anything else, whatever
the input (this is property-tested).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass

from .codes import MessageStatus, format_code, status_description
from .exceptions import (
    ClickatellAPIError,
    ClickatellInvalidIDError,
    ClickatellReplyMismatchError,
    ClickatellReplyParseError,
    ClickatellTransportError,
)

#: How much of a reply is kept for diagnosis.
MAX_REPLY_CHARS = 500

# Codes are printed with three digits, sometimes four ("0001"): accept one to four.
_STATUS_RE = re.compile(r"ID:[ \t]*(?P<id>[A-Za-z0-9]{1,64})[ \t]+Status:[ \t]*(?P<code>[0-9]{1,4})")
_ERROR_RE = re.compile(r"ERR:[ \t]*(?P<code>[0-9]{1,4})[ \t]*(?:,[ \t]*(?P<description>[^\r\n]*))?")
_SENT_RE = re.compile(r"ID:[ \t]*(?P<id>[A-Za-z0-9]{1,64})")

APIMSGID_RE = re.compile(r"[0-9a-fA-F]{32}")
CLIMSGID_RE = re.compile(r"[A-Za-z0-9]{1,32}")


@dataclass(frozen=True, slots=True)
class StopReply:
    """Clickatell's answer to a stop: ``ID: <message_id> Status: <status_code>``."""

    message_id: str
    status_code: int

    @property
    def stopped(self) -> bool:
        """Only status 006 ("User cancelled message delivery") means stopped."""
        return self.status_code == MessageStatus.USER_CANCELLED

    @property
    def status(self) -> MessageStatus | None:
        """The status as an enum member, or ``None`` for a code missing from the table."""
        try:
            return MessageStatus(self.status_code)
        except ValueError:
            return None

    @property
    def status_display(self) -> str:
        return format_code(self.status_code)

    @property
    def status_description(self) -> str:
        return status_description(self.status_code)


@dataclass(frozen=True, slots=True)
class SendReply:
    """Clickatell's answer to ``sendmsg``: ``ID: <apimsgid>``."""

    apimsgid: str


def truncate(text: str, limit: int = MAX_REPLY_CHARS) -> str:
    """Shorten *text* for storage and error messages, saying that it was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters]"


def _raise_for_error_line(line: str, raw: str) -> None:
    match = _ERROR_RE.fullmatch(line)
    if match is None:
        return
    code = int(match["code"])
    # Split on the first comma only: descriptions may contain commas and colons.
    description = (match["description"] or "").strip()
    raise ClickatellAPIError.from_reply(code, description, raw_reply=truncate(raw))


def _single_line(text: str) -> str:
    if not isinstance(text, str):
        raise ClickatellReplyParseError("Reply is not text", raw_reply=truncate(repr(text)))
    line = text.strip()
    if not line:
        raise ClickatellReplyParseError("Empty reply from Clickatell", raw_reply="")
    if "\n" in line or "\r" in line:
        raise ClickatellReplyParseError("Reply has more than one line", raw_reply=truncate(text))
    return line


def parse_stop_reply(text: str, *, expected_ids: Collection[str] = ()) -> StopReply:
    """Parse a delmsg reply body.

    Returns a ``StopReply`` for ``ID: <id> Status: <code>``. Raises
    ``ClickatellAPIError`` (or its subclasses) for ``ERR: <code>, <description>``,
    ``ClickatellReplyMismatchError`` when *expected_ids* is given and the reply names
    none of them, and ``ClickatellReplyParseError`` for anything else.
    """
    line = _single_line(text)
    _raise_for_error_line(line, text)
    match = _STATUS_RE.fullmatch(line)
    if match is None:
        raise ClickatellReplyParseError("Unreadable reply from Clickatell", raw_reply=truncate(text))
    reply = StopReply(message_id=match["id"], status_code=int(match["code"]))
    if expected_ids and reply.message_id.lower() not in {i.lower() for i in expected_ids}:
        raise ClickatellReplyMismatchError(
            f"Reply is for message {reply.message_id}, not for {', '.join(sorted(expected_ids))}",
            raw_reply=truncate(text),
        )
    return reply


def parse_send_reply(text: str) -> SendReply:
    """Parse a single-recipient sendmsg reply body (``ID: <apimsgid>`` or ``ERR: …``)."""
    line = _single_line(text)
    _raise_for_error_line(line, text)
    match = _SENT_RE.fullmatch(line)
    if match is None:
        raise ClickatellReplyParseError("Unreadable reply from Clickatell", raw_reply=truncate(text))
    return SendReply(apimsgid=match["id"])


_AUTH_RE = re.compile(r"OK:[ \t]*(?P<session_id>[A-Za-z0-9]{16,64})")


def parse_auth_reply(text: str) -> str:
    """Parse an ``auth`` reply body; return the session ID (``OK: <session_id>``)."""
    line = _single_line(text)
    _raise_for_error_line(line, text)
    match = _AUTH_RE.fullmatch(line)
    if match is None:
        # Never echo the body: it may hold a session ID.
        raise ClickatellReplyParseError("Unreadable reply from Clickatell to auth", raw_reply="[not kept]")
    return match["session_id"]


def parse_rest_stop_reply(http_status: int, text: str, *, expected_ids: Collection[str] = ()) -> StopReply:
    """Parse a legacy REST ``DELETE /rest/message/{apimsgid}`` reply (JSON).

    Returns a ``StopReply`` for ``{"data": {"messageStatus": …, "apiMessageId": …}}``.
    Raises ``ClickatellTransportError`` for HTTP 429 and 5xx (transient),
    ``ClickatellAPIError`` (or subclasses) for ``{"error": {"code": …}}``, and
    ``ClickatellReplyParseError`` for anything else.
    """
    raw = truncate(text.strip()) if isinstance(text, str) else ""
    try:
        data = json.loads(text)
    except (TypeError, ValueError):
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    if http_status == 429 or http_status >= 500:
        detail = (
            f": {error.get('description')}" if isinstance(error, dict) and error.get("description") else ""
        )
        raise ClickatellTransportError(
            f"Clickatell answered HTTP {http_status}{detail}", http_status=http_status, raw_reply=raw
        )
    if isinstance(error, dict):
        try:
            code = int(str(error.get("code")))
        except ValueError:
            raise ClickatellReplyParseError(
                "Unreadable error from Clickatell", http_status=http_status, raw_reply=raw
            ) from None
        raise ClickatellAPIError.from_reply(
            code, str(error.get("description") or "").strip(), http_status=http_status, raw_reply=raw
        )
    payload = data.get("data") if isinstance(data, dict) else None
    if not isinstance(payload, dict) or not 200 <= http_status < 300:
        raise ClickatellReplyParseError(
            "Unreadable reply from Clickatell", http_status=http_status, raw_reply=raw
        )
    try:
        status_code = int(str(payload.get("messageStatus")))
    except ValueError:
        raise ClickatellReplyParseError(
            "Reply has no message status", http_status=http_status, raw_reply=raw
        ) from None
    message_id = str(payload.get("apiMessageId") or "")
    if expected_ids and message_id.lower() not in {i.lower() for i in expected_ids}:
        raise ClickatellReplyMismatchError(
            f"Reply is for message {message_id or '(none)'}, not for {', '.join(sorted(expected_ids))}",
            http_status=http_status,
            raw_reply=raw,
        )
    return StopReply(message_id=message_id, status_code=status_code)


def format_stop_reply(reply: StopReply) -> str:
    """The reply line Clickatell would send for *reply* (used by the fake gateway)."""
    return f"ID: {reply.message_id} Status: {format_code(reply.status_code)}"


def format_error_reply(code: int, description: str) -> str:
    """The ``ERR:`` line Clickatell would send (used by the fake gateway)."""
    return f"ERR: {format_code(code)}, {description}"


def validate_apimsgid(value: str) -> str:
    """Return *value* if Clickatell could have issued it as an apimsgid (32 hex digits)."""
    if not isinstance(value, str) or not APIMSGID_RE.fullmatch(value):
        raise ClickatellInvalidIDError(
            f"Invalid apimsgid {truncate(repr(value), 80)}: expected the 32 hexadecimal characters "
            "that Clickatell returned from sendmsg"
        )
    return value


def validate_climsgid(value: str) -> str:
    """Return *value* if it is a valid climsgid (1 to 32 letters and digits)."""
    if not isinstance(value, str) or not CLIMSGID_RE.fullmatch(value):
        raise ClickatellInvalidIDError(
            f"Invalid climsgid {truncate(repr(value), 80)}: expected 1 to 32 letters and digits"
        )
    return value
