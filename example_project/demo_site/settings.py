"""Settings for the example project.

Clickatell credentials come from the environment (CLICKATELL_USER, CLICKATELL_PASSWORD,
CLICKATELL_API_ID, CLICKATELL_BASE_URL), so the same project talks to the real
Clickatell without code changes. Unset, it uses the bundled fake gateway that
``make demo`` starts on 127.0.0.1:8765. DATABASE_URL picks the database (SQLite
by default; postgres://... works too).
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_clickatell_stop",
    "appointments",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo_site.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
WSGI_APPLICATION = "demo_site.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'demo.sqlite3'}"), conn_max_age=0
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
LOGIN_URL = "admin:login"

#: Where ``make demo`` runs the fake gateway.
FAKE_GATEWAY_URL = "http://127.0.0.1:8765"

CLICKATELL_STOP = {
    "USER": os.environ.get("CLICKATELL_USER", "fake-user"),
    "PASSWORD": os.environ.get("CLICKATELL_PASSWORD", "fake-password-3e1d"),
    "API_ID": os.environ.get("CLICKATELL_API_ID", "3456789"),
    "BASE_URL": os.environ.get("CLICKATELL_BASE_URL", FAKE_GATEWAY_URL),
    "TIMEOUT": 10.0,
    "MAX_RETRIES": 2,
    "CONCURRENCY": int(os.environ.get("CLICKATELL_CONCURRENCY", "8")),
    "CHUNK_SIZE": int(os.environ.get("CLICKATELL_CHUNK_SIZE", "500")),
    "CALLBACK_SECRET": os.environ.get("CLICKATELL_CALLBACK_SECRET", "demo-callback-secret"),
    # "celery": the admin queues stops for a Celery worker (demo.py starts one; needs Redis).
    "EXECUTION": os.environ.get("CLICKATELL_EXECUTION", "inline"),
    "MAX_REQUESTS_PER_SECOND": float(os.environ.get("CLICKATELL_MAX_REQUESTS_PER_SECOND", "0")) or None,
    "RATE_LIMIT_REDIS_URL": os.environ.get("CLICKATELL_RATE_LIMIT_REDIS_URL") or None,
}

# Only used with CLICKATELL_EXECUTION=celery (demo_site/celery.py).
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = CELERY_BROKER_URL
CELERY_WORKER_PREFETCH_MULTIPLIER = 1

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_clickatell_stop": {"handlers": ["console"], "level": "WARNING"}},
}
