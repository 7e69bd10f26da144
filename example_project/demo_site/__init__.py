"""The demo site. With CLICKATELL_EXECUTION=celery its Celery app is loaded, as Celery's Django guide asks."""

from __future__ import annotations

import os

if os.environ.get("CLICKATELL_EXECUTION") == "celery":
    from .celery import app as celery_app

    __all__ = ["celery_app"]
