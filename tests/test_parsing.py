from __future__ import annotations

import pytest

from django_clickatell_stop.codes import (
    ErrorCode,
    MessageStatus,
    error_description,
    format_code,
    status_description,
)
from django_clickatell_stop.exceptions import (
    ClickatellAPIError,
    ClickatellAuthenticationError,
    ClickatellInvalidIDError,
    ClickatellReplyMismatchError,
    ClickatellReplyParseError,
    ClickatellUnknownMessageError,
)
from django_clickatell_stop.parsing import (
    MAX_REPLY_CHARS,
    StopReply,
    format_error_reply,
    format_stop_reply,
    parse_send_reply,
    parse_stop_reply,
    validate_apimsgid,
    validate_climsgid,
)

APIMSGID = "f6b9af2a2c9e5b18ee2d257e3def5d66"


def test_documented_success_reply_parses():
    reply = parse_stop_reply(f"ID: {APIMSGID} Status: 006")
    assert reply == StopReply(message_id=APIMSGID, status_code=6)
    assert reply.stopped
    assert reply.status is MessageStatus.USER_CANCELLED
    assert reply.status_display == "006"
    assert reply.status_description == "User cancelled message delivery"


@pytest.mark.parametrize("status", list(MessageStatus))
def test_every_status_code_parses_and_only_006_is_stopped(status: MessageStatus) -> None:
    reply = parse_stop_reply(f"ID: {APIMSGID} Status: {format_code(status)}")
    assert reply.status is status
    assert reply.stopped is (status == 6)
    assert reply.status_description == status.description


def test_status_code_008_is_in_the_table():
    # Published clients lose 008 through a typo in their tables.
    assert MessageStatus(8).description == "OK"


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_code_raises_with_code_and_description(code):
    with pytest.raises(ClickatellAPIError) as info:
        parse_stop_reply(format_error_reply(code, code.description))
    assert info.value.code == code
    assert info.value.description == code.description
    assert format_code(code) in str(info.value)


@pytest.mark.parametrize(
    ("code", "exception"),
    [
        (1, ClickatellAuthenticationError),
        (2, ClickatellAuthenticationError),
        (7, ClickatellAuthenticationError),
        (103, ClickatellUnknownMessageError),
        (104, ClickatellUnknownMessageError),
    ],
)
def test_error_subclasses(code, exception):
    with pytest.raises(exception):
        parse_stop_reply(f"ERR: {code:03d}, something")


def test_four_digit_codes_compare_as_integers():
    with pytest.raises(ClickatellAuthenticationError) as info:
        parse_stop_reply("ERR: 0001, Authentication failed")
    assert info.value.code == 1
    assert parse_stop_reply(f"ID: {APIMSGID} Status: 0006").stopped


def test_error_description_split_on_first_comma_only():
    with pytest.raises(ClickatellAPIError) as info:
        parse_stop_reply("ERR: 114, Cannot route message, to: 2799900001, try: later")
    assert info.value.code == 114
    assert info.value.description == "Cannot route message, to: 2799900001, try: later"


def test_error_without_description_uses_the_table():
    with pytest.raises(ClickatellAPIError) as info:
        parse_stop_reply("ERR: 901")
    assert info.value.description == "Internal error (please retry)"
    assert info.value.transient


def test_transient_flags_follow_the_table():
    assert {c for c in ErrorCode if c.transient} == {3, 5, 130, 901}


def test_unrecognised_codes_are_kept_and_flagged():
    reply = parse_stop_reply(f"ID: {APIMSGID} Status: 013")
    assert reply.status is None
    assert reply.status_code == 13
    assert reply.status_description == "Unrecognised status 013"
    assert error_description(999) == "Unrecognised error 999"
    assert status_description(4) == "Received by recipient"


@pytest.mark.parametrize(
    "text",
    [
        f"  ID: {APIMSGID} Status: 006\r\n",
        f"\nID:{APIMSGID}   Status:006\n",
        f"ID: {APIMSGID}\tStatus: 006",
    ],
)
def test_whitespace_and_crlf_are_tolerated(text):
    assert parse_stop_reply(text).stopped


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \r\n",
        "OK",
        "<html><body>502 Bad Gateway</body></html>",
        f"ID: {APIMSGID}",
        f"ID: {APIMSGID} Status:",
        f"ID: {APIMSGID} Status: abc",
        "ERR: , Authentication failed",
        f"ID: {APIMSGID} Status: 006\nID: {APIMSGID} Status: 006",
        f"ID: {APIMSGID} Sta",
    ],
)
def test_malformed_replies_raise_parse_error_with_body(text):
    with pytest.raises(ClickatellReplyParseError) as info:
        parse_stop_reply(text)
    assert info.value.raw_reply == text or text.strip() == ""


def test_parse_error_body_is_truncated():
    with pytest.raises(ClickatellReplyParseError) as info:
        parse_stop_reply("x" * 10_000)
    assert info.value.raw_reply is not None
    assert len(info.value.raw_reply) < MAX_REPLY_CHARS + 50
    assert "9500 more characters" in info.value.raw_reply


def test_reply_for_another_id_is_not_a_success():
    other = "0" * 32
    with pytest.raises(ClickatellReplyMismatchError):
        parse_stop_reply(f"ID: {other} Status: 006", expected_ids=[APIMSGID])
    assert parse_stop_reply(f"ID: {APIMSGID.upper()} Status: 006", expected_ids=[APIMSGID]).stopped


def test_format_round_trips():
    reply = StopReply(APIMSGID, 11)
    assert format_stop_reply(reply) == f"ID: {APIMSGID} Status: 011"
    assert parse_stop_reply(format_stop_reply(reply)) == reply


def test_send_reply():
    assert parse_send_reply(f"ID: {APIMSGID}\n").apimsgid == APIMSGID
    with pytest.raises(ClickatellAPIError):
        parse_send_reply("ERR: 105, Invalid destination address")
    with pytest.raises(ClickatellReplyParseError):
        parse_send_reply("Sent!")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "abc123",
        APIMSGID[:-1],
        APIMSGID + "0",
        "g" * 32,
        f"{APIMSGID[:20]}&password=",
        f"{APIMSGID[:31]}\n",
        "é" * 32,
    ],
)
def test_bad_apimsgids_are_rejected(value):
    with pytest.raises(ClickatellInvalidIDError):
        validate_apimsgid(value)


@pytest.mark.parametrize("value", ["", "a" * 33, "ab cd", "id&user=x", "id=1", "line\nbreak", "naïve"])
def test_bad_climsgids_are_rejected(value):
    with pytest.raises(ClickatellInvalidIDError):
        validate_climsgid(value)


def test_good_ids_pass():
    assert validate_apimsgid(APIMSGID) == APIMSGID
    assert validate_climsgid("Reminder42") == "Reminder42"
