"""Clickatell's legacy HTTP/S message status and error codes.

Pure data: no Django, no HTTP. Codes are compared as integers (some sources print
``0001``, others ``001``) and shown zero-padded to three digits.
"""

from __future__ import annotations

import enum


def format_code(code: int) -> str:
    """Return *code* as Clickatell prints it: zero-padded to three digits."""
    return f"{code:03d}"


_STATUS_DESCRIPTIONS: dict[int, str] = {
    1: "Message unknown",
    2: "Message queued",
    3: "Delivered to gateway",
    4: "Received by recipient",
    5: "Error with message",
    6: "User cancelled message delivery",
    7: "Error delivering message",
    8: "OK",
    9: "Routing error",
    10: "Message expired",
    11: "Message queued for later delivery",
    12: "Out of credit",
    14: "Maximum MT limit exceeded",
}


class MessageStatus(enum.IntEnum):
    """Message status codes (the ``Status:`` of a delmsg or querymsg reply)."""

    MESSAGE_UNKNOWN = 1
    MESSAGE_QUEUED = 2
    DELIVERED_TO_GATEWAY = 3
    RECEIVED_BY_RECIPIENT = 4
    ERROR_WITH_MESSAGE = 5
    USER_CANCELLED = 6
    ERROR_DELIVERING = 7
    OK = 8
    ROUTING_ERROR = 9
    MESSAGE_EXPIRED = 10
    QUEUED_FOR_LATER = 11
    OUT_OF_CREDIT = 12
    MAX_MT_LIMIT_EXCEEDED = 14

    @property
    def description(self) -> str:
        return _STATUS_DESCRIPTIONS[self.value]


_ERROR_DESCRIPTIONS: dict[int, str] = {
    1: "Authentication failed",
    2: "Unknown username or password",
    3: "Session ID expired",
    4: "Account frozen",
    5: "Missing session ID",
    7: "IP lockdown violation",
    101: "Invalid or missing parameters",
    102: "Invalid user data header",
    103: "Unknown API message ID",
    104: "Unknown client message ID",
    105: "Invalid destination address",
    106: "Invalid source address",
    107: "Empty message",
    108: "Invalid or missing API ID",
    109: "Missing message ID",
    113: "Maximum message parts exceeded",
    114: "Cannot route message",
    115: "Message expired",
    116: "Invalid Unicode data",
    120: "Invalid delivery time",
    121: "Destination mobile number blocked",
    122: "Destination mobile opted out",
    123: "Invalid sender ID",
    128: "Number delisted",
    130: "Maximum MT limit exceeded",
    201: "Invalid batch ID",
    202: "No batch template",
    301: "No credit left",
    901: "Internal error (please retry)",
}
_TRANSIENT_CODES = frozenset({3, 5, 130, 901})


class ErrorCode(enum.IntEnum):
    """Error codes (the ``ERR: <code>, <description>`` reply)."""

    AUTHENTICATION_FAILED = 1
    UNKNOWN_USERNAME_OR_PASSWORD = 2
    SESSION_ID_EXPIRED = 3
    ACCOUNT_FROZEN = 4
    MISSING_SESSION_ID = 5
    IP_LOCKDOWN_VIOLATION = 7
    INVALID_OR_MISSING_PARAMETERS = 101
    INVALID_USER_DATA_HEADER = 102
    UNKNOWN_API_MESSAGE_ID = 103
    UNKNOWN_CLIENT_MESSAGE_ID = 104
    INVALID_DESTINATION_ADDRESS = 105
    INVALID_SOURCE_ADDRESS = 106
    EMPTY_MESSAGE = 107
    INVALID_OR_MISSING_API_ID = 108
    MISSING_MESSAGE_ID = 109
    MAXIMUM_MESSAGE_PARTS_EXCEEDED = 113
    CANNOT_ROUTE_MESSAGE = 114
    MESSAGE_EXPIRED = 115
    INVALID_UNICODE_DATA = 116
    INVALID_DELIVERY_TIME = 120
    DESTINATION_BLOCKED = 121
    DESTINATION_OPTED_OUT = 122
    INVALID_SENDER_ID = 123
    NUMBER_DELISTED = 128
    MAXIMUM_MT_LIMIT_EXCEEDED = 130
    INVALID_BATCH_ID = 201
    NO_BATCH_TEMPLATE = 202
    NO_CREDIT_LEFT = 301
    INTERNAL_ERROR = 901

    @property
    def description(self) -> str:
        return _ERROR_DESCRIPTIONS[self.value]

    @property
    def transient(self) -> bool:
        """Whether a retry may succeed (after re-authenticating, for session errors)."""
        return self.value in _TRANSIENT_CODES


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
UNKNOWN_MESSAGE_ERRORS = frozenset({ErrorCode.UNKNOWN_API_MESSAGE_ID, ErrorCode.UNKNOWN_CLIENT_MESSAGE_ID})


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
