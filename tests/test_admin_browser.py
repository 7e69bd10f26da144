"""The admin action in a real browser, against a live server and the fake gateway."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from django_clickatell_stop.models import Outcome, ScheduledMessage, State, StopAttempt

from .browser import page, screenshot  # noqa: F401 - the fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_stop_selected_messages_in_the_browser(page, live_server, gw, django_user_model):  # noqa: F811
    user = django_user_model.objects.create_user("support", password="support-pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            codename__in=["view_scheduledmessage", "view_stopattempt", "stop_scheduledmessage"]
        )
    )
    targets = []
    for n in (1, 2):
        message = ScheduledMessage.objects.create(apimsgid=f"{n:032x}", recipient=f"2799900000{n}")
        gw.add_message(message.apimsgid)
        targets.append(message)
    done = ScheduledMessage.objects.create(apimsgid=f"{3:032x}", recipient="27999000003", state=State.STOPPED)

    page.goto(f"{live_server.url}/admin/login/?next=/admin/django_clickatell_stop/scheduledmessage/")
    page.fill("#id_username", "support")
    page.fill("#id_password", "support-pw")
    page.click("input[type=submit]")
    page.wait_for_selector("#result_list")
    page.click("#toggle-nav-sidebar")  # more room for the table in the screenshots
    screenshot(page, "admin-list")

    for message in (*targets, done):
        page.check(f"input[name=_selected_action][value='{message.pk}']")
    page.select_option("select[name=action]", "stop_selected")
    page.click("button[name=index]")

    page.wait_for_selector("#stop-summary")
    summary = page.inner_text("#stop-summary")
    assert "2 messages will be sent to Clickatell" in summary
    assert "1 selected message is skipped" in summary
    assert "1 stopped" in page.inner_text("#stop-skipped")
    assert gw.calls == []
    screenshot(page, "admin-confirmation")

    page.click("#confirm-stop")
    page.wait_for_selector(".messagelist")
    assert "Stopped 2 messages." in page.inner_text(".messagelist")
    screenshot(page, "admin-result")

    assert len(gw.calls_to("delmsg")) == 2
    assert {call.form["apimsgid"] for call in gw.calls} == {m.apimsgid for m in targets}
    for message in targets:
        message.refresh_from_db()
        assert message.state == State.STOPPED
        attempt = StopAttempt.objects.get(message=message)
        assert (attempt.user, attempt.trigger, attempt.outcome) == (user, "admin", Outcome.STOPPED)
    assert not StopAttempt.objects.filter(message=done).exists()
