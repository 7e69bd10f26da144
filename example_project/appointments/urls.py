from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("", views.appointment_list, name="appointment-list"),
    path("appointments/<int:pk>/", views.appointment_detail, name="appointment-detail"),
    path("appointments/<int:pk>/cancel/", views.cancel_appointment, name="appointment-cancel"),
]
