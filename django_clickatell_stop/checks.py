"""System checks for ``settings.CLICKATELL_STOP`` (``manage.py check``)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning

from .conf import DEFAULTS

_NUMBERS = {
    "CONNECT_TIMEOUT": (0.0, False),
    "TIMEOUT": (0.0, False),
    "RETRY_BACKOFF": (0.0, True),
    "MAX_RETRIES": (0, True),
    "CONCURRENCY": (1, True),
    "CHUNK_SIZE": (1, True),
    "ADMIN_MAX_SELECTION": (1, True),
    "MAX_REQUESTS_PER_SECOND": (0.0, False),
    "SESSION_REFRESH_SECONDS": (0.0, False),
    "STOP_CUTOFF_SECONDS": (0, True),
    "JOB_MAX_RETRIES": (0, True),
    "JOB_RETRY_BACKOFF": (0.0, True),
}
_CHOICES = {
    "TRANSPORT": ("http", "rest"),
    "AUTH": ("password", "session"),
    "EXECUTION": ("inline", "celery", "tasks"),
}


def is_loopback(host: str | None) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def insecure_base_url_problem(base_url: str, allow_insecure: bool) -> str | None:
    """Why *base_url* must not be used, or ``None`` when it is acceptable."""
    parts = urlsplit(base_url)
    # Checked first so that a URL with a password in it is never echoed back.
    if parts.username or parts.password or parts.query:
        return "BASE_URL must not carry credentials or a query string."
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"BASE_URL {base_url!r} is not an http(s) URL."
    if parts.scheme == "http" and not is_loopback(parts.hostname) and not allow_insecure:
        return f"BASE_URL {base_url!r} uses plain HTTP: credentials would cross the network unencrypted."
    return None


def check_settings(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    config = getattr(settings, "CLICKATELL_STOP", {})
    if not isinstance(config, dict):
        return [
            Error(
                "CLICKATELL_STOP must be a dict.",
                hint='CLICKATELL_STOP = {"USER": ..., "PASSWORD": ..., "API_ID": ...}',
                id="django_clickatell_stop.E001",
            )
        ]
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        messages.append(
            Warning(
                f"CLICKATELL_STOP has unknown keys: {', '.join(unknown)}.",
                hint=f"Known keys: {', '.join(DEFAULTS)}.",
                id="django_clickatell_stop.W002",
            )
        )
    for name, choices in _CHOICES.items():
        if config.get(name, DEFAULTS[name]) not in choices:
            messages.append(
                Error(
                    f"CLICKATELL_STOP['{name}'] must be one of {', '.join(map(repr, choices))}.",
                    hint=f"The default is {DEFAULTS[name]!r}.",
                    id="django_clickatell_stop.E004",
                )
            )
    needed = ("TOKEN",) if config.get("TRANSPORT") == "rest" else ("USER", "PASSWORD", "API_ID")
    missing = [name for name in needed if not config.get(name)]
    if missing:
        messages.append(
            Warning(
                f"CLICKATELL_STOP is missing {', '.join(missing)}: every stop will fail.",
                hint="Set them from the environment, e.g. os.environ['CLICKATELL_PASSWORD'].",
                id="django_clickatell_stop.W001",
            )
        )
    base_url = config.get("BASE_URL", DEFAULTS["BASE_URL"])
    problem = (
        insecure_base_url_problem(base_url, bool(config.get("ALLOW_INSECURE_HTTP")))
        if isinstance(base_url, str)
        else "BASE_URL must be a string."
    )
    if problem:
        messages.append(
            Error(
                problem,
                hint="Use https://api.clickatell.com; plain http is accepted only for loopback "
                "(the fake gateway) or with ALLOW_INSECURE_HTTP = True.",
                id="django_clickatell_stop.E002",
            )
        )
    messages.extend(_check_execution(config))
    for name, (minimum, integral) in _NUMBERS.items():
        if name not in config or (name == "MAX_REQUESTS_PER_SECOND" and config[name] is None):
            continue
        value = config[name]
        valid = (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and (not integral or float(value).is_integer())
            and (value >= minimum if integral else value > minimum)
        )
        if not valid:
            kind = "a whole number" if integral else "a number"
            bound = f">= {minimum}" if integral else f"> {minimum}"
            messages.append(
                Error(
                    f"CLICKATELL_STOP['{name}'] must be {kind} {bound}, not {value!r}.",
                    hint=f"The default is {DEFAULTS[name]!r}.",
                    id="django_clickatell_stop.E003",
                )
            )
    return messages


def _check_execution(config: dict[str, Any]) -> list[CheckMessage]:
    """Jobs on workers: the queue's package is installed, and a rate limit holds across workers."""
    execution = config.get("EXECUTION", DEFAULTS["EXECUTION"])
    if execution not in ("celery", "tasks"):
        return []
    from .exceptions import ClickatellConfigurationError
    from .jobs import get_dispatcher

    try:
        get_dispatcher(execution)
    except ClickatellConfigurationError as err:
        return [Error(str(err), id="django_clickatell_stop.E005")]
    messages: list[CheckMessage] = []
    if execution == "celery":
        from celery import current_app

        if not current_app.conf.result_backend:
            messages.append(
                Error(
                    "EXECUTION is 'celery' but the Celery app has no result backend: a stop job is a chord, "
                    "and chords need one. Is your Celery app loaded at all?",
                    hint="Import it in your project package's __init__.py (from .celery import app) and set "
                    "CELERY_RESULT_BACKEND, e.g. to your Redis broker's URL.",
                    id="django_clickatell_stop.E006",
                )
            )
    if config.get("MAX_REQUESTS_PER_SECOND") and not config.get("RATE_LIMIT_REDIS_URL"):
        messages.append(
            Warning(
                f"EXECUTION is {execution!r} but MAX_REQUESTS_PER_SECOND is enforced per worker process: "
                "all workers together may exceed it.",
                hint="Set RATE_LIMIT_REDIS_URL (e.g. redis://127.0.0.1:6379/0) to share one limit.",
                id="django_clickatell_stop.W003",
            )
        )
    return messages
