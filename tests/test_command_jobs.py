"""manage.py stopmessage --enqueue / --job / --wait."""

from __future__ import annotations

import json
import re

import pytest

from django_clickatell_stop import jobs
from django_clickatell_stop.models import JobState, ScheduledMessage, State, StopJob

from .test_commands import A, B, C, run, run_failing, tracked
from .test_jobs import dispatched, record_dispatch

pytestmark = pytest.mark.django_db


@pytest.fixture
def recorder(gw, settings, monkeypatch):
    settings.CLICKATELL_STOP = gw.settings(CHUNK_SIZE=2)
    dispatched.clear()
    monkeypatch.setitem(jobs.DISPATCHERS, "celery", f"{record_dispatch.__module__}.record_dispatch")
    return dispatched


def work(job):
    """Do what the workers would: run and complete every chunk the job was given."""
    for sent_job, chunks in dispatched:
        if sent_job.pk == job.pk:
            for index, pks in enumerate(chunks):
                jobs.run_chunk(job.pk, index, pks)
                jobs.complete_chunk(job.pk, index, pks)


def test_enqueue_prints_the_job_id_and_leaves_the_sending_to_workers(
    gw, recorder, django_capture_on_commit_callbacks
):
    for apimsgid in (A, B):
        tracked(apimsgid, gw)
    with django_capture_on_commit_callbacks(execute=True):
        out, _ = run("--all-scheduled", "--yes", "--enqueue")
    job = StopJob.objects.get()
    assert f"Queued 2 messages for stopping on celery: job {job.pk}" in out
    assert f"manage.py stopmessage --job {job.pk} --wait" in out
    assert (job.trigger, job.total) == ("command", 2)
    assert set(ScheduledMessage.objects.values_list("state", flat=True)) == {State.STOPPING}
    assert gw.calls_to("delmsg") == [] and len(recorder) == 1


def test_untracked_ids_are_recorded_and_queued_as_json(gw, recorder, django_capture_on_commit_callbacks):
    gw.add_message(C)
    with django_capture_on_commit_callbacks(execute=True):
        out, _ = run(C, "--enqueue", "celery", "--json")
    job = StopJob.objects.get()
    assert json.loads(out) == {"job": str(job.pk), "queued": 1, "queue": "celery"}
    assert ScheduledMessage.objects.get(apimsgid=C).untracked


def test_job_shows_progress_and_wait_follows_it_to_the_end(
    gw, recorder, monkeypatch, django_capture_on_commit_callbacks
):
    for apimsgid in (A, B, C):
        tracked(apimsgid, gw)
    with django_capture_on_commit_callbacks(execute=True):
        run("--all-scheduled", "--yes", "--enqueue")
    job = StopJob.objects.get()
    out, error = run_failing("--job", str(job.pk), code=1)
    assert f"Job {job.pk}: queued, 0 of 3 done (chunks 0/2): 3 stopping" in out
    assert "not finished yet" in error
    monkeypatch.setattr(
        "django_clickatell_stop.management.commands.stopmessage.time.sleep", lambda seconds: work(job)
    )  # the workers run meanwhile
    out, _ = run("--job", str(job.pk), "--wait")
    assert out.splitlines()[-1] == f"Job {job.pk}: finished, 3 of 3 done (chunks 2/2): 3 stopped"
    job.refresh_from_db()
    assert job.state == JobState.FINISHED
    out, _ = run("--job", str(job.pk), "--json")
    assert json.loads(out)["counts"] == {"stopped": 3} and json.loads(out)["ok"]


def test_a_finished_job_with_failures_exits_1(gw, recorder, django_capture_on_commit_callbacks):
    tracked(A, gw, gw_state="delivered")
    with django_capture_on_commit_callbacks(execute=True):
        run("--all-scheduled", "--yes", "--enqueue")
    job = StopJob.objects.get()
    work(job)
    out, error = run_failing("--job", str(job.pk), code=1)
    assert "1 too late" in out and "not every message was stopped" in error


def test_enqueue_and_wait_on_eager_celery(gw, settings, django_capture_on_commit_callbacks):
    pytest.importorskip("celery")
    from tests.celery_app import app

    app.conf.task_always_eager = True
    settings.CLICKATELL_STOP = gw.settings(EXECUTION="celery")
    tracked(A, gw)
    # The queue gets the job when the enqueueing transaction commits; in this test's
    # transaction that is the end of the block, so --wait follows it in a second run.
    with django_capture_on_commit_callbacks(execute=True):
        out, _ = run(A, "--enqueue")
    assert re.search(r"Queued 1 messages for stopping on celery: job \S+\n", out)
    out, _ = run("--job", str(StopJob.objects.get().pk), "--wait")
    assert out.splitlines()[-1].endswith("finished, 1 of 1 done (chunks 1/1): 1 stopped")
    assert len(gw.calls_to("delmsg")) == 1


def test_job_usage_errors(gw, recorder, monkeypatch):
    assert "No stop job 'nonsense'" in run_failing("--job", "nonsense", code=2)[1]
    missing = "00000000-0000-0000-0000-000000000000"
    assert "No stop job" in run_failing("--job", missing, code=2)[1]
    assert "--wait goes with --enqueue or --job" in run_failing(A, "--wait", code=2)[1]
    monkeypatch.setitem(jobs.DISPATCHERS, "celery", "no_such_module.dispatch")
    tracked(A, gw)
    assert "pip install" in run_failing(A, "--enqueue", code=2)[1]
    assert ScheduledMessage.objects.get().state == State.SCHEDULED


def test_ctrl_c_while_waiting_leaves_the_job_running(
    gw, recorder, monkeypatch, django_capture_on_commit_callbacks
):
    tracked(A, gw)
    with django_capture_on_commit_callbacks(execute=True):
        run(A, "--enqueue")
    job = StopJob.objects.get()

    def interrupt(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr("django_clickatell_stop.management.commands.stopmessage.time.sleep", interrupt)
    assert "the workers carry on" in run_failing("--job", str(job.pk), "--wait", code=130)[1]
    assert ScheduledMessage.objects.get().state == State.STOPPING


@pytest.mark.django_db(transaction=True)
def test_a_queue_that_refuses_the_job_exits_2_with_nothing_left_queued(gw, settings, monkeypatch):
    settings.CLICKATELL_STOP = gw.settings()
    monkeypatch.setitem(jobs.DISPATCHERS, "celery", "tests.test_jobs.refuse_dispatch")
    tracked(A, gw)
    assert "Stop job not queued: ConnectionError" in run_failing(A, "--enqueue", code=2)[1]
    assert ScheduledMessage.objects.get().state == State.SCHEDULED
