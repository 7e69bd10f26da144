"""Every Python sample in the README runs, and the settings reference matches the code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import AnonymousUser
from django.contrib.messages import get_messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.backends.db import SessionStore
from django.core.checks import run_checks
from django.test import RequestFactory

from django_clickatell_stop.conf import DEFAULTS
from django_clickatell_stop.models import ScheduledMessage, State
from django_clickatell_stop.services import stop_message
from django_clickatell_stop.signals import message_stopped

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
SAMPLES = {
    block.splitlines()[0]: block for block in re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)
}
APIMSGID = "f6b9af2a2c9e5b18ee2d257e3def5d66"


def run(name: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": f"readme_{name}"}
    exec(compile(SAMPLES[f"# {name}"], f"README.md:{name}", "exec"), namespace)
    return namespace


def test_every_sample_is_exercised_here():
    assert set(SAMPLES) == {
        "# settings.py",
        "# views.py",
        "# reminders.py",
        "# signals.py",
        "# tests.py",
        CELERY_SAMPLE,
        "# settings.py, for the workers",
    }


CELERY_SAMPLE = '# celery.py, next to settings.py ("proj" is your project)'


def test_celery_sample():
    pytest.importorskip("celery")
    namespace: dict[str, Any] = {"__name__": "readme_celery"}
    exec(compile(SAMPLES[CELERY_SAMPLE], "README.md:celery.py", "exec"), namespace)
    app = namespace["app"]
    assert app.main == "proj"
    assert app.conf.broker_url == django_settings.CELERY_BROKER_URL  # read from Django's settings


def test_worker_settings_sample_passes_the_checks(settings):
    namespace = run("settings.py, for the workers")
    config = namespace["CLICKATELL_STOP"]
    assert set(config) <= set(DEFAULTS)
    settings.CLICKATELL_STOP = {**settings.CLICKATELL_STOP, **config}
    ids = {message.id for message in run_checks()}
    assert not ids & {
        "django_clickatell_stop.W003",
        "django_clickatell_stop.E005",
        "django_clickatell_stop.E004",
    }
    assert namespace["CELERY_WORKER_PREFETCH_MULTIPLIER"] == 1


def test_settings_sample(monkeypatch):
    for name in ("USER", "PASSWORD", "API_ID"):
        monkeypatch.setenv(f"CLICKATELL_{name}", f"value-{name}")
    namespace = run("settings.py")
    assert "django_clickatell_stop" in namespace["INSTALLED_APPS"]
    assert namespace["CLICKATELL_STOP"] == {
        "USER": "value-USER",
        "PASSWORD": "value-PASSWORD",
        "API_ID": "value-API_ID",
    }


def _post(view, pk):
    request = RequestFactory().post("/")
    request.session = SessionStore()
    request.user = AnonymousUser()
    request._messages = FallbackStorage(request)  # type: ignore[attr-defined]
    response = view(request, pk)
    return response, [str(m) for m in get_messages(request)]


@pytest.mark.django_db
def test_view_sample(gw):
    view = run("views.py")["cancel_reminder"]
    ok = ScheduledMessage.objects.create(apimsgid="a" * 32)
    late = ScheduledMessage.objects.create(apimsgid="b" * 32)
    broken = ScheduledMessage.objects.create(apimsgid="c" * 32)
    gw.add_message(ok.apimsgid)
    gw.add_message(late.apimsgid, state="delivered")
    response, texts = _post(view, ok.pk)
    assert response.status_code == 302 and texts == ["Reminder stopped."]
    assert _post(view, late.pk)[1] == ["Too late: the reminder was already sent."]
    assert _post(view, broken.pk)[1] == [
        "Could not stop the reminder: ERR 103: Unknown API message ID. Try again."
    ]


@pytest.mark.django_db
def test_reminders_sample(gw):
    namespace = run("reminders.py")
    reminder = namespace["reminder"]
    assert ScheduledMessage.objects.get() == reminder
    assert gw.calls_to("sendmsg")[0].form["climsgid"] == reminder.climsgid


@pytest.mark.django_db
def test_signals_sample(gw):
    namespace = run("signals.py")
    try:
        message = ScheduledMessage.objects.create(apimsgid=APIMSGID)
        gw.add_message(APIMSGID)
        stop_message(message)
        assert namespace["stopped_ids"] == [APIMSGID]
        assert message.state == State.STOPPED
    finally:
        message_stopped.disconnect(namespace["remember_stop"])


@pytest.mark.django_db
def test_tests_sample():
    run("tests.py")["test_cancel_stops_the_reminder"]()


def test_settings_reference_matches_defaults():
    documented = dict(
        re.findall(r"^### `(\w+)`.*?\nDefault: `([^`]*)`", README, flags=re.MULTILINE | re.DOTALL)
    )
    headings = re.findall(r"^### (.+)$", README, flags=re.MULTILINE)
    names = {name for heading in headings for name in re.findall(r"`(\w+)`", heading)}
    assert names == set(DEFAULTS)
    for name, default in documented.items():
        assert default == repr(DEFAULTS[name]).replace("'", '"'), name
