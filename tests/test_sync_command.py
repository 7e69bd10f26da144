"""manage.py syncmessagestatus."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from django_clickatell_stop.models import ScheduledMessage, State

pytestmark = pytest.mark.django_db

A, B, C = (f"{n:032x}" for n in (0xA, 0xB, 0xC))


def test_sync_by_id_and_selection(gw):
    gw.add_message(A, state="delivered")
    ScheduledMessage.objects.create(apimsgid=A, state=State.STOPPED, gateway_status="006")
    gw.add_message(B)
    ScheduledMessage.objects.create(apimsgid=B)
    out = StringIO()
    with pytest.raises(CommandError) as info:
        call_command("syncmessagestatus", "--all-scheduled", stdout=out)
    assert info.value.returncode == 1
    assert f"{A} - stopped -> delivered - status 004 - RACE LOST" in out.getvalue()
    assert f"{B} - scheduled - status 011" in out.getvalue()
    out = StringIO()
    call_command("syncmessagestatus", B, "--json", stdout=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0]["new_state"] == "scheduled" and lines[-1]["summary"]["total"] == 1


def test_needs_recheck_and_errors(gw):
    ScheduledMessage.objects.create(apimsgid=C, needs_recheck=True, state=State.STOPPED, gateway_status="006")
    out = StringIO()
    call_command("syncmessagestatus", "--needs-recheck", stdout=out)  # unknown is an answer, not a failure
    assert "Unknown API message ID" in out.getvalue() and "1 unknown" in out.getvalue()
    gw.fault("http", command="querymsg", status=500, times=3)
    with pytest.raises(CommandError) as info:
        call_command("syncmessagestatus", "--needs-recheck", stdout=StringIO())
    assert info.value.returncode == 1


def test_usage_errors(gw, settings):
    with pytest.raises(CommandError) as info:
        call_command("syncmessagestatus", stdout=StringIO())
    assert info.value.returncode == 2
    with pytest.raises(CommandError) as info:
        call_command("syncmessagestatus", "bad id", stdout=StringIO())
    assert info.value.returncode == 2
    settings.CLICKATELL_STOP = {}
    with pytest.raises(CommandError) as info:
        call_command("syncmessagestatus", A, stdout=StringIO())
    assert info.value.returncode == 2
