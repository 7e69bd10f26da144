"""The example's one interesting view: cancelling an appointment stops its reminder."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from django_clickatell_stop.exceptions import ClickatellConfigurationError
from django_clickatell_stop.models import State
from django_clickatell_stop.services import stop_messages_for

from .models import Appointment


def appointment_list(request: HttpRequest) -> HttpResponse:
    appointments = Appointment.objects.select_related("reminder")
    return render(request, "appointments/list.html", {"appointments": appointments})


def appointment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    appointment = get_object_or_404(Appointment.objects.select_related("reminder"), pk=pk)
    attempts = appointment.reminder.attempts.all() if appointment.reminder else []
    return render(request, "appointments/detail.html", {"appointment": appointment, "attempts": attempts})


@require_POST
def cancel_appointment(request: HttpRequest, pk: int) -> HttpResponse:
    appointment = get_object_or_404(Appointment, pk=pk)
    appointment.cancelled_at = appointment.cancelled_at or timezone.now()
    appointment.save(update_fields=["cancelled_at"])
    reminder = appointment.reminder
    if reminder is None:
        messages.info(request, "Appointment cancelled. It had no reminder.")
        return redirect("appointment-detail", pk=pk)
    try:
        stop_messages_for(appointment, user=request.user)  # every pending message for this appointment
    except ClickatellConfigurationError as err:
        messages.error(request, f"Appointment cancelled, but the reminder could not be stopped: {err}")
        return redirect("appointment-detail", pk=pk)
    reminder.refresh_from_db()
    if reminder.state == State.STOPPED:
        messages.success(request, "Appointment cancelled and reminder stopped.")
    elif reminder.state == State.TOO_LATE:
        messages.warning(
            request, "Appointment cancelled, but it was too late: the reminder was already sent."
        )
    elif reminder.state == State.UNKNOWN:
        messages.warning(request, "Appointment cancelled; Clickatell does not know the reminder.")
    else:
        messages.error(
            request,
            f"Appointment cancelled, but stopping the reminder failed ({reminder.error_description}). "
            "Try again.",
        )
    return redirect("appointment-detail", pk=pk)
