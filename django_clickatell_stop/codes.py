"""Clickatell's legacy HTTP/S message status and error codes.

Pure data: no Django, no HTTP. Codes are compared as integers (some sources print
``0001``, others ``001``) and shown zero-padded to three digits.
"""

from __future__ import annotations

import enum


def format_code(code: int) -> str:
    """Return *code* as Clickatell prints it: zero-padded to three digits."""
    return f"{code:03d}"


class MessageStatus(enum.IntEnum):
    """Message status codes (the ``Status:`` of a delmsg or querymsg reply)."""

    description: str

    def __new__(cls, value: int, description: str) -> MessageStatus:
        member = int.__new__(cls, value)
        member._value_ = value
        member.description = description
        return member

    MESSAGE_UNKNOWN = 1, "Message unknown"
    MESSAGE_QUEUED = 2, "Message queued"
    DELIVERED_TO_GATEWAY = 3, "Delivered to gateway"
    RECEIVED_BY_RECIPIENT = 4, "Received by recipient"
    ERROR_WITH_MESSAGE = 5, "Error with message"
    USER_CANCELLED = 6, "User cancelled message delivery"
    ERROR_DELIVERING = 7, "Error delivering message"
    OK = 8, "OK"
    ROUTING_ERROR = 9, "Routing error"
    MESSAGE_EXPIRED = 10, "Message expired"
    QUEUED_FOR_LATER = 11, "Message queued for later delivery"
    OUT_OF_CREDIT = 12, "Out of credit"
    MAX_MT_LIMIT_EXCEEDED = 14, "Maximum MT limit exceeded"


class ErrorCode(enum.IntEnum):
    """Error codes (the ``ERR: <code>, <description>`` reply)."""

    description: str
    transient: bool

    def __new__(cls, value: int, description: str, transient: bool = False) -> ErrorCode:
        member = int.__new__(cls, value)
        member._value_ = value
        member.description = description
        member.transient = transient
        return member

    AUTHENTICATION_FAILED = 1, "Authentication failed"
    UNKNOWN_USERNAME_OR_PASSWORD = 2, "Unknown username or password"
    SESSION_ID_EXPIRED = 3, "Session ID expired", True
    ACCOUNT_FROZEN = 4, "Account frozen"
    MISSING_SESSION_ID = 5, "Missing session ID", True
    IP_LOCKDOWN_VIOLATION = 7, "IP lockdown violation"
    INVALID_OR_MISSING_PARAMETERS = 101, "Invalid or missing parameters"
    INVALID_USER_DATA_HEADER = 102, "Invalid user data header"
    UNKNOWN_API_MESSAGE_ID = 103, "Unknown API message ID"
    UNKNOWN_CLIENT_MESSAGE_ID = 104, "Unknown client message ID"
    INVALID_DESTINATION_ADDRESS = 105, "Invalid destination address"
    INVALID_SOURCE_ADDRESS = 106, "Invalid source address"
    EMPTY_MESSAGE = 107, "Empty message"
    INVALID_OR_MISSING_API_ID = 108, "Invalid or missing API ID"
    MISSING_MESSAGE_ID = 109, "Missing message ID"
    MAXIMUM_MESSAGE_PARTS_EXCEEDED = 113, "Maximum message parts exceeded"
    CANNOT_ROUTE_MESSAGE = 114, "Cannot route message"
    MESSAGE_EXPIRED = 115, "Message expired"
    INVALID_UNICODE_DATA = 116, "Invalid Unicode data"
    INVALID_DELIVERY_TIME = 120, "Invalid delivery time"
    DESTINATION_BLOCKED = 121, "Destination mobile number blocked"
    DESTINATION_OPTED_OUT = 122, "Destination mobile opted out"
    INVALID_SENDER_ID = 123, "Invalid sender ID"
    NUMBER_DELISTED = 128, "Number delisted"
    MAXIMUM_MT_LIMIT_EXCEEDED = 130, "Maximum MT limit exceeded", True
    INVALID_BATCH_ID = 201, "Invalid batch ID"
    NO_BATCH_TEMPLATE = 202, "No batch template"
    NO_CREDIT_LEFT = 301, "No credit left"
    INTERNAL_ERROR = 901, "Internal error (please retry)", True


#: Errors that reject the account itself: every further call in a batch would fail too.
ACCOUNT_ERRORS = frozenset(
    {
        ErrorCode.AUTHENTICATION_FAILED,
        ErrorCode.UNKNOWN_USERNAME_OR_PASSWORD,
        ErrorCode.SESSION_ID_EXPIRED,
        ErrorCode.ACCOUNT_FROZEN,
        ErrorCode.MISSING_SESSION_ID,
        ErrorCode.IP_LOCKDOWN_VIOLATION,
        ErrorCode.INVALID_OR_MISSING_API_ID,
    }
)

#: Errors worth retrying (with session auth, after re-authenticating).
TRANSIENT_ERRORS = frozenset(code for code in ErrorCode if code.transient)

#: Errors that say Clickatell does not know the message.
UNKNOWN_MESSAGE_ERRORS = frozenset(
    {ErrorCode.UNKNOWN_API_MESSAGE_ID, ErrorCode.UNKNOWN_CLIENT_MESSAGE_ID}
)


def status_description(code: int) -> str:
    """Describe a status code, flagging codes missing from Clickatell's table."""
    try:
        return MessageStatus(code).description
    except ValueError:
        return f"Unrecognised status {format_code(code)}"


def error_description(code: int) -> str:
    """Describe an error code, flagging codes missing from Clickatell's table."""
    try:
        return ErrorCode(code).description
    except ValueError:
        return f"Unrecognised error {format_code(code)}"
