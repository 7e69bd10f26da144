from __future__ import annotations

from django.db import models

from django_clickatell_stop.models import ScheduledMessage


class Appointment(models.Model):
    patient = models.CharField(max_length=100)
    phone = models.CharField(max_length=20)
    starts_at = models.DateTimeField()
    cancelled_at = models.DateTimeField(null=True, blank=True)
    #: The reminder SMS, scheduled with Clickatell for the day before.
    reminder = models.OneToOneField(
        ScheduledMessage, null=True, blank=True, on_delete=models.PROTECT, related_name="appointment"
    )

    class Meta:
        ordering = ["starts_at"]

    def __str__(self) -> str:
        return f"{self.patient} at {self.starts_at:%a %d %b %H:%M}"
