"""manage.py stopmessage, through call_command."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from django_clickatell_stop.models import Outcome, ScheduledMessage, State, StopAttempt

pytestmark = pytest.mark.django_db

A, B, C = (f"{n:032x}" for n in (0xA, 0xB, 0xC))


def run(*args, **kwargs):
    stdout, stderr = StringIO(), StringIO()
    call_command("stopmessage", *args, stdout=stdout, stderr=stderr, **kwargs)
    return stdout.getvalue(), stderr.getvalue()


def run_failing(*args, code):
    stdout, stderr = StringIO(), StringIO()
    with pytest.raises(CommandError) as info:
        call_command("stopmessage", *args, stdout=stdout, stderr=stderr)
    assert info.value.returncode == code, str(info.value)
    return stdout.getvalue(), str(info.value)


def tracked(apimsgid, gw, *, gw_state="scheduled", **fields):
    gw.add_message(apimsgid, state=gw_state)
    return ScheduledMessage.objects.create(apimsgid=apimsgid, **fields)


def test_stop_by_apimsgid(gw):
    tracked(A, gw)
    out, err = run(A)
    assert f"{A} - stopped - status 006 (User cancelled message delivery)" in out
    assert "1 messages: 1 stopped." in out
    assert err == ""  # no progress on a non-terminal
    attempt = StopAttempt.objects.get()
    assert (attempt.trigger, attempt.outcome) == ("command", Outcome.STOPPED)


def test_stop_by_climsgid(gw):
    gw.add_message(climsgid="reminder42")
    ScheduledMessage.objects.create(climsgid="reminder42")
    out, _ = run("--climsgid", "reminder42")
    assert "climsgid=reminder42 - stopped" in out


def test_already_stopped_exits_zero_and_sends_nothing(gw):
    tracked(A, gw, state=State.STOPPED, gateway_status="006")
    out, _ = run(A)
    assert "already stopped" in out
    assert gw.calls == []


def test_untracked_ids_are_stopped_and_recorded(gw):
    gw.add_message(B)
    out, _ = run(B.upper())
    assert "[untracked]" in out
    message = ScheduledMessage.objects.get(apimsgid=B)
    assert message.untracked and message.state == State.STOPPED
    assert message.attempts.count() == 1


def test_too_late_exits_one(gw):
    tracked(A, gw, gw_state="delivered")
    out, error = run_failing(A, code=1)
    assert "too late - status 004" in out
    assert error == "1 of 1 messages were not stopped."


def test_unknown_exits_one(gw):
    out, _ = run_failing(C, code=1)
    assert "unknown" in out and "ERR 103: Unknown API message ID" in out


def test_bad_id_is_a_usage_error_and_sends_nothing(gw):
    _, error = run_failing(A, f"{B[:20]}&password=", code=2)
    assert "Invalid apimsgid" in error
    assert gw.calls == []
    assert not ScheduledMessage.objects.exists()


def test_bad_climsgid(gw):
    _, error = run_failing("--climsgid", "has space", code=2)
    assert "Invalid climsgid" in error


def test_nothing_named_is_a_usage_error(gw):
    _, error = run_failing(code=2)
    assert "See --help" in error


def test_bad_datetime_and_concurrency(gw):
    assert "not an ISO date-time" in run_failing("--scheduled-before", "tomorrow", code=2)[1]
    assert "--concurrency" in run_failing(A, "--concurrency", "0", code=2)[1]


def test_missing_credentials_exit_two(settings):
    settings.CLICKATELL_STOP = {}
    ScheduledMessage.objects.create(apimsgid=A)
    _, error = run_failing(A, code=2)
    assert error.startswith("Configuration error: CLICKATELL_STOP is missing USER, PASSWORD, API_ID")


def test_rejected_account_exits_two(gw, settings):
    settings.CLICKATELL_STOP = {**settings.CLICKATELL_STOP, "PASSWORD": "rotated"}
    tracked(A, gw)
    tracked(B, gw)
    out, error = run_failing(A, B, "--concurrency", "1", code=2)
    assert "rejected the account" in error
    assert "not attempted" in out
    assert len(gw.calls) == 1


def test_selection_flags(gw):
    now = timezone.now()
    early = tracked(A, gw, scheduled_for=now + timedelta(hours=1))
    late = tracked(B, gw, scheduled_for=now + timedelta(days=3))
    retry = tracked(C, gw, scheduled_for=now + timedelta(hours=2), state=State.FAILED)
    ScheduledMessage.objects.create(apimsgid="d" * 32, state=State.STOPPED, scheduled_for=now)
    before = (now + timedelta(days=1)).isoformat()
    out, _ = run("--scheduled-before", before, "--yes")
    assert "2 messages: 2 stopped." in out
    stopped = set(ScheduledMessage.objects.filter(state=State.STOPPED).values_list("apimsgid", flat=True))
    assert {early.apimsgid, retry.apimsgid} <= stopped
    assert late.apimsgid not in stopped
    out, _ = run("--scheduled-after", (now + timedelta(days=2)).isoformat(), "--yes")
    assert "1 messages: 1 stopped." in out


def test_naive_datetimes_use_the_current_timezone(gw):
    tracked(A, gw, scheduled_for=timezone.now() - timedelta(days=1))
    out, _ = run("--scheduled-before", timezone.now().replace(tzinfo=None).isoformat(timespec="minutes"))
    assert "1 stopped" in out


def test_all_scheduled_with_ids_is_a_union(gw):
    tracked(A, gw)
    tracked(B, gw)
    gw.add_message(C)
    out, _ = run(C, "--all-scheduled", "--yes")
    assert "3 messages: 3 stopped." in out


def test_selection_needs_yes_when_not_interactive(gw):
    tracked(A, gw)
    tracked(B, gw)
    _, error = run_failing("--all-scheduled", code=2)
    assert "without --yes" in error
    assert gw.calls == []


def test_selection_of_one_needs_no_confirmation(gw):
    tracked(A, gw)
    out, _ = run("--all-scheduled")
    assert "1 stopped" in out


def test_interactive_confirmation(gw, monkeypatch):
    tracked(A, gw)
    tracked(B, gw)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    answers = iter(["n", "yes"])
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    assert run_failing("--all-scheduled", code=2)[1] == "Nothing stopped."
    assert gw.calls == []
    out, _ = run("--all-scheduled")
    assert "2 stopped" in out


def test_dry_run_sends_nothing_and_creates_nothing(gw):
    tracked(A, gw)
    tracked(B, gw, state=State.STOPPED)
    out, _ = run(B, C, "--all-scheduled", "--dry-run")
    assert f"{A} - would stop" in out
    assert f"{B} - would skip (stopped)" in out
    assert f"{C} - would stop [untracked]" in out
    assert "Dry run: 2 of 3 messages would be sent to Clickatell; nothing sent." in out
    assert gw.calls == []
    assert not ScheduledMessage.objects.filter(apimsgid=C).exists()
    assert not StopAttempt.objects.exists()


def test_dry_run_json(gw):
    out, _ = run(A, "--dry-run", "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0] == {"dry_run": True, "apimsgid": A, "tracked": False, "state": None, "would_send": True}
    assert lines[-1] == {"summary": {"dry_run": True, "would_send": 1, "total": 1}}


def test_json_output(gw):
    tracked(A, gw)
    tracked(B, gw, gw_state="delivered")
    stdout = StringIO()
    with pytest.raises(CommandError):
        call_command("stopmessage", A, B, "--json", stdout=stdout)
    lines = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert [line.get("result") for line in lines[:2]] == ["stopped", "too_late"]
    assert lines[1]["gateway_status"] == "004"
    summary = lines[-1]["summary"]
    assert summary["counts"]["stopped"] == 1 and summary["counts"]["too_late"] == 1
    assert summary["total"] == 2 and summary["ok"] is False


def test_quiet_prints_only_the_summary(gw):
    tracked(A, gw)
    out, _ = run(A, verbosity=0)
    assert out == "1 messages: 1 stopped.\n"


def test_concurrency_flag(gw):
    for n in range(20):
        tracked(f"{n + 100:032x}", gw)
    out, _ = run("--all-scheduled", "--yes", "--concurrency", "8")
    assert "20 messages: 20 stopped." in out
    assert len(gw.calls) == 20


def test_progress_on_a_terminal(gw, monkeypatch):
    from django_clickatell_stop.management.commands.stopmessage import _Progress

    stream = StringIO()

    class Wrapper:
        def write(self, text, ending="\n"):
            stream.write(text + ending)

        def flush(self):
            pass

    progress = _Progress(Wrapper())
    progress(1, 10)
    progress(10, 10)
    progress.clear()
    assert "1/10" in stream.getvalue() and "10/10" in stream.getvalue() and "ETA" in stream.getvalue()


def test_help_documents_exit_codes():
    from django.core.management import load_command_class

    command = load_command_class("django_clickatell_stop", "stopmessage")
    text = command.create_parser("manage.py", "stopmessage").format_help()
    for needle in ("Exit status:", "130", "--dry-run", "--climsgid", "untracked", "Examples:"):
        assert needle in text
