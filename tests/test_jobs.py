"""Stop jobs (``jobs.py``) and their queues: Celery in eager mode and Django's tasks framework.

The tests with real Celery workers and PostgreSQL are in ``test_celery_workers.py``.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.checks import run_checks

from django_clickatell_stop import jobs, services
from django_clickatell_stop.exceptions import ClickatellConfigurationError, ClickatellQueueError
from django_clickatell_stop.models import (
    JobState,
    Outcome,
    ScheduledMessage,
    State,
    StopAttempt,
    StopJob,
    StopJobChunk,
)
from django_clickatell_stop.services import Result
from django_clickatell_stop.signals import job_finished

pytestmark = pytest.mark.django_db

dispatched: list[tuple[StopJob, list[list[int]]]] = []


def record_dispatch(job, chunks):
    """A dispatcher that only records what it was given (the queue is the test)."""
    dispatched.append((job, [list(c) for c in chunks]))


@pytest.fixture
def recorder(monkeypatch):
    dispatched.clear()
    monkeypatch.setitem(jobs.DISPATCHERS, "celery", "tests.test_jobs.record_dispatch")
    return dispatched


@pytest.fixture
def jobs_gw(gw, settings):
    settings.CLICKATELL_STOP = gw.settings(CHUNK_SIZE=3, CONCURRENCY=2, JOB_RETRY_BACKOFF=0)
    return gw


def make(n, gw=None, state=State.SCHEDULED):
    messages = []
    for i in range(n):
        messages.append(ScheduledMessage.objects.create(apimsgid=f"{i + 1:032x}", state=state))
        if gw is not None:
            gw.add_message(messages[-1].apimsgid)
    return messages


def test_enqueue_marks_stoppable_messages_stopping_and_dispatches_on_commit(
    jobs_gw, recorder, django_capture_on_commit_callbacks
):
    messages = make(7)
    ScheduledMessage.objects.filter(pk=messages[0].pk).update(state=State.STOPPED)
    ScheduledMessage.objects.filter(pk=messages[1].pk).update(state=State.FAILED)
    user = get_user_model().objects.create_user("ops")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = jobs.enqueue_stop(ScheduledMessage.objects.all(), trigger="admin", user=user, backend="celery")
    assert recorder == []  # nothing is handed to workers before the rows are committed
    assert len(callbacks) == 1
    callbacks[0]()
    assert job.total == 6 and job.state == JobState.QUEUED and job.requested_by == user
    queued = [m.pk for m in messages[1:]]
    assert sorted(
        ScheduledMessage.objects.filter(state=State.STOPPING, job=job).values_list("pk", flat=True)
    ) == (queued)
    assert ScheduledMessage.objects.get(pk=messages[0].pk).job is None
    ((sent_job, chunks),) = recorder
    assert sent_job == job
    assert chunks == [queued[:3], queued[3:]]
    assert list(job.chunks.values_list("index", "size")) == [(0, 3), (1, 3)]
    assert jobs_gw.calls_to("delmsg") == []  # enqueueing sends nothing
    # An in-process run does not take a queued message away from its job.
    summary = services.stop_messages(ScheduledMessage.objects.filter(pk=queued[0]))
    assert summary.counts[Result.SKIPPED] == 1


def test_enqueue_of_nothing_stoppable_is_a_finished_empty_job(
    jobs_gw, recorder, django_capture_on_commit_callbacks
):
    make(2, state=State.TOO_LATE)
    with django_capture_on_commit_callbacks(execute=True):
        job = jobs.enqueue_stop(ScheduledMessage.objects.all(), backend="celery")
    assert job.total == 0 and job.state == JobState.FINISHED
    assert recorder == []
    assert jobs.progress(job).finished


def test_enqueue_needs_a_queue(jobs_gw, monkeypatch):
    make(1)
    with pytest.raises(ClickatellConfigurationError, match="'inline': use one of celery, tasks"):
        jobs.enqueue_stop(ScheduledMessage.objects.all(), backend="inline")
    monkeypatch.setitem(jobs.DISPATCHERS, "celery", "no_such_module.dispatch")
    with pytest.raises(ClickatellConfigurationError, match=r"pip install 'django-clickatell-stop\[celery\]'"):
        jobs.enqueue_stop(ScheduledMessage.objects.all(), backend="celery")
    assert ScheduledMessage.objects.get().state == State.SCHEDULED  # checked before any row changed
    assert not StopJob.objects.exists()


def test_chunks_stop_their_messages_and_the_last_one_finishes_the_job(
    jobs_gw, recorder, django_capture_on_commit_callbacks
):
    messages = make(5, jobs_gw)
    finished = []
    job_finished.connect(lambda sender, **kw: finished.append(kw["progress"]), weak=False)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            job = jobs.enqueue_stop(ScheduledMessage.objects.all(), backend="celery")
        ((_, chunks),) = recorder
        for index, pks in enumerate(chunks):
            run = jobs.run_chunk(str(job.pk), index, pks)
            assert run.summary is not None and run.retry == []
            with django_capture_on_commit_callbacks(execute=True):
                progress = jobs.complete_chunk(str(job.pk), index, pks)
            assert progress is not None
            assert progress.finished == (index == len(chunks) - 1)
    finally:
        job_finished.receivers.clear()
    job.refresh_from_db()
    assert job.state == JobState.FINISHED and job.started_at and job.finished_at
    assert job.summary[State.STOPPED] == 5 and job.summary[State.STOPPING] == 0
    assert [p.as_dict()["counts"] for p in finished] == [{"stopped": 5}]
    assert finished[0].ok
    assert StopAttempt.objects.filter(job=job, outcome=Outcome.STOPPED).count() == 5
    assert set(StopAttempt.objects.values_list("trigger", flat=True)) == {"service"}
    assert len(jobs_gw.calls_to("delmsg")) == len(messages)
    assert "5 of 5 done (chunks 2/2): 5 stopped" in jobs.progress(job.pk).describe()


def test_a_chunk_run_twice_sends_nothing_the_second_time(
    jobs_gw, recorder, django_capture_on_commit_callbacks
):
    make(3, jobs_gw)
    with django_capture_on_commit_callbacks(execute=True):
        job = jobs.enqueue_stop(ScheduledMessage.objects.all(), backend="celery")
    ((_, [pks]),) = recorder
    jobs.run_chunk(job.pk, 0, pks)
    again = jobs.run_chunk(job.pk, 0, pks)  # redelivered before it was marked done
    assert again.summary is not None and again.summary.counts[Result.ALREADY_STOPPED] == 3
    jobs.complete_chunk(job.pk, 0, pks)
    jobs.complete_chunk(job.pk, 0, pks)
    assert jobs.run_chunk(job.pk, 0, pks).duplicate  # after it was marked done
    assert len(jobs_gw.calls_to("delmsg")) == 3
    assert StopJobChunk.objects.get(job=job).tries == 2


def in_flight(message, job, *, owner):
    """A pending attempt on *message* for *job*, as a worker writes before its call."""
    return StopAttempt.objects.create(
        message=message, trigger="service", sent_id="x", started_at=job.created_at, claimed_by=owner, job=job
    )


def test_a_chunk_leaves_messages_in_flight_elsewhere_alone(
    jobs_gw, recorder, django_capture_on_commit_callbacks
):
    (message,) = make(1, jobs_gw)
    with django_capture_on_commit_callbacks(execute=True):
        job = jobs.enqueue_stop(ScheduledMessage.objects.all(), backend="celery")
    in_flight(message, job, owner=services._owner())  # another worker, alive (this very process)
    run = jobs.run_chunk(job.pk, 0, [message.pk])
    assert run.summary is not None and run.summary.counts[Result.SKIPPED] == 1
    assert run.waiting == [message.pk] and run.again == [message.pk]  # worth a later look
    assert jobs_gw.calls_to("delmsg") == []
    jobs.complete_chunk(job.pk, 0, [message.pk])
    message.refresh_from_db()
    assert message.state == State.STOPPING  # still the other run's to finish


def test_a_redelivered_chunk_takes_over_from_a_dead_worker_on_another_host(
    jobs_gw, recorder, django_capture_on_commit_callbacks
):
    a, b = make(2, jobs_gw)
    with django_capture_on_commit_callbacks(execute=True):
        job = jobs.enqueue_stop(ScheduledMessage.objects.all(), backend="celery")
    # A worker on another host claimed a, then died: its pid cannot be checked from here.
    in_flight(a, job, owner="otherhost:4242")
    assert jobs.run_chunk(job.pk, 0, [a.pk, b.pk]).waiting == [a.pk]  # a retry: maybe it is still alive
    run = jobs.run_chunk(job.pk, 0, [a.pk, b.pk], redelivered=True)  # nobody acknowledged it: it is not
    assert run.again == [] and run.summary is not None and run.summary.counts[Result.STOPPED] == 1
    assert list(a.attempts.order_by("pk").values_list("outcome", flat=True)) == [
        Outcome.INTERRUPTED,
        Outcome.STOPPED,
    ]
    assert ScheduledMessage.objects.get(pk=a.pk).state == State.STOPPED


def test_only_transient_failures_are_offered_for_retry(jobs_gw, recorder, django_capture_on_commit_callbacks):
    a, b, c = make(3, jobs_gw)
    jobs_gw.fault("http", status=503, times=3, message_id=a.apimsgid)  # every try of a: transient
    jobs_gw.fault("error", code=114, times=1, message_id=b.apimsgid)  # cannot route: final
    with django_capture_on_commit_callbacks(execute=True):
        job = jobs.enqueue_stop(ScheduledMessage.objects.all(), backend="celery")
    run = jobs.run_chunk(job.pk, 0, [a.pk, b.pk, c.pk])
    assert run.retry == [a.pk]
    assert jobs.requeue(job.pk, run.retry) == 1
    assert ScheduledMessage.objects.get(pk=a.pk).state == State.STOPPING  # shown as stopping until the retry
    assert not jobs.progress(job).finished
    retry = jobs.run_chunk(job.pk, 0, run.retry)
    assert retry.retry == [] and retry.summary is not None and retry.summary.counts[Result.STOPPED] == 1
    progress = jobs.complete_chunk(job.pk, 0, [a.pk, b.pk, c.pk])
    assert progress is not None and progress.finished and not progress.ok
    assert progress.counts == {"stopped": 2, "failed": 1}


def test_messages_an_aborted_chunk_never_sent_end_failed_not_stopping(
    jobs_gw, recorder, django_capture_on_commit_callbacks
):
    make(3, jobs_gw)
    jobs_gw.fault("error", code=1, times=5)  # ERR 001: the account is rejected
    with django_capture_on_commit_callbacks(execute=True):
        job = jobs.enqueue_stop(ScheduledMessage.objects.all(), backend="celery")
    pks = list(ScheduledMessage.objects.values_list("pk", flat=True))
    run = jobs.run_chunk(job.pk, 0, pks)
    assert run.summary is not None and run.summary.aborted and run.retry == []
    progress = jobs.complete_chunk(job.pk, 0, pks)
    assert progress is not None and progress.finished
    assert not ScheduledMessage.objects.filter(state=State.STOPPING).exists()
    assert set(ScheduledMessage.objects.values_list("state", flat=True)) == {State.FAILED}


def test_gone_jobs_and_chunks_are_nothing_to_do(db):
    import uuid

    assert jobs.run_chunk(uuid.uuid4(), 0, [1]).duplicate
    assert jobs.complete_chunk(uuid.uuid4(), 0, [1]) is None
    assert jobs.finish_job(uuid.uuid4()) is None


# -- Celery (eager: tasks run in this process) ------------------------------------------


@pytest.fixture
def eager_celery():
    pytest.importorskip("celery")
    from tests.celery_app import app

    app.conf.task_always_eager = True
    return app


def test_celery_job_runs_as_a_chord_with_retries(jobs_gw, eager_celery, django_capture_on_commit_callbacks):
    make(7, jobs_gw)
    first = ScheduledMessage.objects.order_by("pk").first()
    assert first is not None
    jobs_gw.fault("http", status=500, times=3, message_id=first.apimsgid)  # fails one whole try
    with django_capture_on_commit_callbacks(execute=True):
        job = jobs.enqueue_stop(ScheduledMessage.objects.all(), backend="celery")
    job.refresh_from_db()
    assert job.state == JobState.FINISHED
    assert job.summary[State.STOPPED] == 7
    assert StopAttempt.objects.filter(message=first).count() == 2  # the retry
    assert StopAttempt.objects.filter(outcome=Outcome.STOPPED).count() == 7
    assert list(job.chunks.values_list("tries", flat=True)) == [2, 1, 1]


def test_celery_gives_up_after_job_max_retries(
    jobs_gw, eager_celery, settings, django_capture_on_commit_callbacks
):
    settings.CLICKATELL_STOP = {**settings.CLICKATELL_STOP, "JOB_MAX_RETRIES": 1, "MAX_RETRIES": 0}
    (message,) = make(1, jobs_gw)
    jobs_gw.fault("http", status=502, times=10)
    with django_capture_on_commit_callbacks(execute=True):
        job = jobs.enqueue_stop(ScheduledMessage.objects.all(), backend="celery")
    message.refresh_from_db()
    assert message.state == State.FAILED
    assert message.attempts.count() == 2  # the first try and one retry
    assert jobs.progress(job).counts == {"failed": 1}


def test_celery_stop_message_task(jobs_gw, eager_celery):
    from django_clickatell_stop.tasks import stop_message

    (message,) = make(1, jobs_gw)
    user = get_user_model().objects.create_user("ops")
    result = stop_message.delay(message.pk, user.pk).get()
    assert result["result"] == "stopped"
    assert stop_message.delay(message.pk).get()["result"] == "already_stopped"  # run twice: sent once
    assert stop_message.delay(10**9).get()["result"] == "missing"
    attempt = StopAttempt.objects.get()
    assert (attempt.trigger, attempt.user) == ("task", user)
    assert len(jobs_gw.calls_to("delmsg")) == 1


# -- Django's tasks framework (the immediate backend runs each task at once) ------------


def test_django_tasks_job(jobs_gw, settings, django_capture_on_commit_callbacks):
    settings.CLICKATELL_STOP = {**settings.CLICKATELL_STOP, "EXECUTION": "tasks"}
    settings.TASKS = {"default": {"BACKEND": _immediate_backend()}}
    make(5, jobs_gw)
    first = ScheduledMessage.objects.order_by("pk").first()
    assert first is not None
    jobs_gw.fault("http", status=500, times=3, message_id=first.apimsgid)
    with django_capture_on_commit_callbacks(execute=True):
        job = jobs.enqueue_stop(ScheduledMessage.objects.all())
    assert job.backend == "tasks"
    progress = jobs.progress(job)
    assert progress.finished and progress.ok and progress.counts == {"stopped": 5}
    assert StopAttempt.objects.filter(message=first).count() == 2


def _immediate_backend() -> str:
    try:
        import django.tasks  # noqa: F401

        return "django.tasks.backends.immediate.ImmediateBackend"
    except ImportError:
        return "django_tasks.backends.immediate.ImmediateBackend"


# -- checks ---------------------------------------------------------------------------


def test_checks_for_jobs(settings, monkeypatch):
    import tests.celery_app  # noqa: F401 - the app, as a project's __init__ would load it

    settings.CLICKATELL_STOP = {
        **settings.CLICKATELL_STOP,
        "EXECUTION": "celery",
        "MAX_REQUESTS_PER_SECOND": 10,
    }
    assert "django_clickatell_stop.W003" in {m.id for m in run_checks()}
    settings.CLICKATELL_STOP["RATE_LIMIT_REDIS_URL"] = "redis://127.0.0.1:6379/0"
    assert {m.id for m in run_checks()} & {
        "django_clickatell_stop.W003",
        "django_clickatell_stop.E005",
    } == set()
    monkeypatch.setitem(jobs.DISPATCHERS, "celery", "no_such_module.dispatch")
    (error,) = [m for m in run_checks() if m.id == "django_clickatell_stop.E005"]
    assert "pip install 'django-clickatell-stop[celery]'" in error.msg
    settings.CLICKATELL_STOP["EXECUTION"] = "rq"
    assert "django_clickatell_stop.E004" in {m.id for m in run_checks()}


def refuse_dispatch(job, chunks):
    raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


@pytest.mark.django_db(transaction=True)
def test_a_queue_that_refuses_the_job_puts_every_message_back(jobs_gw, monkeypatch):
    monkeypatch.setitem(jobs.DISPATCHERS, "celery", "tests.test_jobs.refuse_dispatch")
    scheduled, failed, stopped = make(3, jobs_gw)
    ScheduledMessage.objects.filter(pk=failed.pk).update(state=State.FAILED, error_description="timeout")
    ScheduledMessage.objects.filter(pk=stopped.pk).update(state=State.STOPPED)
    with pytest.raises(
        ClickatellQueueError, match="not queued: ConnectionError: Error 111.*Nothing was sent"
    ):
        jobs.enqueue_stop(ScheduledMessage.objects.all(), backend="celery")
    states = dict(ScheduledMessage.objects.values_list("pk", "state"))
    assert states == {scheduled.pk: State.SCHEDULED, failed.pk: State.FAILED, stopped.pk: State.STOPPED}
    assert not ScheduledMessage.objects.filter(job__isnull=False).exists()
    job = StopJob.objects.get()
    assert job.state == JobState.FINISHED and "Connection refused" in job.error
    progress = jobs.progress(job)
    assert not progress.ok and "not queued (ConnectionError" in progress.describe()
    assert progress.as_dict()["error"] == job.error
    assert jobs_gw.calls_to("delmsg") == []


def test_check_e006_celery_app_without_a_result_backend(settings, monkeypatch):
    pytest.importorskip("celery")
    from celery import current_app

    import tests.celery_app  # noqa: F401 - the app, as a project's __init__ would load it

    settings.CLICKATELL_STOP = {**settings.CLICKATELL_STOP, "EXECUTION": "celery"}
    assert "django_clickatell_stop.E006" not in {m.id for m in run_checks()}
    monkeypatch.setattr(current_app.conf, "result_backend", None)
    (error,) = [m for m in run_checks() if m.id == "django_clickatell_stop.E006"]
    assert "from .celery import app" in (error.hint or "")
