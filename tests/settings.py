from __future__ import annotations

import os

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"

if os.environ.get("DATABASE_URL"):
    import dj_database_url

    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"])}
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",  # so the live server serves the admin's CSS to the browser tests
    "django_clickatell_stop",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
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

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STATIC_URL = "/static/"

# Tests point this at a FakeGateway (see tests/conftest.py). The default is a closed
# loopback port, so a test that forgets the fake fails fast and never reaches the network.
CLICKATELL_STOP: dict[str, object] = {
    "USER": "unset",
    "PASSWORD": "unset",
    "API_ID": "unset",
    "BASE_URL": "http://127.0.0.1:9",
}

# Worker processes started by the Celery tests get the parent's gateway settings this way.
if os.environ.get("CLICKATELL_STOP_JSON"):
    import json

    CLICKATELL_STOP = json.loads(os.environ["CLICKATELL_STOP_JSON"])

# Celery (tests/celery_app.py): its own Redis database, flushed by the worker tests.
CELERY_BROKER_URL = os.environ.get("CLICKATELL_TEST_BROKER_URL", "redis://127.0.0.1:6379/14")
CELERY_RESULT_BACKEND = CELERY_BROKER_URL
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A task whose worker died is handed to another worker after this long (Redis broker).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": float(os.environ.get("CLICKATELL_TEST_VISIBILITY", "3600")),
    # Look for such tasks every second, not every 100 s (kombu's default sweep: 10 s x 10 polls).
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}
CELERY_TASK_ALWAYS_EAGER = os.environ.get("CLICKATELL_TEST_CELERY_EAGER", "1") == "1"
# Not propagated: a propagated Retry would escape the eager chord instead of running the retry.
CELERY_TASK_EAGER_PROPAGATES = False
