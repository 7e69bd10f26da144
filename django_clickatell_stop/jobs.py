"""Bulk stops run by workers: enqueue a job, run its chunks, follow its progress.

This module is the same whichever queue runs the work; ``tasks`` (Celery) and
``dj_tasks`` (Django's tasks framework) only wrap ``run_chunk()`` and
``complete_chunk()`` in their task decorators and decide when to retry.

A job is safe to run more than once, in part or in whole, as queues deliver at least
once: messages are claimed under a row lock (``services.stop_messages(job=...)``), a
chunk counts as done once (``StopJobChunk.done_at``) and the job's progress is read
from the messages' states rather than added up from task results.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from django.db import transaction
from django.db.models import Count, F, QuerySet
from django.utils import timezone
from django.utils.module_loading import import_string

from .conf import conf
from .exceptions import ClickatellConfigurationError, ClickatellQueueError
from .models import (
    STOPPABLE_STATES,
    JobState,
    Outcome,
    ScheduledMessage,
    State,
    StopAttempt,
    StopJob,
    StopJobChunk,
    Trigger,
)
from .parsing import truncate
from .services import (
    Result,
    StopOutcome,
    StopSummary,
    _lock_messages,
    _user_or_none,
    reconcile_interrupted,
    stop_messages,
)
from .signals import job_finished

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser

logger = logging.getLogger(__name__)

#: EXECUTION value -> the dispatcher that hands a job's chunks to that queue.
DISPATCHERS = {
    "celery": "django_clickatell_stop.tasks.dispatch",
    "tasks": "django_clickatell_stop.dj_tasks.dispatch",
}

#: A worker claims its chunk in this many parts, pipelined (see ``run_chunk``).
SUB_CHUNKS = 2

#: Message states counted in a job's progress, in display order. ``stopping`` is what is left to do.
PROGRESS_STATES = (
    State.STOPPING,
    State.STOPPED,
    State.TOO_LATE,
    State.UNKNOWN,
    State.FAILED,
    State.DELIVERED,
    State.SCHEDULED,
)


class Dispatcher(Protocol):
    def __call__(self, job: StopJob, chunks: Sequence[Sequence[int]]) -> None: ...


@dataclass(frozen=True, slots=True)
class JobProgress:
    """Where a job stands: its messages counted by state (``stopping`` = not done yet)."""

    job_id: uuid.UUID
    state: str
    total: int
    counts: dict[str, int]
    chunks_total: int
    chunks_done: int
    #: Why the job could not be queued (its messages were put back); empty when it was.
    error: str = ""

    @property
    def remaining(self) -> int:
        return self.counts.get(State.STOPPING, 0)

    @property
    def done(self) -> int:
        return self.total - self.remaining

    @property
    def finished(self) -> bool:
        return self.state == JobState.FINISHED

    @property
    def ok(self) -> bool:
        """Finished, and every message is stopped."""
        return self.finished and not self.error and self.counts.get(State.STOPPED, 0) == self.total

    def describe(self) -> str:
        counts = ", ".join(
            f"{count} {State(state).label.lower()}" for state, count in self.counts.items() if count
        )
        if self.error:
            return f"Job {self.job_id}: not queued ({self.error}); its messages were put back"
        return (
            f"Job {self.job_id}: {JobState(self.state).label.lower()}, {self.done} of {self.total} done"
            f" (chunks {self.chunks_done}/{self.chunks_total}){': ' + counts if counts else ''}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": str(self.job_id),
            "state": self.state,
            "total": self.total,
            "done": self.done,
            "counts": dict(self.counts),
            "chunks": {"total": self.chunks_total, "done": self.chunks_done},
            "ok": self.ok,
            "error": self.error or None,
        }


@dataclass(slots=True)
class ChunkRun:
    """What one run of a chunk did, and which of its messages want another run.

    ``retry``: failed transiently (now ``failed``; ``requeue()`` them before retrying).
    ``waiting``: in flight in another run of this job (a redelivered task while the
    first still runs, or a dead worker on another host not yet reconciled).
    """

    summary: StopSummary | None
    retry: list[int] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)
    duplicate: bool = False

    @property
    def again(self) -> list[int]:
        """Everything a retry of this chunk should cover."""
        return sorted({*self.retry, *self.waiting})


def get_dispatcher(backend: str) -> Dispatcher:
    """The dispatcher for *backend*; raises ``ClickatellConfigurationError`` if it cannot be used."""
    try:
        path = DISPATCHERS[backend]
    except KeyError:
        raise ClickatellConfigurationError(
            f"CLICKATELL_STOP['EXECUTION'] is {backend!r}: use one of {', '.join(sorted(DISPATCHERS))}."
        ) from None
    try:
        dispatcher: Dispatcher = import_string(path)
    except ImportError as err:
        extra = "celery" if backend == "celery" else "tasks"
        raise ClickatellConfigurationError(
            f"Stop jobs on {backend!r} need: pip install 'django-clickatell-stop[{extra}]' ({err})."
        ) from err
    return dispatcher


def enqueue_stop(
    messages: Iterable[ScheduledMessage] | QuerySet[ScheduledMessage],
    *,
    trigger: str = Trigger.SERVICE,
    user: AbstractBaseUser | AnonymousUser | None = None,
    backend: str | None = None,
) -> StopJob:
    """Queue a stop of *messages* for workers and return the ``StopJob``.

    The stoppable ones (scheduled, or failed last time) move to ``stopping`` and join
    the job, in one transaction; the others are left alone and not counted. The
    chunks are handed to the queue when that transaction commits. *backend* defaults
    to ``EXECUTION`` and must be ``"celery"`` or ``"tasks"``.
    """
    backend = backend or conf.EXECUTION
    dispatch = get_dispatcher(backend)  # before any row changes
    reconcile_interrupted()
    if isinstance(messages, QuerySet):
        selected = list(messages.order_by().values_list("pk", flat=True))
    else:
        selected = [m.pk for m in messages]
    selected.sort()
    size = max(1, conf.CHUNK_SIZE)
    now = timezone.now()
    previously_failed: set[int] = set()
    with transaction.atomic():
        job = StopJob.objects.create(backend=backend, trigger=str(trigger), requested_by=_user_or_none(user))
        for start in range(0, len(selected), size):
            batch = selected[start : start + size]
            _lock_messages(batch)
            batch_queryset = ScheduledMessage.objects.filter(pk__in=batch)
            previously_failed.update(batch_queryset.filter(state=State.FAILED).values_list("pk", flat=True))
            batch_queryset.filter(state__in=STOPPABLE_STATES).update(
                state=State.STOPPING, job=job, updated_at=now
            )
        queued = list(job.messages.filter(state=State.STOPPING).order_by("pk").values_list("pk", flat=True))
        chunks = [queued[start : start + size] for start in range(0, len(queued), size)]
        StopJobChunk.objects.bulk_create(
            StopJobChunk(job=job, index=index, size=len(pks)) for index, pks in enumerate(chunks)
        )
        job.total = len(queued)
        job.save(update_fields=["total"])
        if chunks:
            transaction.on_commit(lambda: _dispatch_or_release(dispatch, job, chunks, previously_failed))
        else:
            _finish(job)
    if job.error:  # the queue refused it just now (outside a caller's transaction)
        raise ClickatellQueueError(f"Stop job not queued: {job.error}. Nothing was sent.")
    logger.info("Queued %d message(s) for stopping as job %s on %s", job.total, job.pk, backend)
    return job


def _dispatch_or_release(
    dispatch: Dispatcher, job: StopJob, chunks: Sequence[Sequence[int]], previously_failed: set[int]
) -> None:
    """Hand the chunks to the queue; if it cannot take them, put the messages back as they were."""
    try:
        dispatch(job, chunks)
    except Exception as err:  # broker down, app not configured, ...: release, never strand
        logger.exception("Stop job %s could not be queued; releasing its messages", job.pk)
        job.error = truncate(f"{type(err).__name__}: {err}", 255)
        with transaction.atomic():
            queued = list(
                job.messages.filter(state=State.STOPPING).order_by("pk").values_list("pk", flat=True)
            )
            _lock_messages(queued)
            now = timezone.now()
            for state, pks in (
                (State.FAILED, [pk for pk in queued if pk in previously_failed]),
                (State.SCHEDULED, [pk for pk in queued if pk not in previously_failed]),
            ):
                ScheduledMessage.objects.filter(pk__in=pks, state=State.STOPPING).update(
                    state=state, job=None, updated_at=now
                )
            job.chunks.update(done_at=now)
            job.save(update_fields=["error"])
            _finish(job)


def run_chunk(
    job_id: uuid.UUID | str, index: int, pks: Sequence[int], *, redelivered: bool = False
) -> ChunkRun:
    """Stop the messages of one chunk (or of its retry); safe to call again for the same chunk.

    *redelivered*: the queue handed this chunk out again because whoever had it never
    acknowledged it (its worker died, maybe on another host, where its pid cannot be
    checked). The chunk's calls still pending then belong to a dead run: they are
    closed as interrupted at once and their messages stopped again, instead of waiting
    for them to grow stale.
    """
    job_id = _uuid(job_id)
    job = StopJob.objects.filter(pk=job_id).select_related("requested_by").first()
    chunk = StopJobChunk.objects.filter(job_id=job_id, index=index).first()
    if job is None or chunk is None or chunk.done_at is not None:
        logger.info("Job %s chunk %s is done or gone: nothing to do", job_id, index)
        return ChunkRun(summary=None, duplicate=True)
    now = timezone.now()
    StopJobChunk.objects.filter(pk=chunk.pk).update(tries=F("tries") + 1)
    StopJob.objects.filter(pk=job.pk, state=JobState.QUEUED).update(state=JobState.RUNNING, started_at=now)
    if redelivered:
        closed = reconcile_interrupted(timedelta(0), message_pks=pks, job=job)
        logger.warning(
            "Job %s chunk %s was redelivered: closed %d call(s) left pending", job.pk, index, closed
        )
    retry: list[int] = []
    skipped: list[int] = []

    def note(outcome: StopOutcome) -> None:
        if outcome.transient and outcome.result in (Result.FAILED, Result.INTERRUPTED):
            retry.append(outcome.message_pk)
        elif outcome.result == Result.SKIPPED:
            skipped.append(outcome.message_pk)

    summary = stop_messages(
        ScheduledMessage.objects.filter(pk__in=pks),
        trigger=job.trigger,
        user=job.requested_by,
        job=job,
        on_outcome=note,
        # Claimed in halves, so that claiming and recording overlap the calls (as they do
        # in process between chunks) instead of leaving the worker idle at each end.
        chunk_size=-(-len(pks) // SUB_CHUNKS),
    )
    waiting = ScheduledMessage.objects.filter(pk__in=skipped, job=job, state=State.STOPPING)
    return ChunkRun(
        summary=summary,
        retry=sorted(retry),
        waiting=sorted(waiting.values_list("pk", flat=True)) if skipped else [],
    )


@dataclass(frozen=True, slots=True)
class ChunkStep:
    """What a queue's task does next: retry ``again`` after ``delay`` seconds, or report ``progress``."""

    again: list[int] = field(default_factory=list)
    delay: float = 0.0
    progress: JobProgress | None = None

    def as_dict(self) -> dict[str, Any]:
        """The task's result."""
        if self.again:
            return {"retrying": self.again}
        return self.progress.as_dict() if self.progress else {}


def process_chunk(
    job_id: uuid.UUID | str, index: int, pks: Sequence[int], *, retries: int, redelivered: bool = False
) -> ChunkStep:
    """One run of a chunk's task, on any queue: run it, then either ask for a retry or complete it.

    A retry (of the transient failures and of messages in flight elsewhere) is asked for
    while *retries* is below ``JOB_MAX_RETRIES``; its failed messages are shown
    ``stopping`` again meanwhile. After that, or when nothing needs another run, the
    chunk is completed.
    """
    run = run_chunk(job_id, index, pks, redelivered=redelivered)
    if run.again and retries < conf.JOB_MAX_RETRIES:
        requeue(job_id, run.retry)
        return ChunkStep(again=run.again, delay=retry_delay(retries))
    return ChunkStep(progress=complete_chunk(job_id, index, pks))


def requeue(job_id: uuid.UUID | str, pks: Sequence[int]) -> int:
    """Put failed messages of a job back to ``stopping`` before their retry runs; return how many."""
    with transaction.atomic():
        _lock_messages(sorted(pks))
        return ScheduledMessage.objects.filter(pk__in=pks, job_id=_uuid(job_id), state=State.FAILED).update(
            state=State.STOPPING, updated_at=timezone.now()
        )


def complete_chunk(job_id: uuid.UUID | str, index: int, pks: Sequence[int]) -> JobProgress | None:
    """Mark a chunk done (once) and finish the job after its last chunk; return its progress.

    Messages of the chunk still queued (the run was aborted before they were sent, e.g.
    the account was rejected) become ``failed`` here, so nothing stays ``stopping``.
    """
    now = timezone.now()
    with transaction.atomic():
        job = StopJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            return None
        in_flight = StopAttempt.objects.filter(message_id__in=pks, outcome=Outcome.PENDING).values(
            "message_id"
        )
        left = list(
            ScheduledMessage.objects.filter(pk__in=pks, job=job, state=State.STOPPING)
            .exclude(pk__in=in_flight)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if left:
            _lock_messages(left)
            ScheduledMessage.objects.filter(pk__in=left, state=State.STOPPING).update(
                state=State.FAILED,
                error_code="",
                error_description="The stop job ended before this message was sent; stop it again.",
                updated_at=now,
            )
        StopJobChunk.objects.filter(job=job, index=index, done_at__isnull=True).update(done_at=now)
        _finish_if_done(job)
    return progress(job)


def finish_job(job_id: uuid.UUID | str) -> JobProgress | None:
    """Finish the job if all its chunks are done (idempotent); return its progress."""
    with transaction.atomic():
        job = StopJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            return None
        _finish_if_done(job)
    return progress(job)


def _finish_if_done(job: StopJob) -> None:
    """Finish *job* (locked by the caller) once every chunk is done; a finished job stays as it is."""
    if job.state != JobState.FINISHED and not job.chunks.filter(done_at__isnull=True).exists():
        _finish(job)


def _finish(job: StopJob) -> None:
    job.summary = _counts(job)
    job.state = JobState.FINISHED
    job.finished_at = timezone.now()
    job.save(update_fields=["summary", "state", "finished_at"])
    transaction.on_commit(lambda: job_finished.send(sender=StopJob, job=job, progress=progress(job)))


def _counts(job: StopJob) -> dict[str, int]:
    by_state = dict(
        job.messages.order_by().values_list("state").annotate(n=Count("pk")).values_list("state", "n")
    )
    return {str(state): by_state.get(state, 0) for state in PROGRESS_STATES}


def job_counts(job: StopJob) -> dict[str, int]:
    """The job's messages by state: as stored when it finished, else counted now (one query)."""
    if job.state == JobState.FINISHED and job.summary:
        return {str(state): int(n) for state, n in job.summary.items()}
    return _counts(job)


def progress(job: StopJob | uuid.UUID | str) -> JobProgress:
    """The job's progress now: messages by state, and chunks done. Raises ``StopJob.DoesNotExist``."""
    job = job if isinstance(job, StopJob) else StopJob.objects.get(pk=job)
    job.refresh_from_db(fields=["state", "total", "summary", "error"])
    chunks = job.chunks.aggregate(total=Count("pk"), done=Count("done_at"))
    counts = job_counts(job)
    return JobProgress(
        job_id=job.pk,
        state=job.state,
        total=job.total,
        counts={state: int(n) for state, n in counts.items() if n},
        chunks_total=chunks["total"],
        chunks_done=chunks["done"],
        error=job.error,
    )


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


def retry_delay(retries: int) -> float:
    """Seconds before retry number *retries* + 1 of a chunk: ``JOB_RETRY_BACKOFF`` doubled each time."""
    return float(conf.JOB_RETRY_BACKOFF * 2**retries)
