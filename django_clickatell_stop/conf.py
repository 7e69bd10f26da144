"""Typed access to ``settings.CLICKATELL_STOP``, read at call time.

Reading on every access (instead of once at import) keeps ``override_settings``
working in tests. Nothing here ever writes to ``django.conf.settings``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    "TRANSPORT": "http",
    "AUTH": "password",
    "USER": "",
    "PASSWORD": "",
    "API_ID": "",
    "TOKEN": "",
    "SESSION_REFRESH_SECONDS": 720.0,
    "BASE_URL": "https://api.clickatell.com",
    "ALLOW_INSECURE_HTTP": False,
    "CONNECT_TIMEOUT": 5.0,
    "TIMEOUT": 10.0,
    "MAX_RETRIES": 2,
    "RETRY_BACKOFF": 0.5,
    "CONCURRENCY": 4,
    "CHUNK_SIZE": 500,
    "ADMIN_MAX_SELECTION": 1000,
    "MAX_REQUESTS_PER_SECOND": None,
    "RATE_LIMIT_REDIS_URL": None,
    "STOP_CUTOFF_SECONDS": 300.0,
    "PREFLIGHT_QUERY": False,
    "CALLBACK_SECRET": "",
    "EXECUTION": "inline",
    "JOB_MAX_RETRIES": 5,
    "JOB_RETRY_BACKOFF": 30.0,
}


class Settings:
    """One property per key of ``CLICKATELL_STOP``, with the documented default."""

    def _get(self, name: str) -> Any:
        return getattr(settings, "CLICKATELL_STOP", {}).get(name, DEFAULTS[name])

    @property
    def TRANSPORT(self) -> str:
        return str(self._get("TRANSPORT"))

    @property
    def AUTH(self) -> str:
        return str(self._get("AUTH"))

    @property
    def TOKEN(self) -> str:
        return str(self._get("TOKEN"))

    @property
    def SESSION_REFRESH_SECONDS(self) -> float:
        return float(self._get("SESSION_REFRESH_SECONDS"))

    @property
    def USER(self) -> str:
        return str(self._get("USER"))

    @property
    def PASSWORD(self) -> str:
        return str(self._get("PASSWORD"))

    @property
    def API_ID(self) -> str:
        return str(self._get("API_ID"))

    @property
    def BASE_URL(self) -> str:
        return str(self._get("BASE_URL")).rstrip("/")

    @property
    def ALLOW_INSECURE_HTTP(self) -> bool:
        return bool(self._get("ALLOW_INSECURE_HTTP"))

    @property
    def CONNECT_TIMEOUT(self) -> float:
        return float(self._get("CONNECT_TIMEOUT"))

    @property
    def TIMEOUT(self) -> float:
        return float(self._get("TIMEOUT"))

    @property
    def MAX_RETRIES(self) -> int:
        return int(self._get("MAX_RETRIES"))

    @property
    def RETRY_BACKOFF(self) -> float:
        return float(self._get("RETRY_BACKOFF"))

    @property
    def CONCURRENCY(self) -> int:
        return int(self._get("CONCURRENCY"))

    @property
    def CHUNK_SIZE(self) -> int:
        return int(self._get("CHUNK_SIZE"))

    @property
    def ADMIN_MAX_SELECTION(self) -> int:
        return int(self._get("ADMIN_MAX_SELECTION"))

    @property
    def RATE_LIMIT_REDIS_URL(self) -> str | None:
        value = self._get("RATE_LIMIT_REDIS_URL")
        return str(value) if value else None

    @property
    def STOP_CUTOFF_SECONDS(self) -> float:
        return float(self._get("STOP_CUTOFF_SECONDS"))

    @property
    def PREFLIGHT_QUERY(self) -> bool:
        return bool(self._get("PREFLIGHT_QUERY"))

    @property
    def CALLBACK_SECRET(self) -> str:
        return str(self._get("CALLBACK_SECRET"))

    @property
    def MAX_REQUESTS_PER_SECOND(self) -> float | None:
        value = self._get("MAX_REQUESTS_PER_SECOND")
        return float(value) if value else None

    @property
    def EXECUTION(self) -> str:
        return str(self._get("EXECUTION"))

    @property
    def JOB_MAX_RETRIES(self) -> int:
        return int(self._get("JOB_MAX_RETRIES"))

    @property
    def JOB_RETRY_BACKOFF(self) -> float:
        return float(self._get("JOB_RETRY_BACKOFF"))


conf = Settings()
