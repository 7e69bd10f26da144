"""Django settings for ``bulk_stop.py --celery`` and its workers, read from the environment."""

from __future__ import annotations

import json
import os

import dj_database_url

SECRET_KEY = "benchmark-only"
USE_TZ = True
DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"])}
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "django_clickatell_stop"]
CLICKATELL_STOP = json.loads(os.environ["BENCH_CLICKATELL_STOP"])
CELERY_BROKER_URL = os.environ["BENCH_BROKER_URL"]
CELERY_RESULT_BACKEND = CELERY_BROKER_URL
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
