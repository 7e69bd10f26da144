"""manage.py stopmessage as a real process: the example project, a SQLite file, the fake gateway."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from django_clickatell_stop.testing import FakeGateway

MANAGE = Path(__file__).resolve().parent.parent / "example_project" / "manage.py"


class Site:
    def __init__(self, tmp_path: Path, gateway: FakeGateway) -> None:
        self.db = tmp_path / "site.sqlite3"
        self.gateway = gateway
        self.env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{self.db}",
            "CLICKATELL_USER": gateway.user,
            "CLICKATELL_PASSWORD": gateway.password,
            "CLICKATELL_API_ID": gateway.api_id,
            "CLICKATELL_BASE_URL": gateway.url,
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop("DJANGO_SETTINGS_MODULE", None)

    def manage(self, *args: str, **kwargs) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(MANAGE), *args],
            env=self.env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
            **kwargs,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, str(MANAGE), *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )

    def track(self, count: int, *, start: int = 1) -> list[str]:
        ids = [f"{n:032x}" for n in range(start, start + count)]
        for apimsgid in ids:
            self.gateway.add_message(apimsgid)
        code = (
            "from django_clickatell_stop.models import ScheduledMessage as M\n"
            f"M.objects.bulk_create([M(apimsgid=i) for i in {ids!r}])"
        )
        result = self.manage("shell", "-c", code)
        assert result.returncode == 0, result.stderr
        return ids

    def wait_for_calls(self, count: int, timeout: float = 60) -> None:
        """Block until the gateway has received *count* requests (or *timeout* passes)."""
        deadline = time.monotonic() + timeout
        while len(self.gateway.calls) < count and time.monotonic() < deadline:
            time.sleep(0.01)

    def query(self, sql: str) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.db) as connection:
            return connection.execute(sql).fetchall()


@pytest.fixture
def site(tmp_path):
    with FakeGateway() as gateway:
        site = Site(tmp_path, gateway)
        result = site.manage("migrate", "-v", "0")
        assert result.returncode == 0, result.stderr
        yield site


def test_stop_exit_zero(site):
    (apimsgid,) = site.track(1)
    result = site.manage("stopmessage", apimsgid)
    assert result.returncode == 0, result.stderr
    assert f"{apimsgid} - stopped - status 006" in result.stdout
    assert site.query("select state from django_clickatell_stop_scheduledmessage") == [("stopped",)]
    assert site.query("select trigger, outcome from django_clickatell_stop_stopattempt") == [
        ("command", "stopped")
    ]


def test_not_stopped_exits_one(site):
    result = site.manage("stopmessage", "f" * 32)
    assert result.returncode == 1
    assert "unknown" in result.stdout and "[untracked]" in result.stdout
    assert result.stderr.strip() == "CommandError: 1 of 1 messages were not stopped."


def test_usage_error_exits_two_with_one_line_and_no_traceback(site):
    result = site.manage("stopmessage", "nothex&password=x")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert site.gateway.calls == []


def test_argparse_errors_exit_two(site):
    result = site.manage("stopmessage", "--concurrency", "many")
    assert result.returncode == 2
    assert "invalid int value" in result.stderr


def test_rejected_credentials_exit_two(site):
    site.track(2)
    site.env["CLICKATELL_PASSWORD"] = "wrong"
    result = site.manage("stopmessage", "--all-scheduled", "--yes", "--concurrency", "1")
    assert result.returncode == 2
    assert "rejected the account" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(site.gateway.calls) == 1


def test_json_lines_parse(site):
    ids = site.track(3)
    result = site.manage("stopmessage", *ids, "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(line["apimsgid"] for line in lines[:-1]) == ids
    assert lines[-1]["summary"]["counts"]["stopped"] == 3
    assert result.stderr == ""  # piped: no progress noise


def test_dry_run_sends_nothing(site):
    site.track(5)
    result = site.manage("stopmessage", "--all-scheduled", "--dry-run")
    assert result.returncode == 0
    assert "Dry run: 5 of 5 messages would be sent" in result.stdout
    assert site.gateway.calls == []
    assert site.query("select count(*) from django_clickatell_stop_stopattempt") == [(0,)]


def test_non_interactive_selection_without_yes_is_refused(site):
    site.track(2)
    result = site.manage("stopmessage", "--all-scheduled")
    assert result.returncode == 2
    assert "without --yes" in result.stderr
    assert site.gateway.calls == []


def test_help_is_self_explanatory(site):
    result = site.manage("stopmessage", "--help")
    assert result.returncode == 0
    assert "Exit status:" in result.stdout and "--scheduled-before" in result.stdout


def test_sigint_mid_run_leaves_every_call_recorded(site):
    site.track(300)
    site.gateway.latency = 0.02
    process = site.popen("stopmessage", "--all-scheduled", "--yes", "--concurrency", "2")
    site.wait_for_calls(40)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "every call made is recorded" in stderr
    assert "not attempted" in stdout
    calls = len(site.gateway.calls_to("delmsg"))
    assert 40 <= calls < 300
    outcomes = dict(
        site.query("select outcome, count(*) from django_clickatell_stop_stopattempt group by outcome")
    )
    assert "pending" not in outcomes
    assert sum(outcomes.values()) == calls  # every request the gateway saw has its attempt
    states = dict(
        site.query("select state, count(*) from django_clickatell_stop_scheduledmessage group by state")
    )
    assert states.get("stopped", 0) == outcomes.get("stopped", 0)
    assert states.get("scheduled", 0) == 300 - calls
    assert "stopping" not in states
    # The rest can be stopped by running again.
    again = site.manage("stopmessage", "--all-scheduled", "--yes", "--concurrency", "4")
    assert again.returncode == 0, again.stderr
    assert site.query(
        "select count(*) from django_clickatell_stop_scheduledmessage where state != 'stopped'"
    ) == [(0,)]
