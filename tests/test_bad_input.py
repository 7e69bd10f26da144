"""Bad IDs to the service, the command and the admin: a clear error, nothing sent, nothing changed."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from django_clickatell_stop.exceptions import ClickatellInvalidIDError
from django_clickatell_stop.models import ScheduledMessage, State, StopAttempt
from django_clickatell_stop.services import Result, stop_message, stop_messages

pytestmark = pytest.mark.django_db

GOOD = "f6b9af2a2c9e5b18ee2d257e3def5d66"
BAD_IDS = {
    "too short": GOOD[:31],
    "too long": GOOD + "0",
    "not hex": "z" * 32,
    "query injection": f"{GOOD[:20]}&password=",
    "parameter injection": f"{GOOD[:26]}&to=1",
    "newline": f"{GOOD[:31]}\n",
    "header injection": f"{GOOD[:16]}\r\nX-Evil: 1",
    "space": f"{GOOD[:31]} ",
    "unicode digits": "٣" * 32,
    "fullwidth": "ｆ" * 32,
    "huge": "a" * 1_000_000,
}


FITS_A_ROW = {name: value for name, value in BAD_IDS.items() if len(value) <= 32}


@pytest.mark.parametrize("bad", FITS_A_ROW.values(), ids=FITS_A_ROW.keys())
def test_service_rejects_and_sends_nothing(gw, bad):
    # Rows can hold anything if a site bypasses model validation (e.g. with .update()).
    message = ScheduledMessage.objects.create(apimsgid="0" * 32)
    ScheduledMessage.objects.filter(pk=message.pk).update(apimsgid=bad)
    message.refresh_from_db()
    with pytest.raises(ClickatellInvalidIDError, match="Invalid apimsgid"):
        stop_message(message)
    summary = stop_messages(ScheduledMessage.objects.all())
    assert summary.counts[Result.FAILED] == 1
    assert gw.calls == []
    message.refresh_from_db()
    assert message.state == State.SCHEDULED
    assert not StopAttempt.objects.exists()


@pytest.mark.parametrize("bad", BAD_IDS.values(), ids=BAD_IDS.keys())
def test_command_rejects_with_exit_two(gw, bad):
    stderr = StringIO()
    with pytest.raises(CommandError) as info:
        call_command("stopmessage", GOOD, bad, stdout=StringIO(), stderr=stderr)
    assert info.value.returncode == 2
    assert "Invalid apimsgid" in str(info.value)
    assert len(str(info.value)) < 300  # a huge input is not echoed back whole
    assert gw.calls == []
    assert not ScheduledMessage.objects.exists()  # not even the good ID was recorded


@pytest.mark.parametrize("bad", ["", "has space", "x" * 33, "id&password=x", "new\nline", "naïve"])
def test_command_rejects_bad_climsgid(gw, bad):
    with pytest.raises(CommandError) as info:
        call_command("stopmessage", "--climsgid", bad, stdout=StringIO())
    assert info.value.returncode == 2
    assert gw.calls == []


def add_form(**fields):
    """What the admin's add page posts, management form of the attempts inline included."""
    return {
        "apimsgid": "",
        "climsgid": "",
        "recipient": "",
        "body": "",
        "scheduled_for_0": "",
        "scheduled_for_1": "",
        "attempts-TOTAL_FORMS": "0",
        "attempts-INITIAL_FORMS": "0",
        **fields,
    }


@pytest.mark.parametrize(
    "bad", [v for k, v in BAD_IDS.items() if k != "huge"], ids=[k for k in BAD_IDS if k != "huge"]
)
def test_admin_add_form_rejects(client, admin_user, gw, bad):
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:django_clickatell_stop_scheduledmessage_add"),
        add_form(apimsgid=bad, recipient="27999000001"),
    )
    assert response.status_code == 200  # the form again, with its error
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["apimsgid"]
    text = str(errors["apimsgid"])
    assert "32 hexadecimal characters" in text or "at most 32 characters" in text
    assert not ScheduledMessage.objects.exists()
    assert gw.calls == []


def test_admin_add_form_needs_one_id(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:django_clickatell_stop_scheduledmessage_add"),
        add_form(),
    )
    assert "A message needs an apimsgid or a climsgid." in response.content.decode()
    assert not ScheduledMessage.objects.exists()


def test_admin_add_form_accepts_a_good_id(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:django_clickatell_stop_scheduledmessage_add"),
        add_form(apimsgid=GOOD),
    )
    assert response.status_code == 302
    assert ScheduledMessage.objects.get().apimsgid == GOOD


def test_forged_admin_selection_of_unknown_pks_sends_nothing(client, admin_user, gw):
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:django_clickatell_stop_scheduledmessage_changelist"),
        {"action": "stop_selected", "_selected_action": ["999", "abc"], "post": "yes"},
    )
    assert response.status_code == 400
    missing = client.post(
        reverse("admin:django_clickatell_stop_scheduledmessage_changelist"),
        {"action": "stop_selected", "_selected_action": ["999"], "post": "yes"},
    )
    assert missing.status_code == 302  # nothing matched: "Items must be selected", nothing sent
    assert gw.calls == []
