from __future__ import annotations

from django.apps import AppConfig
from django.core import checks
from django.utils.translation import gettext_lazy as _


class ClickatellStopConfig(AppConfig):
    name = "django_clickatell_stop"
    verbose_name = _("Clickatell scheduled messages")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .checks import check_settings

        checks.register(check_settings)
