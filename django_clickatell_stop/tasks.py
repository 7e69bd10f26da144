"""Celery tasks (``pip install 'django-clickatell-stop[celery]'``).

Celery finds them with ``app.autodiscover_tasks()``. A job is a chord: one
``stop_chunk`` per chunk of ``CHUNK_SIZE`` messages, then ``finish_stop_job``, whose
result is the job's final progress. Every task acknowledges late and is rejected back
to the queue if its worker dies, so a chunk runs again elsewhere; running a chunk twice
stops nothing twice (see ``django_clickatell_stop.jobs``). Only transient failures
(timeouts, HTTP 5xx, ERR 901, interrupted calls) are retried, with exponential backoff.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import Task, chord, shared_task
from django.contrib.auth import get_user_model
from django.db import InterfaceError, OperationalError

from . import jobs
from .conf import conf
from .models import ScheduledMessage, StopJob, Trigger
from .services import StopOutcome, stop_messages

_TASK_OPTIONS: dict[str, Any] = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    # The database went away for a moment: try the whole chunk again (claims are idempotent).
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": True,
    "max_retries": None,  # bounded by JOB_MAX_RETRIES below, read at run time
}


@shared_task(bind=True, name="django_clickatell_stop.stop_chunk", **_TASK_OPTIONS)
def stop_chunk(self: Task[Any, Any], job_id: str, index: int, pks: list[int]) -> dict[str, Any]:
    """Stop one chunk of a job; retry the messages that failed transiently, then mark the chunk done."""
    if self.request.retries > conf.JOB_MAX_RETRIES:  # database errors retried it past the bound
        return jobs.ChunkStep(progress=jobs.complete_chunk(job_id, index, pks)).as_dict()
    # Redis redelivers a task only when its worker never acknowledged it: that worker is gone.
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    step = jobs.process_chunk(job_id, index, pks, retries=self.request.retries, redelivered=redelivered)
    if step.again:
        raise self.retry(
            args=(job_id, index, step.again), countdown=step.delay, max_retries=conf.JOB_MAX_RETRIES
        )
    return step.as_dict()


@shared_task(name="django_clickatell_stop.finish_stop_job", **_TASK_OPTIONS)
def finish_stop_job(job_id: str) -> dict[str, Any]:
    """The chord's last step: the job's final progress (messages by state)."""
    progress = jobs.finish_job(job_id)
    return progress.as_dict() if progress else {}


@shared_task(bind=True, name="django_clickatell_stop.stop_message", **_TASK_OPTIONS)
def stop_message(self: Task[Any, Any], message_id: int, user_id: int | None = None) -> dict[str, Any]:
    """Stop one message now, in the worker; retried with backoff while it fails transiently.

    Returns the outcome (``StopOutcome.as_dict()``). Run twice, it sends nothing the
    second time: the message is already stopped, or in flight in the first run.
    """
    message = ScheduledMessage.objects.filter(pk=message_id).first()
    if message is None:
        return {"message": message_id, "result": "missing"}
    user = get_user_model().objects.filter(pk=user_id).first() if user_id is not None else None
    outcomes: list[StopOutcome] = []
    stop_messages([message], trigger=Trigger.TASK, user=user, concurrency=1, on_outcome=outcomes.append)
    outcome = outcomes[0]
    if outcome.transient and self.request.retries < conf.JOB_MAX_RETRIES:
        raise self.retry(countdown=jobs.retry_delay(self.request.retries), max_retries=conf.JOB_MAX_RETRIES)
    return outcome.as_dict()


def dispatch(job: StopJob, chunks: Sequence[Sequence[int]]) -> None:
    """Send a job's chunks as a chord; the final task's ID is the job's ID."""
    job_id = str(job.pk)
    header = [stop_chunk.s(job_id, index, list(pks)) for index, pks in enumerate(chunks)]
    chord(header)(finish_stop_job.si(job_id).set(task_id=job_id))
