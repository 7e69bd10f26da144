from __future__ import annotations

from django.contrib import admin

from .models import Appointment


@admin.register(Appointment)
class AppointmentAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["patient", "starts_at", "cancelled_at", "reminder"]
    raw_id_fields = ["reminder"]
