"""schedule_message() against the fake gateway."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from django_clickatell_stop.exceptions import (
    ClickatellAPIError,
    ClickatellAuthenticationError,
    ClickatellInvalidIDError,
    ClickatellTransportError,
    ClickatellValidationError,
)
from django_clickatell_stop.models import ScheduledMessage, State
from django_clickatell_stop.services import schedule_message, stop_message

pytestmark = pytest.mark.django_db


def soon(**delta):
    return timezone.now() + timedelta(**(delta or {"hours": 2}))


def test_schedule_posts_sendmsg_and_tracks_both_ids(gw):
    message = schedule_message("+27999000001", "Your appointment is tomorrow at 10:00", soon(hours=2))
    (call,) = gw.calls
    assert call.method == "POST" and call.target == "/http/sendmsg"
    assert call.form["to"] == "27999000001"
    assert call.form["deliv_time"] == "120"
    assert call.form["climsgid"] == message.climsgid
    assert "concat" not in call.form
    assert len(message.climsgid or "") == 32
    assert gw.message(message.apimsgid or "").state == "scheduled"
    assert message.state == State.SCHEDULED
    assert message.scheduled_for is not None
    assert abs((message.scheduled_for - soon(hours=2)).total_seconds()) < 61
    assert ScheduledMessage.objects.get() == message


def test_scheduled_message_can_be_stopped_and_then_is_not_delivered(gw):
    message = schedule_message("27999000001", "hi", soon(minutes=30))
    assert stop_message(message).outcome == "stopped"
    gw.advance(3600)
    assert gw.message(message.apimsgid or "").state == "stopped"


def test_message_delivered_once_its_time_passes_is_too_late(gw):
    message = schedule_message("27999000001", "hi", soon(minutes=30))
    gw.advance(31 * 60)
    assert stop_message(message).outcome == "too_late"


def test_given_climsgid_and_long_body(gw):
    message = schedule_message("27999000001", "x" * 300, soon(), climsgid="appt42")
    assert message.climsgid == "appt42"
    assert gw.calls[0].form["concat"] == "2"


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("12ab", "hi"), "Invalid recipient"),
        (("0799900000", "hi"), "Invalid recipient"),
        (("2799900000&password=x", "hi"), "Invalid recipient"),
        (("27999000001", "  "), "empty"),
        (("27999000001", "x" * 460), "at most 459"),
    ],
)
def test_validation_errors_send_nothing(gw, args, match):
    recipient, body = args
    with pytest.raises(ClickatellValidationError, match=match):
        schedule_message(recipient, body, soon())
    assert gw.calls == []
    assert not ScheduledMessage.objects.exists()


@pytest.mark.parametrize("send_at", [timedelta(seconds=-60), timedelta(0), timedelta(days=7, minutes=2)])
def test_send_at_outside_the_window(gw, send_at):
    with pytest.raises(ClickatellValidationError, match="between 1 minute and 7 days"):
        schedule_message("27999000001", "hi", timezone.now() + send_at)
    assert gw.calls == []


def test_naive_send_at_is_rejected(gw):
    with pytest.raises(ClickatellValidationError, match="aware"):
        schedule_message("27999000001", "hi", soon().replace(tzinfo=None))


def test_bad_climsgid(gw):
    with pytest.raises(ClickatellInvalidIDError):
        schedule_message("27999000001", "hi", soon(), climsgid="no spaces")


def test_api_errors_store_nothing(gw, settings):
    gw.fault("error", command="sendmsg", code=105, body="Invalid destination address")
    with pytest.raises(ClickatellAPIError) as info:
        schedule_message("27999000001", "hi", soon())
    assert info.value.code == 105
    settings.CLICKATELL_STOP = {**settings.CLICKATELL_STOP, "PASSWORD": "wrong"}
    with pytest.raises(ClickatellAuthenticationError):
        schedule_message("27999000001", "hi", soon())
    assert not ScheduledMessage.objects.exists()


def test_sendmsg_is_never_retried(gw):
    gw.fault("http", command="sendmsg", status=503)
    with pytest.raises(ClickatellTransportError):
        schedule_message("27999000001", "hi", soon())
    assert len(gw.calls) == 1
