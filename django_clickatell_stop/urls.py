"""``path("clickatell/", include("django_clickatell_stop.urls"))`` for the delivery callbacks."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "django_clickatell_stop"
urlpatterns = [path("callback/", views.delivery_callback, name="callback")]
