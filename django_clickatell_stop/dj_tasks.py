"""Stop jobs on Django's tasks framework: ``django.tasks`` (Django 6) or the ``django-tasks`` backport.

Set ``CLICKATELL_STOP["EXECUTION"] = "tasks"``; the tasks run on the site's default
task backend (``TASKS`` setting) and its workers. The framework has no chords or
retries, so each chunk is its own task: the one that completes the last chunk finishes
the job, and a chunk with transient failures enqueues its own retry (deferred by
``JOB_RETRY_BACKOFF`` where the backend supports ``run_after``). Delivery guarantees
are the backend's; running a chunk twice stops nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.utils import timezone

from . import jobs
from .models import StopJob

try:
    from django.tasks import task
except ImportError:  # Django 5.2: the backport
    from django_tasks import task  # type: ignore[no-redef]


@task
def stop_chunk(job_id: str, index: int, pks: list[int], retries: int = 0) -> dict[str, Any]:
    """Stop one chunk of a job; enqueue a retry of its transient failures, or mark it done."""
    step = jobs.process_chunk(job_id, index, pks, retries=retries)
    if step.again:
        retry = stop_chunk
        if stop_chunk.get_backend().supports_defer:
            retry = stop_chunk.using(run_after=timezone.now() + timedelta(seconds=step.delay))
        retry.enqueue(job_id, index, step.again, retries + 1)
    return step.as_dict()


def dispatch(job: StopJob, chunks: Sequence[Sequence[int]]) -> None:
    """Enqueue one task per chunk on the default task backend."""
    for index, pks in enumerate(chunks):
        stop_chunk.enqueue(str(job.pk), index, list(pks))
