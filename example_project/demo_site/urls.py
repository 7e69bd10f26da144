from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("clickatell/", include("django_clickatell_stop.urls")),  # delivery callbacks
    path("", include("appointments.urls")),
]
