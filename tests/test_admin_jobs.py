"""The admin with EXECUTION = "celery": the action queues a job, and the job's page shows its progress."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from django_clickatell_stop import jobs
from django_clickatell_stop.models import ScheduledMessage, State, StopAttempt, StopJob

from .test_admin import CHANGELIST, action, make, texts
from .test_jobs import record_dispatch

pytestmark = pytest.mark.django_db

JOB_CHANGELIST = "admin:django_clickatell_stop_stopjob_changelist"


@pytest.fixture
def queued_settings(gw, settings, monkeypatch):
    settings.CLICKATELL_STOP = gw.settings(EXECUTION="celery", ADMIN_MAX_SELECTION=2)
    from .test_jobs import dispatched

    dispatched.clear()
    monkeypatch.setitem(jobs.DISPATCHERS, "celery", f"{record_dispatch.__module__}.record_dispatch")
    return dispatched


@pytest.fixture
def operator(django_user_model):
    user = django_user_model.objects.create_user("ops", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            codename__in=[
                "view_scheduledmessage",
                "stop_scheduledmessage",
                "view_stopjob",
                "view_stopattempt",
            ]
        )
    )
    return user


def test_the_action_queues_the_stop_and_the_job_page_follows_it(
    client, operator, gw, queued_settings, django_capture_on_commit_callbacks
):
    messages = make(gw, 3)  # more than ADMIN_MAX_SELECTION: workers have no request to time out
    ScheduledMessage.objects.filter(pk=messages[2].pk).update(state=State.TOO_LATE)
    client.force_login(operator)
    confirmation = action(client, messages).content.decode()
    assert "<strong>2</strong> messages will be queued for workers to stop." in confirmation
    with django_capture_on_commit_callbacks(execute=True):
        response = action(client, messages, post="yes")
    assert response.status_code == 302
    job = StopJob.objects.get()
    ((level, text),) = texts(response)
    assert level == "success"
    assert text.startswith("2 messages queued for stopping.")
    assert reverse("admin:django_clickatell_stop_stopjob_change", args=[job.pk]) in text
    assert (job.trigger, job.requested_by, job.total) == ("admin", operator, 2)
    assert len(queued_settings) == 1  # handed to the queue once
    assert (
        gw.calls_to("delmsg") == [] and not StopAttempt.objects.exists()
    )  # the workers send, not the request
    changelist = client.get(reverse(CHANGELIST)).content.decode()
    assert changelist.count("dcs-state-stopping") == 2

    page = client.get(reverse("admin:django_clickatell_stop_stopjob_change", args=[job.pk])).content.decode()
    assert "0/2 done: 2 stopping" in page
    assert f"?job__exact={job.pk}" in page
    listed = client.get(reverse(CHANGELIST), {"job__exact": str(job.pk)}).content.decode()
    assert messages[0].apimsgid in listed and messages[2].apimsgid not in listed

    ((_, [pks]),) = queued_settings
    jobs.run_chunk(job.pk, 0, pks)  # what a worker does
    assert (
        "0/1"
        in client.get(reverse("admin:django_clickatell_stop_stopjob_change", args=[job.pk])).content.decode()
    )
    jobs.complete_chunk(job.pk, 0, pks)
    jobs_list = client.get(reverse(JOB_CHANGELIST)).content.decode()
    assert "2/2 done: 2 stopped" in jobs_list
    page = client.get(reverse("admin:django_clickatell_stop_stopjob_change", args=[job.pk])).content.decode()
    assert "1/1" in page and "Finished" in page
    attempt = StopAttempt.objects.filter(job=job).first()
    assert attempt is not None
    attempt_page = client.get(reverse("admin:django_clickatell_stop_stopattempt_change", args=[attempt.pk]))
    assert str(job.pk) in attempt_page.content.decode()  # the audit trail names the job


def test_a_missing_queue_queues_nothing(client, operator, gw, queued_settings, monkeypatch):
    monkeypatch.setitem(jobs.DISPATCHERS, "celery", "no_such_module.dispatch")
    (message,) = make(gw, 1)
    client.force_login(operator)
    response = action(client, [message], post="yes")
    ((level, text),) = texts(response)
    assert level == "error" and text.startswith("Nothing queued:") and "[celery]" in text
    message.refresh_from_db()
    assert message.state == State.SCHEDULED and not StopJob.objects.exists()


def test_jobs_are_read_only_and_need_the_view_permission(
    client, operator, django_user_model, gw, queued_settings
):
    job = StopJob.objects.create(backend="celery", trigger="admin")
    client.force_login(operator)
    assert client.get(reverse(JOB_CHANGELIST)).status_code == 200
    assert (
        client.post(reverse("admin:django_clickatell_stop_stopjob_delete", args=[job.pk])).status_code == 403
    )
    other = django_user_model.objects.create_user("other", password="pw", is_staff=True)
    client.force_login(other)
    assert (
        client.get(reverse("admin:django_clickatell_stop_stopjob_change", args=[job.pk])).status_code == 403
    )


def test_forged_enqueue_without_the_stop_permission_is_refused(
    client, django_user_model, gw, queued_settings
):
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename="view_scheduledmessage"))
    (message,) = make(gw, 1)
    client.force_login(viewer)
    assert action(client, [message], post="yes").status_code == 403
    assert not StopJob.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_queue_that_refuses_the_job_is_reported_and_nothing_stays_stopping(
    client, operator, gw, queued_settings, monkeypatch
):
    monkeypatch.setitem(jobs.DISPATCHERS, "celery", "tests.test_jobs.refuse_dispatch")
    (message,) = make(gw, 1)
    client.force_login(operator)
    response = action(client, [message], post="yes")
    ((level, text),) = texts(response)
    assert level == "error" and text.startswith("Nothing queued: Stop job not queued: ConnectionError")
    message.refresh_from_db()
    assert message.state == State.SCHEDULED
