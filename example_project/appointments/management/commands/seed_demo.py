"""Seed the demo: a user, and appointments whose reminders are scheduled through schedule_message()."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand
from django.utils import timezone

from appointments.models import Appointment
from django_clickatell_stop.checks import is_loopback
from django_clickatell_stop.models import ScheduledMessage
from django_clickatell_stop.services import schedule_message

PATIENTS = [
    "Ada Lovelace",
    "Alan Turing",
    "Grace Hopper",
    "Edsger Dijkstra",
    "Barbara Liskov",
    "Donald Knuth",
    "Margaret Hamilton",
    "Ken Thompson",
    "Frances Allen",
    "John McCarthy",
    "Radia Perlman",
    "Tim Berners-Lee",
]


ALREADY_SENT = 3


class Command(BaseCommand):
    help = "Create the demo user and appointments with reminders (skipped if they already exist)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--count", type=int, default=36)

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(
            username="demo", defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            user.set_password("demo")
            user.save()
        support, created = user_model.objects.get_or_create(username="support", defaults={"is_staff": True})
        if created:
            support.set_password("support")
            support.save()
            support.user_permissions.set(
                Permission.objects.filter(
                    content_type__app_label="django_clickatell_stop",
                    codename__in=["view_scheduledmessage", "view_stopattempt", "stop_scheduledmessage"],
                )
            )
        if Appointment.objects.exists():
            self._resync_fake_gateway()
            self.stdout.write("Demo data already present.")
            return
        rng = random.Random(42)
        now = timezone.now()
        for n in range(options["count"]):
            starts_at = (now + timedelta(days=1, hours=2 + n * 3)).replace(minute=0, second=0, microsecond=0)
            patient = PATIENTS[n % len(PATIENTS)]
            phone = f"27999{rng.randrange(10**6):06d}"
            remind_at = max(starts_at - timedelta(days=1), now + timedelta(minutes=5))
            appointment = Appointment.objects.create(patient=patient, phone=phone, starts_at=starts_at)
            text = f"Hi {patient.split()[0]}, a reminder: your appointment is {starts_at:%a %d %b at %H:%M}."
            appointment.reminder = schedule_message(phone, text, remind_at, for_object=appointment)
            appointment.save(update_fields=["reminder"])
        self._mark_already_sent()
        self.stdout.write(f"Created {options['count']} appointments with reminders.")

    def _mark_already_sent(self) -> None:
        """The first few reminders have gone out already, to show the "too late" outcome."""
        for appointment in Appointment.objects.select_related("reminder").order_by("starts_at")[
            :ALREADY_SENT
        ]:
            if appointment.reminder is not None and appointment.reminder.state != "stopped":
                self._control("deliver", {"apimsgid": appointment.reminder.apimsgid})

    def _resync_fake_gateway(self) -> None:
        """A new fake gateway knows nothing: tell it about the messages of an earlier run."""
        fake_state = {"stopped": "stopped", "too_late": "delivered", "unknown": None}
        for message in ScheduledMessage.objects.exclude(apimsgid=None):
            state = fake_state.get(message.state, "scheduled")
            if state is not None:
                self._control(
                    "messages", {"apimsgid": message.apimsgid, "climsgid": message.climsgid, "state": state}
                )
        self._mark_already_sent()

    def _control(self, endpoint: str, data: dict[str, Any]) -> None:
        base_url = str(settings.CLICKATELL_STOP["BASE_URL"])
        if not is_loopback(urlsplit(base_url).hostname):
            return  # a real gateway: nothing to fake
        request = Request(f"{base_url}/_fake/{endpoint}", data=json.dumps(data).encode(), method="POST")
        with urlopen(request, timeout=5):
            pass
