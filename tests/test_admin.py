"""The admin: list, read-only audit trail, and the two-step "Stop selected messages" action."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse

from django_clickatell_stop.models import Outcome, ScheduledMessage, State, StopAttempt
from django_clickatell_stop.services import stop_message

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:django_clickatell_stop_scheduledmessage_changelist"


def hexid(n):
    return f"{n:032x}"


@pytest.fixture
def staff(django_user_model):
    """Staff who may view messages and stop them, but not change them."""
    user = django_user_model.objects.create_user("support", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            codename__in=["view_scheduledmessage", "view_stopattempt", "stop_scheduledmessage"]
        )
    )
    return user


@pytest.fixture
def viewer(django_user_model):
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(codename__in=["view_scheduledmessage", "change_scheduledmessage"])
    )
    return user


def make(gw, n, *, state=State.SCHEDULED, gw_state="scheduled", start=1):
    messages = []
    for i in range(start, start + n):
        message = ScheduledMessage.objects.create(apimsgid=hexid(i), recipient=f"2799900{i:04d}", state=state)
        gw.add_message(message.apimsgid, state=gw_state)
        messages.append(message)
    return messages


def action(client, messages, **extra):
    data = {"action": "stop_selected", "_selected_action": [m.pk for m in messages], **extra}
    return client.post(reverse(CHANGELIST), data)


def texts(response):
    return [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]


def test_changelist_shows_state_ids_and_status(client, staff, gw):
    (message,) = make(gw, 1)
    stop_message(message)
    client.force_login(staff)
    response = client.get(reverse(CHANGELIST))
    content = response.content.decode()
    assert response.status_code == 200
    assert message.apimsgid in content
    assert "dcs-state-stopped" in content
    assert "006 User cancelled message delivery" in content
    assert "Stop selected messages" in content


def test_search_and_filters(client, staff, gw):
    a, b = make(gw, 2)
    ScheduledMessage.objects.filter(pk=b.pk).update(state=State.FAILED)
    client.force_login(staff)
    assert a.apimsgid in client.get(reverse(CHANGELIST), {"q": a.apimsgid}).content.decode()
    filtered = client.get(reverse(CHANGELIST), {"state__exact": "failed"}).content.decode()
    assert b.apimsgid in filtered and a.apimsgid not in filtered


def test_confirmation_counts_sending_and_skipped(client, staff, gw):
    scheduled = make(gw, 2)
    stopped = make(gw, 1, state=State.STOPPED, start=10)
    too_late = make(gw, 1, state=State.TOO_LATE, start=20)
    client.force_login(staff)
    response = action(client, scheduled + stopped + too_late)
    content = response.content.decode()
    assert response.status_code == 200
    assert response.templates[0].name == "admin/django_clickatell_stop/stop_selected_confirmation.html"
    assert "<strong>2</strong> messages will be sent to Clickatell" in content
    assert "2 selected messages are skipped" in content
    assert "1 stopped (nothing will be sent)" in content
    assert "1 too late (nothing will be sent)" in content
    assert 'name="post" value="yes"' in content
    assert "csrfmiddlewaretoken" in content
    assert gw.calls == []  # the first step sends nothing


def test_confirm_stops_and_reports(client, staff, gw):
    scheduled = make(gw, 2)
    stopped = make(gw, 1, state=State.STOPPED, start=10)
    client.force_login(staff)
    response = action(client, scheduled + stopped, post="yes")
    assert response.status_code == 302
    assert texts(response) == [
        ("success", "Stopped 2 messages."),
        ("info", "1 message was already stopped; nothing sent for it."),
    ]
    assert len(gw.calls) == 2
    attempts = StopAttempt.objects.all()
    assert {(a.trigger, a.user, a.outcome) for a in attempts} == {("admin", staff, Outcome.STOPPED)}


def test_partial_failure_messages_have_levels_and_reasons(client, staff, gw):
    ok, late, broken = make(gw, 3)
    gw.message(late.apimsgid).state = "delivered"
    gw.fault("latency", delay=1.0, times=10, message_id=broken.apimsgid)
    gw_settings = {**gw.settings(), "TIMEOUT": 0.2, "MAX_RETRIES": 1}
    from django.test import override_settings

    client.force_login(staff)
    with override_settings(CLICKATELL_STOP=gw_settings):
        response = action(client, [ok, late, broken], post="yes")
    got = texts(response)
    assert got[0] == ("success", "Stopped 1 message.")
    levels = dict(got[1:])
    assert levels["warning"].startswith("1 too late: Received by recipient")
    assert late.apimsgid in levels["warning"]
    assert levels["error"].startswith("1 failed: Timeout talking to Clickatell")
    assert broken.apimsgid in levels["error"]


def test_cancel_link_goes_back_and_sends_nothing(client, staff, gw):
    messages = make(gw, 1)
    client.force_login(staff)
    content = action(client, messages).content.decode()
    assert f'href="{reverse(CHANGELIST)}" class="button cancel-link"' in content
    assert gw.calls == []
    assert ScheduledMessage.objects.get().state == State.SCHEDULED


def test_nothing_stoppable_offers_no_confirm_button(client, staff, gw):
    messages = make(gw, 2, state=State.STOPPED)
    client.force_login(staff)
    content = action(client, messages).content.decode()
    assert "None of the selected messages can be stopped." in content
    assert 'value="yes"' not in content


def test_action_not_offered_without_permission(client, viewer, gw):
    make(gw, 1)
    client.force_login(viewer)
    content = client.get(reverse(CHANGELIST)).content.decode()
    assert "Stop selected messages" not in content


@pytest.mark.parametrize("post", [{}, {"post": "yes"}])
def test_forged_post_without_permission_is_403_and_sends_nothing(client, viewer, gw, post):
    messages = make(gw, 2)
    client.force_login(viewer)
    response = action(client, messages, **post)
    assert response.status_code == 403
    assert gw.calls == []
    assert not StopAttempt.objects.exists()


def test_stop_button_on_change_page(client, staff, gw):
    (message,) = make(gw, 1)
    client.force_login(staff)
    change_url = reverse("admin:django_clickatell_stop_scheduledmessage_change", args=[message.pk])
    stop_url = reverse("admin:django_clickatell_stop_scheduledmessage_stop", args=[message.pk])
    assert stop_url in client.get(change_url).content.decode()
    confirmation = client.get(stop_url)
    content = confirmation.content.decode()
    assert "<strong>1</strong> message will be sent" in content
    assert f'action="{reverse(CHANGELIST)}"' in content
    response = action(client, [message], post="yes")
    assert texts(response) == [("success", "Stopped 1 message.")]
    assert stop_url not in client.get(change_url).content.decode()  # no longer stoppable


def test_stop_button_needs_permission(client, viewer, gw):
    (message,) = make(gw, 1)
    client.force_login(viewer)
    stop_url = reverse("admin:django_clickatell_stop_scheduledmessage_stop", args=[message.pk])
    change_url = reverse("admin:django_clickatell_stop_scheduledmessage_change", args=[message.pk])
    assert stop_url not in client.get(change_url).content.decode()
    assert client.get(stop_url).status_code == 403


def test_stop_button_for_missing_message_redirects(client, staff, gw):
    client.force_login(staff)
    response = client.get(reverse("admin:django_clickatell_stop_scheduledmessage_stop", args=[999]))
    assert response.status_code == 302


def test_large_selection_lists_a_capped_number_and_stays_fast(
    client, staff, gw, django_assert_max_num_queries
):
    ScheduledMessage.objects.bulk_create([ScheduledMessage(apimsgid=hexid(i)) for i in range(1, 251)])
    client.force_login(staff)
    with django_assert_max_num_queries(15):
        content = client.post(
            reverse(CHANGELIST), {"action": "stop_selected", "select_across": "1", "_selected_action": ["1"]}
        ).content.decode()
    assert "<strong>250</strong> messages will be sent" in content
    assert content.count("<li><a href=") == 100
    assert "…and 150 more." in content
    assert 'name="select_across" value="1"' in content
    assert 'name="_selected_action"' not in content


def test_selection_over_the_limit_points_to_the_command(client, staff, gw, settings):
    settings.CLICKATELL_STOP = {**settings.CLICKATELL_STOP, "ADMIN_MAX_SELECTION": 2}
    messages = make(gw, 3)
    client.force_login(staff)
    response = action(client, messages, post="yes")
    ((level, text),) = texts(response)
    assert level == "error"
    assert "at most 2 at once" in text and "manage.py stopmessage" in text
    assert gw.calls == []


def test_missing_configuration_is_reported(client, staff, gw, settings):
    settings.CLICKATELL_STOP = {}
    messages = make(gw, 1)
    client.force_login(staff)
    ((level, text),) = texts(action(client, messages, post="yes"))
    assert level == "error" and text.startswith("Nothing sent: CLICKATELL_STOP is missing")


def test_rejected_account_is_reported(client, staff, gw, settings):
    settings.CLICKATELL_STOP = {**settings.CLICKATELL_STOP, "PASSWORD": "rotated", "CONCURRENCY": 1}
    messages = make(gw, 3)
    client.force_login(staff)
    got = texts(action(client, messages, post="yes"))
    assert ("error", "Clickatell rejected the account: ERR 001: Authentication failed") in got
    assert any(level == "error" and text.startswith("2 not attempted") for level, text in got)


def test_stop_attempts_are_read_only(client, admin_user, gw):
    (message,) = make(gw, 1)
    attempt = stop_message(message)
    client.force_login(admin_user)
    list_url = reverse("admin:django_clickatell_stop_stopattempt_changelist")
    detail_url = reverse("admin:django_clickatell_stop_stopattempt_change", args=[attempt.pk])
    content = client.get(list_url).content.decode()
    assert reverse("admin:django_clickatell_stop_stopattempt_add") not in content
    assert client.get(list_url, {"outcome__exact": "stopped", "q": message.apimsgid}).status_code == 200
    detail = client.get(detail_url).content.decode()
    assert f"ID: {message.apimsgid} Status: 006" in detail
    assert 'name="_save"' not in detail
    assert client.get(reverse("admin:django_clickatell_stop_stopattempt_add")).status_code == 403
    assert (
        client.post(reverse("admin:django_clickatell_stop_stopattempt_delete", args=[attempt.pk])).status_code
        == 403
    )
    assert StopAttempt.objects.filter(pk=attempt.pk).exists()


def test_message_change_page_shows_attempts_read_only(client, admin_user, gw):
    (message,) = make(gw, 1)
    gw.fault("http", status=500, times=3)
    stop_message(message)
    stop_message(message)
    client.force_login(admin_user)
    content = client.get(
        reverse("admin:django_clickatell_stop_scheduledmessage_change", args=[message.pk])
    ).content.decode()
    assert "stop attempts (newest first)" in content.lower()
    outcomes = re.findall(r'<td class="field-outcome">\s*<p>(\w+)</p>', content)
    assert outcomes == ["Stopped", "Failed"]
    assert 'name="state"' not in content  # audit fields are read-only


def test_admin_pages_never_show_credentials(client, admin_user, gw):
    messages = make(gw, 2)
    gw.fault("body", body=f"echo {gw.password} {gw.api_id}", message_id=messages[0].apimsgid)
    client.force_login(admin_user)
    response = action(client, messages, post="yes")
    pages = [client.get(reverse(CHANGELIST))]
    pages += [client.get(reverse("admin:django_clickatell_stop_stopattempt_changelist"))]
    pages += [
        client.get(reverse("admin:django_clickatell_stop_stopattempt_change", args=[a.pk]))
        for a in StopAttempt.objects.all()
    ]
    pages += [
        client.get(reverse("admin:django_clickatell_stop_scheduledmessage_change", args=[m.pk]))
        for m in messages
    ]
    rendered = "".join(page.content.decode() for page in pages) + "".join(t for _, t in texts(response))
    assert "[redacted]" in rendered
    assert gw.password not in rendered and gw.api_id not in rendered
