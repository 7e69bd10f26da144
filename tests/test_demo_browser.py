"""The example project's demo flow in a real browser: cancel an appointment, its reminder stops."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from urllib.request import urlopen

import pytest

from django_clickatell_stop.testing import FakeGateway

from .browser import page, screenshot  # noqa: F401 - the fixture
from .test_command_process import MANAGE, Site

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def demo(tmp_path):
    with FakeGateway() as gateway:
        site = Site(tmp_path, gateway)
        for args in (("migrate", "-v", "0"), ("seed_demo", "--count", "6")):
            result = site.manage(*args)
            assert result.returncode == 0, result.stderr
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, str(MANAGE), "runserver", "--noreload", f"127.0.0.1:{port}"],
            env=site.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    urlopen(url, timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            gateway.calls.clear()  # forget the seeding's sendmsg calls
            yield url, gateway
        finally:
            server.terminate()
            server.wait(timeout=10)


def test_cancel_stops_the_reminder_and_too_late_is_shown(page, demo):  # noqa: F811
    url, gateway = demo
    page.goto(url)
    screenshot(page, "demo-list")
    # Appointments 1-3 are seeded with reminders already sent; 4 is still scheduled.
    page.goto(f"{url}/appointments/4/")
    assert page.inner_text("#reminder-state") == "Scheduled"
    page.click("#cancel")
    page.wait_for_selector(".messages")
    assert "reminder stopped" in page.inner_text(".messages")
    assert page.inner_text("#reminder-state") == "Stopped"
    screenshot(page, "demo-stopped")
    assert [call.command for call in gateway.calls] == ["delmsg"]

    page.goto(f"{url}/appointments/1/")
    page.click("#cancel")
    page.wait_for_selector(".messages")
    assert "too late" in page.inner_text(".messages")
    assert page.inner_text("#reminder-state") == "Too late"
    screenshot(page, "demo-too-late")
    assert [call.command for call in gateway.calls] == ["delmsg", "delmsg"]
