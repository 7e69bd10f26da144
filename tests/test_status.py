"""Status sync, delivery callbacks, the cut-off guard, and stops tied to the site's own objects."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from django_clickatell_stop.models import CallbackEvent, ScheduledMessage, State
from django_clickatell_stop.services import (
    Result,
    StopOutcome,
    schedule_message,
    stop_message,
    stop_messages,
    stop_messages_for,
    stop_pending_for_recipient,
)
from django_clickatell_stop.signals import message_race_lost, message_status_changed
from django_clickatell_stop.status import apply_status, sync_statuses

pytestmark = pytest.mark.django_db

A, B, C = (f"{n:032x}" for n in (0xA, 0xB, 0xC))
SECRET = "callback-secret-71"


def tracked(gw, apimsgid, *, gw_state="scheduled", **fields):
    gw.add_message(apimsgid, state=gw_state)
    return ScheduledMessage.objects.create(apimsgid=apimsgid, **fields)


# -- status sync ------------------------------------------------------------------


def test_sync_finds_the_lost_race(gw):
    message = tracked(gw, A)
    stop_message(message)
    assert message.state == State.STOPPED
    gw.message(A).state = "delivered"  # the stop raced the send and lost
    lost, changed = [], []
    message_race_lost.connect(receiver := lambda sender, message, status, **kw: lost.append(status))
    message_status_changed.connect(
        changed_receiver := lambda sender, message, old_state, new_state, **kw: changed.append(
            (old_state, new_state)
        )
    )
    try:
        summary = sync_statuses(ScheduledMessage.objects.all())
    finally:
        message_race_lost.disconnect(receiver)
        message_status_changed.disconnect(changed_receiver)
    message.refresh_from_db()
    assert summary.counts == {"race_lost": 1}
    assert not summary.ok
    assert (message.state, message.gateway_status, message.stopped_at) == (State.DELIVERED, "004", None)
    assert lost == [4] and changed == [(State.STOPPED, State.DELIVERED)]
    assert [c.command for c in gw.calls] == ["delmsg", "querymsg"]


def test_sync_of_scheduled_and_stopped_messages(gw):
    scheduled = tracked(gw, A)
    delivered = tracked(gw, B, gw_state="delivered")
    summary = sync_statuses(ScheduledMessage.objects.order_by("pk"))
    assert summary.counts == {"unchanged": 1, "delivered": 1}
    scheduled.refresh_from_db()
    delivered.refresh_from_db()
    assert (scheduled.state, scheduled.gateway_status) == (State.SCHEDULED, "011")
    assert delivered.state == State.DELIVERED


def test_sync_unknown_id(gw):
    message = ScheduledMessage.objects.create(apimsgid=C)
    summary = sync_statuses([message])
    message.refresh_from_db()
    assert summary.counts == {"unknown": 1}
    assert (message.state, message.error_code) == (State.UNKNOWN, "103")


def test_sync_api_errors(gw, settings):
    tracked(gw, A)
    tracked(gw, B)
    gw.fault("http", command="querymsg", status=503, times=3, message_id=A)
    settings.CLICKATELL_STOP = {**settings.CLICKATELL_STOP, "MAX_RETRIES": 2}
    summary = sync_statuses(ScheduledMessage.objects.order_by("pk"))
    assert summary.counts == {"failed": 1, "unchanged": 1}
    gw.password = "rotated"
    summary = sync_statuses(ScheduledMessage.objects.order_by("pk"))
    assert "rejected the account" in summary.aborted
    assert summary.counts == {"failed": 1, "not_attempted": 1}


def test_a_late_006_does_not_undo_a_delivery():
    message = ScheduledMessage.objects.create(apimsgid=A, state=State.DELIVERED, gateway_status="004")
    assert not apply_status(message, 6).applied
    message.refresh_from_db()
    assert message.state == State.DELIVERED


def test_a_final_status_is_never_overwritten_by_an_intermediate_one():
    message = ScheduledMessage.objects.create(apimsgid=A, state=State.DELIVERED, gateway_status="004")
    change = apply_status(message, 3)  # "delivered to gateway" arriving late
    assert not change.applied
    message.refresh_from_db()
    assert message.gateway_status == "004"


# -- cut-off guard ----------------------------------------------------------------


def test_stop_inside_the_cutoff_is_a_likely_race_and_rechecked(gw):
    soon = tracked(gw, A, scheduled_for=timezone.now() + timedelta(seconds=60))
    later = tracked(gw, B, scheduled_for=timezone.now() + timedelta(hours=3))
    seen: list[StopOutcome] = []
    stop_messages(ScheduledMessage.objects.all(), on_outcome=seen.append)
    by_id = {o.apimsgid: o for o in seen}
    assert by_id[A].result == Result.STOPPED and by_id[A].race and "likely race" in by_id[A].describe()
    assert not by_id[B].race and "likely race" not in by_id[B].describe()
    soon.refresh_from_db()
    later.refresh_from_db()
    assert soon.needs_recheck and not later.needs_recheck
    # The sync confirms the stop: the flag goes.
    sync_statuses(ScheduledMessage.objects.filter(needs_recheck=True))
    soon.refresh_from_db()
    assert soon.state == State.STOPPED and not soon.needs_recheck


def test_cutoff_is_configurable(gw, settings):
    settings.CLICKATELL_STOP = {**settings.CLICKATELL_STOP, "STOP_CUTOFF_SECONDS": 0}
    tracked(gw, A, scheduled_for=timezone.now() + timedelta(seconds=60))
    seen: list[StopOutcome] = []
    stop_messages(ScheduledMessage.objects.all(), on_outcome=seen.append)
    assert not seen[0].race


# -- stops tied to objects ----------------------------------------------------------


def test_stop_messages_for_an_object_and_for_a_recipient(gw):
    user_model = get_user_model()
    alice, bob = user_model.objects.create(username="alice"), user_model.objects.create(username="bob")
    in_two_hours = timezone.now() + timedelta(hours=2)
    alice_1 = schedule_message("27999000001", "a1", in_two_hours, for_object=alice)
    alice_2 = schedule_message("27999000001", "a2", in_two_hours, for_object=alice)
    bob_1 = schedule_message("27999000002", "b1", in_two_hours, for_object=bob)
    assert set(ScheduledMessage.objects.for_object(alice)) == {alice_1, alice_2}
    summary = stop_messages_for(alice)
    assert summary.counts == {Result.STOPPED: 2}
    bob_1.refresh_from_db()
    assert bob_1.state == State.SCHEDULED and bob_1.for_object == bob
    # An opt-out: every pending message to that number.
    other = schedule_message("27999000002", "no object", in_two_hours)
    elsewhere = schedule_message("27999000003", "someone else", in_two_hours)
    assert stop_pending_for_recipient("+27999000002").counts == {Result.STOPPED: 2}
    states = dict(ScheduledMessage.objects.values_list("pk", "state"))
    assert states[other.pk] == states[bob_1.pk] == State.STOPPED
    assert states[elsewhere.pk] == State.SCHEDULED
    with pytest.raises(ValueError):
        stop_pending_for_recipient("not a number")


# -- the callback receiver -----------------------------------------------------------


def callback(client, method="post", secret=SECRET, **params):
    data = {
        "apiMsgId": A,
        "cliMsgId": "",
        "api_id": "3456789",
        "to": "27999000001",
        "timestamp": "1796300000",
        "from": "",
        "status": "004",
        "charge": "1",
        **params,
    }
    url = reverse("django_clickatell_stop:callback")
    if method == "get":  # the secret travels with the other query parameters
        return client.get(url, {**data, **({"secret": secret} if secret is not None else {})})
    return client.post(url + (f"?secret={secret}" if secret is not None else ""), data)


@pytest.fixture
def with_secret(gw):
    with override_settings(CLICKATELL_STOP={**gw.settings(), "CALLBACK_SECRET": SECRET}):
        yield gw


def test_no_secret_configured_no_endpoint(client, gw):
    assert callback(client).status_code == 404


@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET + "x"])
def test_bad_or_missing_secret_is_403_and_changes_nothing(client, with_secret, secret):
    message = ScheduledMessage.objects.create(apimsgid=A, state=State.STOPPED, gateway_status="006")
    assert callback(client, secret=secret).status_code == 403
    message.refresh_from_db()
    assert message.state == State.STOPPED and not CallbackEvent.objects.exists()


def test_callback_for_another_account_is_refused(client, with_secret):
    assert callback(client, api_id="999").status_code == 403


@pytest.mark.parametrize("method", ["get", "post"])
def test_callback_applies_and_replays_are_idempotent(client, with_secret, method):
    message = ScheduledMessage.objects.create(apimsgid=A, state=State.STOPPED, gateway_status="006")
    assert callback(client, method).content == b"OK"
    assert callback(client, method).content == b"OK (already received)"
    message.refresh_from_db()
    assert message.state == State.DELIVERED  # a race the stop lost
    assert CallbackEvent.objects.count() == 1
    assert CallbackEvent.objects.get().applied


def test_out_of_order_callbacks_keep_the_final_state(client, with_secret):
    message = ScheduledMessage.objects.create(apimsgid=A)
    callback(client, status="004", timestamp="1796300010")
    callback(client, status="003", timestamp="1796300005")  # earlier, intermediate, arriving late
    message.refresh_from_db()
    assert (message.state, message.gateway_status) == (State.DELIVERED, "004")
    assert list(CallbackEvent.objects.order_by("pk").values_list("status", "applied")) == [
        ("004", True),
        ("003", False),
    ]


def test_unknown_ids_are_recorded_not_dropped(client, with_secret):
    assert callback(client, apiMsgId=C).status_code == 200
    event = CallbackEvent.objects.get()
    assert (event.apimsgid, event.message, event.applied) == (C, None, False)


def test_callback_by_climsgid(client, with_secret):
    message = ScheduledMessage.objects.create(climsgid="reminder42")
    callback(client, apiMsgId="", cliMsgId="reminder42", status="006")
    message.refresh_from_db()
    assert message.state == State.STOPPED


@pytest.mark.parametrize("params", [{"status": "x"}, {"apiMsgId": "", "cliMsgId": ""}])
def test_bad_callbacks_are_400(client, with_secret, params):
    assert callback(client, **params).status_code == 400


# -- end to end, all over HTTP ----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_schedule_stop_callback_state_over_http(live_server):
    from django_clickatell_stop.testing import fake_gateway

    with fake_gateway(CALLBACK_SECRET=SECRET) as gw:
        gw.callback_url = f"{live_server.url}{reverse('django_clickatell_stop:callback')}?secret={SECRET}"
        # Sent from this thread when released: the live server shares SQLite's connection,
        # so nothing else may use the database while it answers.
        gw.hold_callbacks = True
        message = schedule_message("27999000001", "Reminder", timezone.now() + timedelta(minutes=30))
        stop_message(message)
        assert gw.release_callbacks() == [200]  # the fake calls back with 006
        racing = schedule_message("27999000001", "Reminder 2", timezone.now() + timedelta(minutes=2))
        stop_message(racing)
        assert gw.release_callbacks() == [200]
        gw.message(racing.apimsgid or "").state = "scheduled"  # ...but the gateway sent it anyway
        gw.advance(3 * 60)
        gw.message(racing.apimsgid or "")  # the clock delivers it, and the fake calls back with 004
        assert gw.release_callbacks() == [200]
    message.refresh_from_db()
    racing.refresh_from_db()
    assert message.state == State.STOPPED
    assert racing.state == State.DELIVERED
    assert [c["status"] for c in gw.callbacks_sent] == ["006", "006", "004"]
    assert gw.callback_answers == [200, 200, 200]
    assert list(CallbackEvent.objects.order_by("pk").values_list("status", "applied")) == [
        ("006", True),
        ("006", True),
        ("004", True),
    ]


def test_preflight_query_skips_the_stop_of_a_delivered_message(gw, settings):
    settings.CLICKATELL_STOP = {**settings.CLICKATELL_STOP, "PREFLIGHT_QUERY": True}
    delivered = tracked(gw, A, gw_state="delivered")
    scheduled = tracked(gw, B)
    summary = stop_messages(ScheduledMessage.objects.order_by("pk"), concurrency=1)
    assert summary.counts == {Result.TOO_LATE: 1, Result.STOPPED: 1}
    assert [(c.command, c.form["apimsgid"]) for c in gw.calls] == [
        ("querymsg", A),
        ("querymsg", B),
        ("delmsg", B),
    ]
    delivered.refresh_from_db()
    scheduled.refresh_from_db()
    assert (delivered.state, delivered.gateway_status) == (State.TOO_LATE, "004")
    assert "no stop sent" in delivered.attempts.get().raw_reply
    assert scheduled.state == State.STOPPED
