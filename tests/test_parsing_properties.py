"""Property-based tests of the reply parser (hypothesis)."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from django_clickatell_stop.codes import ErrorCode, MessageStatus
from django_clickatell_stop.exceptions import (
    ClickatellAPIError,
    ClickatellReplyMismatchError,
    ClickatellReplyParseError,
)
from django_clickatell_stop.parsing import (
    MAX_REPLY_CHARS,
    StopReply,
    format_error_reply,
    format_stop_reply,
    parse_send_reply,
    parse_stop_reply,
)

ids = st.text(alphabet="0123456789abcdefABCDEFxyz", min_size=1, max_size=64)
descriptions = st.text(
    alphabet=st.characters(
        exclude_categories=["Cs"], exclude_characters="\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
    ),
    max_size=120,
)
# Anything at all, plus text that looks nearly right, which is where parsers break.
near_misses = st.builds(
    lambda prefix, middle, suffix: prefix + middle + suffix,
    st.sampled_from(["", "ID:", "ID: ", "ERR:", "ERR: ", " ", "\r\n", "Status:"]),
    st.text(max_size=80),
    st.sampled_from(["", " Status: 006", ", desc", "\n", "\r\n", " Status:"]),
)


@given(st.one_of(st.text(), near_misses))
@example("ID: abc Status: 006\nERR: 001, x")
@example("ERR: 00001, too many digits")
@example("\x00")
def test_any_text_parses_or_raises_a_parser_error(text):
    try:
        reply = parse_stop_reply(text)
    except ClickatellAPIError as err:  # an ERR: line: a valid reply that means an error
        assert err.code is not None and 0 <= err.code <= 9999
        assert text.strip().startswith("ERR:")
    except ClickatellReplyParseError as err:
        assert err.raw_reply is not None and len(err.raw_reply) <= MAX_REPLY_CHARS + 40
    else:
        assert isinstance(reply, StopReply)
        assert reply.message_id and 0 <= reply.status_code <= 9999
        assert reply.stopped == (reply.status_code == 6)


@given(st.binary())
def test_any_bytes_decoded_as_clickatell_would_send_them(data):
    text = data.decode("utf-8", "replace")
    try:
        parse_stop_reply(text)
        parse_send_reply(text)
    except (ClickatellAPIError, ClickatellReplyParseError):
        pass


@given(ids, st.sampled_from(list(MessageStatus)), st.sampled_from(["", " ", "\r\n", "\n"]))
def test_status_replies_round_trip_for_every_code(message_id, status, padding):
    reply = StopReply(message_id=message_id, status_code=status)
    assert parse_stop_reply(padding + format_stop_reply(reply) + padding) == reply


@given(st.sampled_from(list(ErrorCode)), descriptions)
def test_error_replies_round_trip_for_every_code(code, description):
    try:
        parse_stop_reply(format_error_reply(code, description))
    except ClickatellAPIError as err:
        assert err.code == code
        assert err.description == (description.strip() or code.description)
    else:  # pragma: no cover - an ERR line never parses as a success
        raise AssertionError("ERR reply parsed as a success")


@given(st.integers(min_value=0, max_value=9999), ids)
def test_unknown_codes_are_kept_not_crashed_on(code, message_id):
    reply = parse_stop_reply(f"ID: {message_id} Status: {code:03d}")
    assert reply.status_code == code
    assert (reply.status is None) == (code not in set(MessageStatus))


@given(ids, ids)
def test_a_reply_for_another_id_is_never_a_success(asked, answered):
    text = f"ID: {answered} Status: 006"
    try:
        reply = parse_stop_reply(text, expected_ids=[asked])
    except ClickatellReplyMismatchError:
        assert asked.lower() != answered.lower()
    else:
        assert reply.message_id.lower() == asked.lower()
