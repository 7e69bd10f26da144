"""The password and API ID never show up anywhere but the POST bodies that carry them."""

from __future__ import annotations

import logging
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.messages import get_messages
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from django_clickatell_stop.client import ClickatellClient, Credentials
from django_clickatell_stop.exceptions import ClickatellStopError
from django_clickatell_stop.models import ScheduledMessage, StopAttempt
from django_clickatell_stop.services import schedule_message, stop_messages
from django_clickatell_stop.testing import FakeGateway
from tests.conftest import stored_text

pytestmark = pytest.mark.django_db

PASSWORD = "Pa55-w0rd-only-in-bodies"
API_ID = "8765432"


def test_no_credential_anywhere(client, admin_user, caplog):
    with (
        FakeGateway(password=PASSWORD, api_id=API_ID) as gw,
        override_settings(CLICKATELL_STOP=gw.settings(TIMEOUT=0.3, MAX_RETRIES=1)),
    ):
        ids = [f"{n:032x}" for n in range(1, 9)]
        for apimsgid in ids:
            gw.add_message(apimsgid)
        ScheduledMessage.objects.bulk_create([ScheduledMessage(apimsgid=i) for i in ids])
        # Replies that echo the request back, the worst a broken proxy could do.
        echo = f"user={gw.user}&password={PASSWORD}&api_id={API_ID}"
        gw.fault("body", body=echo, message_id=ids[0])
        gw.fault("http", status=500, body=f"<pre>{echo}</pre>", times=2, message_id=ids[1])
        gw.fault("http", status=403, body=echo, message_id=ids[2])
        gw.fault("error", code=114, body=f"Cannot route, {echo}", message_id=ids[3])
        gw.reply(ids[4], f"ID: {API_ID} Status: 006")
        gw.fault("latency", delay=0.5, times=2, message_id=ids[5])

        exceptions: list[str] = []
        client_under_test = ClickatellClient(
            base_url=gw.url, credentials=Credentials(gw.user, PASSWORD, API_ID), max_retries=0, timeout=0.3
        )
        for apimsgid in ids[:6]:
            gw.fault("body", body=echo, message_id=apimsgid)
            try:
                client_under_test.stop(apimsgid=apimsgid)
            except ClickatellStopError as err:
                exceptions += [
                    str(err),
                    repr(err),
                    repr(err.args),
                    str(err.raw_reply),
                    str(err.__cause__ or ""),
                ]

        with caplog.at_level(logging.DEBUG):
            logging.getLogger("urllib3").setLevel(logging.DEBUG)
            stop_messages(ScheduledMessage.objects.all())
            gw.fault("error", code=105, command="sendmsg", body=f"Invalid destination {echo}")
            try:
                schedule_message("27999000001", "hi", timezone.now() + timedelta(hours=1))
            except ClickatellStopError as err:
                exceptions += [str(err), repr(err), str(err.raw_reply)]
            out, err_out = StringIO(), StringIO()
            with pytest.raises(CommandError) as command_error:
                call_command("stopmessage", *ids, "f" * 32, "--json", stdout=out, stderr=err_out)
            exceptions.append(str(command_error.value))

        client.force_login(admin_user)
        response = client.post(
            reverse("admin:django_clickatell_stop_scheduledmessage_changelist"),
            {
                "action": "stop_selected",
                "_selected_action": [m.pk for m in ScheduledMessage.objects.all()],
                "post": "yes",
            },
        )
        pages = [str(m) for m in get_messages(response.wsgi_request)]
        pages += [
            client.get(reverse("admin:django_clickatell_stop_scheduledmessage_changelist")).content.decode()
        ]
        pages += [client.get(reverse("admin:django_clickatell_stop_stopattempt_changelist")).content.decode()]
        pages += [
            client.get(
                reverse("admin:django_clickatell_stop_stopattempt_change", args=[a.pk])
            ).content.decode()
            for a in StopAttempt.objects.all()
        ]
        pages += [
            client.get(
                reverse("admin:django_clickatell_stop_scheduledmessage_change", args=[m.pk])
            ).content.decode()
            for m in ScheduledMessage.objects.all()
        ]

        urls = [call.target for call in gw.calls]
        headers = [str(call.headers) for call in gw.calls]
        bodies = [call.body for call in gw.calls]

    logged = [f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records]
    stored = stored_text(StopAttempt, ScheduledMessage)
    places = {
        "URLs": urls,
        "headers": headers,
        "log records": logged,
        "stored rows": stored,
        "exceptions": exceptions,
        "command output": [out.getvalue(), err_out.getvalue()],
        "admin pages": pages,
    }
    assert len(logged) > 20 and any("urllib3" in line for line in logged)  # DEBUG logs were really captured
    assert any("[redacted]" in text for text in stored + exceptions)  # the echoes were really there
    for where, texts in places.items():
        for secret in (PASSWORD, API_ID):
            assert not any(secret in text for text in texts), f"{secret!r} found in {where}"
    # ...and they did go where they belong: the POST bodies.
    assert all(PASSWORD in body and API_ID in body for body in bodies if body)
