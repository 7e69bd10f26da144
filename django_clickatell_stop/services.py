"""The one place that stops messages: the admin action, the command and site code call this.

For each message: claim it (``scheduled``/``failed`` -> ``stopping``) under a row lock and
write its ``StopAttempt`` as started, call Clickatell (concurrently, outside any
transaction), then complete the attempts and move the messages to their final state
with guarded bulk updates, and send the signals.
"""

from __future__ import annotations

import enum
import logging
import math
import os
import re
import socket
import threading
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import TYPE_CHECKING, Any

from django.db import connections, router, transaction
from django.db.models import Model, QuerySet
from django.utils import timezone

from .client import StopResult, Transport, get_client
from .codes import UNKNOWN_MESSAGE_ERRORS, MessageStatus, format_code
from .conf import conf
from .exceptions import (
    ClickatellAPIError,
    ClickatellAuthenticationError,
    ClickatellInvalidIDError,
    ClickatellStopError,
    ClickatellValidationError,
)
from .models import (
    STOPPABLE_STATES,
    Outcome,
    ScheduledMessage,
    State,
    StopAttempt,
    StopJob,
    Trigger,
)
from .parsing import truncate, validate_apimsgid, validate_climsgid
from .signals import message_stop_failed, message_stopped

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser

logger = logging.getLogger(__name__)

MAX_REASON_IDS = 10


class Result(enum.StrEnum):
    """What happened to one message in a run."""

    STOPPED = "stopped"  # Clickatell answered 006 now
    ALREADY_STOPPED = "already_stopped"  # stopped before this run: nothing sent
    TOO_LATE = "too_late"  # Clickatell answered another status
    UNKNOWN = "unknown"  # Clickatell does not know the ID
    FAILED = "failed"  # no usable answer, or an error reply
    INTERRUPTED = "interrupted"  # the call was cut short: state unknown, retry it
    SKIPPED = "skipped"  # not in a stoppable state (too late, unknown, in flight elsewhere)
    NOT_ATTEMPTED = "not_attempted"  # the run stopped before reaching it

    @property
    def ok(self) -> bool:
        return self in (Result.STOPPED, Result.ALREADY_STOPPED)


_RESULT_BY_OUTCOME = {
    Outcome.STOPPED: Result.STOPPED,
    Outcome.TOO_LATE: Result.TOO_LATE,
    Outcome.UNKNOWN: Result.UNKNOWN,
    Outcome.FAILED: Result.FAILED,
    Outcome.INTERRUPTED: Result.INTERRUPTED,
}

#: querymsg statuses that mean the message has left: PREFLIGHT_QUERY then sends no stop.
_GONE_STATUSES = frozenset({3, 4, 8})

_STATE_BY_OUTCOME = {
    Outcome.STOPPED: State.STOPPED,
    Outcome.TOO_LATE: State.TOO_LATE,
    Outcome.UNKNOWN: State.UNKNOWN,
    Outcome.FAILED: State.FAILED,
    # We cannot know whether Clickatell got the call: leave it retryable.
    Outcome.INTERRUPTED: State.FAILED,
}


@dataclass(frozen=True, slots=True)
class StopOutcome:
    """The result for one message; ``attempt_id`` is ``None`` when nothing was sent."""

    message_pk: int
    apimsgid: str | None
    climsgid: str | None
    result: Result
    attempt_id: int | None = None
    gateway_status: str = ""
    reason: str = ""
    untracked: bool = False
    #: Sent within STOP_CUTOFF_SECONDS of the send time: even a 006 may lose the race.
    race: bool = False
    #: Failed in a way a later try may fix (timeout, HTTP 5xx, ERR 901, interrupted call).
    transient: bool = False

    @property
    def ok(self) -> bool:
        return self.result.ok

    @property
    def label(self) -> str:
        return self.apimsgid or f"climsgid={self.climsgid}"

    def describe(self) -> str:
        """One line for people: ID, result, gateway status or reason."""
        parts = [self.label, self.result.value.replace("_", " ")]
        if self.gateway_status:
            code = int(self.gateway_status)
            try:
                parts.append(f"status {format_code(code)} ({MessageStatus(code).description})")
            except ValueError:
                parts.append(f"status {format_code(code)} (unrecognised)")
        if self.reason and (not self.ok or self.race):
            parts.append(self.reason)
        if self.untracked:
            parts.append("[untracked]")
        return " - ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "message": self.message_pk,
            "apimsgid": self.apimsgid,
            "climsgid": self.climsgid,
            "result": self.result.value,
            "ok": self.ok,
            "attempt": self.attempt_id,
            "gateway_status": self.gateway_status or None,
            "reason": self.reason or None,
            "untracked": self.untracked,
            "likely_race": self.race,
        }


@dataclass(slots=True)
class StopSummary:
    """Counts by result for a run, and the reasons for what went wrong."""

    total: int = 0
    counts: Counter[Result] = field(default_factory=Counter)
    #: (result, reason) -> up to MAX_REASON_IDS labels of the messages it hit, and how many.
    reasons: dict[tuple[Result, str], tuple[list[str], int]] = field(default_factory=dict)
    aborted: str = ""
    interrupted: bool = False

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    @property
    def ok(self) -> bool:
        return not self.aborted and not self.interrupted and all(r.ok for r in self.counts.elements())

    def add(self, outcome: StopOutcome) -> None:
        self.counts[outcome.result] += 1
        if not outcome.ok and outcome.reason:
            labels, count = self.reasons.get((outcome.result, outcome.reason), ([], 0))
            if len(labels) < MAX_REASON_IDS:
                labels.append(outcome.label)
            self.reasons[(outcome.result, outcome.reason)] = (labels, count + 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "counts": {result.value: self.counts[result] for result in Result},
            "ok": self.ok,
            "aborted": self.aborted or None,
            "interrupted": self.interrupted,
        }


class StopInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run: every attempt made is recorded; ``summary`` says what was done."""

    def __init__(self, summary: StopSummary) -> None:
        super().__init__("interrupted")
        self.summary = summary


ProgressCallback = Callable[[int, int], None]
OutcomeCallback = Callable[[StopOutcome], None]


def _user_or_none(user: Any) -> Any:
    return user if user is not None and getattr(user, "is_authenticated", False) else None


def stop_message(
    message: ScheduledMessage,
    *,
    trigger: str = Trigger.SERVICE,
    user: AbstractBaseUser | AnonymousUser | None = None,
    client: Transport | None = None,
) -> StopAttempt:
    """Stop one message and return the ``StopAttempt`` that records it.

    A message that is not stoppable (already stopped, too late, or being stopped
    elsewhere) is not sent again: its latest attempt is returned. ``message`` is
    refreshed from the database. Raises ``ClickatellInvalidIDError`` for an ID
    Clickatell could not have issued (nothing sent), ``ClickatellConfigurationError``
    for missing settings, and ``ClickatellStopError`` when there is no attempt to return.
    """
    _validated_ids(message)
    outcomes: list[StopOutcome] = []
    stop_messages(
        [message],
        trigger=trigger,
        user=user,
        concurrency=1,
        client=client,
        on_outcome=outcomes.append,
    )
    message.refresh_from_db()
    attempt_id = outcomes[0].attempt_id if outcomes else None
    attempt = (
        StopAttempt.objects.filter(pk=attempt_id).first()
        if attempt_id
        else message.attempts.order_by("-started_at", "-pk").first()
    )
    if attempt is None:
        raise ClickatellStopError(
            f"{message} is {message.get_state_display()} and has no stop attempt.",
            apimsgid=message.apimsgid,
            climsgid=message.climsgid,
        )
    return attempt


def stop_messages(
    messages: Iterable[ScheduledMessage] | QuerySet[ScheduledMessage],
    *,
    trigger: str = Trigger.SERVICE,
    user: AbstractBaseUser | AnonymousUser | None = None,
    concurrency: int | None = None,
    client: Transport | None = None,
    progress: ProgressCallback | None = None,
    on_outcome: OutcomeCallback | None = None,
    cancel: threading.Event | None = None,
    job: StopJob | None = None,
    chunk_size: int | None = None,
) -> StopSummary:
    """Stop many messages; return a ``StopSummary`` with counts by ``Result``.

    Messages are read and claimed in chunks of ``CHUNK_SIZE``; up to ``concurrency``
    (default ``CONCURRENCY``) calls run at once. An authentication error stops the
    run: messages not yet sent are left untouched and counted ``NOT_ATTEMPTED``.
    ``progress(done, total)`` and ``on_outcome(outcome)`` are called in the calling
    thread. Setting *cancel* (e.g. from a signal handler) sends no new calls, lets those
    in flight finish and be recorded, counts the rest ``NOT_ATTEMPTED`` and returns a
    summary with ``interrupted`` set. A ``KeyboardInterrupt`` raises
    ``StopInterrupted`` once every call made is recorded.
    Raises ``ClickatellConfigurationError`` before anything is sent when settings are
    incomplete. *job* is for workers (``django_clickatell_stop.jobs``): messages that
    job queued (``stopping``, nothing in flight) are claimed too, and attempts link to it.
    *chunk_size* (default ``CHUNK_SIZE``, and never more) is how many are claimed at once.
    """
    client = client or get_client()
    concurrency = max(1, concurrency or conf.CONCURRENCY)
    if transaction.get_connection().in_atomic_block:
        # Our claims and attempts would only commit with the caller's transaction: a crash
        # mid-run would then lose the record of calls that were made.
        logger.warning("stop_messages() called inside a transaction: attempts commit only with it")
    # First, so that messages freed from a crashed run count in this run's selection.
    reconcile_interrupted()
    pks, total = _pks_and_total(messages)
    summary = StopSummary(total=total)
    run = _Run(
        client=client,
        trigger=str(trigger),
        user=_user_or_none(user),
        summary=summary,
        progress=progress,
        on_outcome=on_outcome,
        cancel=cancel or threading.Event(),
        preflight=conf.PREFLIGHT_QUERY,
        job=job,
    )
    executor = (
        ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="clickatell-stop")
        if concurrency > 1
        else None
    )
    try:
        size = min(chunk_size, conf.CHUNK_SIZE) if chunk_size else conf.CHUNK_SIZE
        run.run(_chunks(pks, size), executor)
        summary.interrupted = run.cancel.is_set()
    except KeyboardInterrupt:
        summary.interrupted = True
        raise StopInterrupted(summary) from None
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
    return summary


def stop_messages_for(obj: Model, **kwargs: Any) -> StopSummary:
    """Stop the pending messages scheduled for *obj* (``schedule_message(..., for_object=obj)``).

    E.g. the appointment is cancelled: its reminders are stopped. Keyword arguments go
    to ``stop_messages()``.
    """
    return stop_messages(ScheduledMessage.objects.for_object(obj).stoppable(), **kwargs)


def stop_pending_for_recipient(number: str, **kwargs: Any) -> StopSummary:
    """Stop every pending message to *number* (an opt-out). Keyword arguments go to ``stop_messages()``."""
    recipient = _normalized_recipient(number)
    return stop_messages(ScheduledMessage.objects.filter(recipient=recipient).stoppable(), **kwargs)


def reconcile_interrupted(
    older_than: timedelta | None = None,
    *,
    message_pks: Sequence[int] | None = None,
    job: StopJob | None = None,
) -> int:
    """Close attempts left ``pending`` by a crashed run; return how many.

    A pending attempt belongs to a run that died mid-call when the process that wrote
    it (``claimed_by``, host and pid) no longer exists on this host, or, for any host,
    when it is older than ``older_than`` (default: the longest a chunk of calls can
    take with the current timeouts and retries). Clickatell may or may not have
    received that call, so the attempt is marked ``interrupted`` and its message
    ``failed``, ready to be stopped again. *message_pks* and *job* narrow it to the
    attempts on those messages, or made by that stop job.
    """
    older_than = older_than if older_than is not None else stale_after()
    now = timezone.now()
    cutoff = now - older_than
    # Read without locking first: live runs' pending rows must not be locked here.
    pending = StopAttempt.objects.filter(outcome=Outcome.PENDING)
    if message_pks is not None:
        pending = pending.filter(message_id__in=message_pks)
    if job is not None:
        pending = pending.filter(job=job)
    candidates = pending.values_list("pk", "claimed_by", "started_at")
    stale_pks = [pk for pk, owner, started in candidates if started < cutoff or _owner_is_dead(owner)]
    if not stale_pks:
        return 0
    with transaction.atomic():
        stale = list(
            StopAttempt.objects.select_for_update()
            .filter(pk__in=stale_pks, outcome=Outcome.PENDING)
            .order_by("pk")
            .values_list("pk", "message_id")
        )
        StopAttempt.objects.filter(pk__in=[pk for pk, _ in stale]).update(
            outcome=Outcome.INTERRUPTED,
            finished_at=now,
            error_description="Interrupted: the process stopped before Clickatell's reply was recorded.",
        )
        message_pks = sorted({m for _, m in stale})
        _lock_messages(message_pks)
        ScheduledMessage.objects.filter(pk__in=message_pks, state=State.STOPPING).update(
            state=State.FAILED,
            error_code="",
            error_description="Previous stop was interrupted; stop it again.",
            updated_at=now,
        )
    if stale:
        logger.warning("Reconciled %d interrupted stop attempt(s)", len(stale))
    return len(stale)


def _owner() -> str:
    """Who is making calls: host and pid, so that a later run can tell a dead owner."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}"


def _owner_is_dead(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname()[:40] or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, but someone else's
        return False
    return False


def _lock_messages(pks: Sequence[int]) -> None:
    """Lock rows in pk order before updating them, so concurrent runs cannot deadlock."""
    list(ScheduledMessage.objects.select_for_update().filter(pk__in=pks).order_by("pk").values_list("pk"))


def stale_after() -> timedelta:
    """How long a pending attempt may legitimately wait for its reply."""
    per_call = (conf.CONNECT_TIMEOUT + conf.TIMEOUT) * (conf.MAX_RETRIES + 1) + conf.RETRY_BACKOFF * (
        2 ** (conf.MAX_RETRIES + 1)
    )
    # Two chunks: the next one is claimed while the current one is still being sent.
    calls_per_chunk = 2 * -(-conf.CHUNK_SIZE // max(1, conf.CONCURRENCY))
    return timedelta(seconds=per_call * calls_per_chunk + 60)


#: sendmsg accepts deliv_time up to 7 days ahead, in whole minutes.
MAX_DELIVERY_MINUTES = 10080
#: Three concatenated parts of 153 GSM characters.
MAX_BODY_CHARS = 459
_RECIPIENT_RE = re.compile(r"[1-9][0-9]{7,14}")


def _normalized_recipient(number: str) -> str:
    """*number* as stored and sent (international digits, no ``+``), or ``ClickatellValidationError``."""
    digits = number.strip().removeprefix("+") if isinstance(number, str) else ""
    if not _RECIPIENT_RE.fullmatch(digits):
        raise ClickatellValidationError(
            f"Invalid recipient {truncate(repr(number), 40)}: use the international format, e.g. 27999000001"
        )
    return digits


def schedule_message(
    recipient: str,
    body: str,
    send_at: datetime,
    *,
    climsgid: str | None = None,
    for_object: Model | None = None,
    client: Transport | None = None,
) -> ScheduledMessage:
    """Schedule an SMS with Clickatell's ``sendmsg`` and track it; return the new message.

    *recipient* is an international number (digits, optional leading ``+``); *send_at*
    an aware datetime between one minute and seven days from now (sent as whole
    minutes, ``deliv_time``, rounded up). A unique *climsgid* is generated when none
    is given. *for_object* ties the message to one of your objects, for
    ``stop_messages_for(obj)``. Raises ``ClickatellValidationError`` before any call for bad input, and
    ``ClickatellAPIError`` / ``ClickatellTransportError`` if Clickatell refuses or
    cannot be reached (nothing is stored then).
    """
    number = _normalized_recipient(recipient)
    if not isinstance(body, str) or not body.strip():
        raise ClickatellValidationError("The message body is empty.")
    if len(body) > MAX_BODY_CHARS:
        raise ClickatellValidationError(
            f"The message body has {len(body)} characters; at most {MAX_BODY_CHARS}."
        )
    if timezone.is_naive(send_at):
        raise ClickatellValidationError("send_at must be an aware datetime.")
    now = timezone.now()
    minutes = math.ceil((send_at - now).total_seconds() / 60)
    if not 1 <= minutes <= MAX_DELIVERY_MINUTES:
        raise ClickatellValidationError(
            f"send_at must be between 1 minute and 7 days from now (it is {minutes} minutes away)."
        )
    climsgid = validate_climsgid(climsgid) if climsgid is not None else uuid.uuid4().hex
    params = {"to": number, "text": body, "deliv_time": str(minutes), "climsgid": climsgid}
    if len(body) > 160:
        params["concat"] = str(math.ceil(len(body) / 153))
    result = (client or get_client()).send(params)
    return ScheduledMessage.objects.create(
        apimsgid=validate_apimsgid(result.reply.apimsgid),
        climsgid=climsgid,
        recipient=number,
        body=body,
        scheduled_for=now + timedelta(minutes=minutes),
        for_object=for_object,
    )


def track_untracked(
    *, apimsgid: str | None = None, climsgid: str | None = None
) -> tuple[ScheduledMessage, bool]:
    """The message with this ID, creating an ``untracked`` record if none exists.

    For stops of IDs the site never recorded (an operator has the ID from elsewhere):
    the audit trail stays complete. Raises ``ClickatellInvalidIDError`` for a bad ID.
    """
    if apimsgid:
        apimsgid = validate_apimsgid(apimsgid).lower()
        lookup = {"apimsgid": apimsgid}
    elif climsgid:
        lookup = {"climsgid": validate_climsgid(climsgid)}
    else:
        raise ClickatellInvalidIDError("Give an apimsgid or a climsgid.")
    return ScheduledMessage.objects.get_or_create(**lookup, defaults={"untracked": True})


# ---------------------------------------------------------------------------


def _validated_ids(message: ScheduledMessage) -> None:
    if message.apimsgid:
        validate_apimsgid(message.apimsgid)
    if message.climsgid:
        validate_climsgid(message.climsgid)
    if not (message.apimsgid or message.climsgid):
        raise ClickatellInvalidIDError(f"Message {message.pk} has neither an apimsgid nor a climsgid.")


def _pks_and_total(
    messages: Iterable[ScheduledMessage] | QuerySet[ScheduledMessage],
) -> tuple[Iterator[int], int]:
    if isinstance(messages, QuerySet):
        queryset = messages.order_by().values_list("pk", flat=True)
        total = queryset.count()
        # An explicit ordering keeps lock order stable across concurrent runs.
        return queryset.order_by("pk").iterator(chunk_size=2000), total
    pks = [m.pk for m in messages]
    return iter(pks), len(pks)


def _chunks(iterator: Iterator[int], size: int) -> Iterator[list[int]]:
    while chunk := list(islice(iterator, max(1, size))):
        yield chunk


class _NotSent:
    """Marker: the call was never made (the run was aborted before it)."""


_NOT_SENT = _NotSent()
CallResult = StopResult | ClickatellStopError | _NotSent


@dataclass
class _Batch:
    """One claimed chunk: its rows, their pending attempts, and the calls' results so far."""

    claimed: list[ScheduledMessage]
    attempts: dict[int, StopAttempt]
    #: Messages due within STOP_CUTOFF_SECONDS: the stop is sent, but it is a race.
    racing: set[int] = field(default_factory=set)
    started: set[int] = field(default_factory=set)
    results: dict[int, CallResult] = field(default_factory=dict)
    futures: dict[Future[CallResult], int] = field(default_factory=dict)


@dataclass
class _Run:
    client: Transport
    trigger: str
    user: Any
    summary: StopSummary
    progress: ProgressCallback | None
    on_outcome: OutcomeCallback | None
    cancel: threading.Event
    preflight: bool = False
    job: StopJob | None = None
    abort: threading.Event = field(default_factory=threading.Event)

    @property
    def stopping(self) -> bool:
        """No new calls: the account was rejected, or the caller cancelled the run."""
        return self.abort.is_set() or self.cancel.is_set()

    def report(self, outcome: StopOutcome) -> None:
        self.summary.add(outcome)
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        if self.progress is not None:
            self.progress(self.summary.done, self.summary.total)

    def report_many(self, pks: Sequence[int], result: Result, reason: str) -> None:
        rows = ScheduledMessage.objects.filter(pk__in=pks).values_list(
            "pk", "apimsgid", "climsgid", "untracked"
        )
        for pk, apimsgid, climsgid, untracked in rows:
            self.report(StopOutcome(pk, apimsgid, climsgid, result, reason=reason, untracked=untracked))

    # -- one chunk: claim, call, record ------------------------------------------

    def run(self, chunks: Iterator[list[int]], executor: ThreadPoolExecutor | None) -> None:
        """Claim, call and record chunk after chunk.

        With a pool, the next chunk is claimed and queued while the current one is still
        being sent, so the pool never runs dry at a chunk boundary; at most two chunks
        are held in memory.
        """
        in_flight: deque[_Batch] = deque()
        try:
            for chunk in chunks:
                if self.stopping:
                    self.report_many(chunk, Result.NOT_ATTEMPTED, self.summary.aborted or "run interrupted")
                    continue
                batch = self._claim(chunk)
                if batch is None:
                    continue
                if executor is None:
                    try:
                        for row in batch.claimed:
                            batch.results[row.pk] = self._call(row, batch.started)
                    finally:
                        self._record(batch)
                    continue
                batch.futures = {
                    executor.submit(self._call, row, batch.started): row.pk for row in batch.claimed
                }
                in_flight.append(batch)
                while len(in_flight) > 1:
                    self._finish(in_flight[0])
                    in_flight.popleft()
            while in_flight:
                self._finish(in_flight[0])
                in_flight.popleft()
        except KeyboardInterrupt:
            # Send nothing new; let calls already on the wire finish so they are recorded.
            self.abort.set()
            for batch in in_flight:
                for future in batch.futures:
                    future.cancel()
            for batch in in_flight:
                self._finish(batch)
            raise

    def _finish(self, batch: _Batch) -> None:
        """Wait for a batch's calls (cancelled ones count as not sent) and record them."""
        for future, pk in batch.futures.items():
            if not future.cancelled():
                batch.results[pk] = future.result()
        self._record(batch)

    def _claim(self, pks: list[int]) -> _Batch | None:
        now = timezone.now()
        unclaimed: list[StopOutcome] = []
        claimed: list[ScheduledMessage] = []
        attempts: list[StopAttempt] = []
        with transaction.atomic():
            rows = list(ScheduledMessage.objects.select_for_update().filter(pk__in=pks).order_by("pk"))
            queued = self._queued_for_job(rows)
            for row in rows:
                if row.state not in STOPPABLE_STATES and row.pk not in queued:
                    result = Result.ALREADY_STOPPED if row.state == State.STOPPED else Result.SKIPPED
                    reason = (
                        ""
                        if result == Result.ALREADY_STOPPED
                        else f"not stoppable: {row.get_state_display().lower()}"
                    )
                    unclaimed.append(
                        self._outcome(row, result, reason=reason, gateway_status=row.gateway_status)
                    )
                    continue
                try:
                    _validated_ids(row)
                except ClickatellInvalidIDError as err:
                    unclaimed.append(self._outcome(row, Result.FAILED, reason=str(err)))
                    continue
                claimed.append(row)
            if claimed:
                owner = _owner()
                for row in claimed:
                    row._previous_state = row.state  # type: ignore[attr-defined]
                    row.state = State.STOPPING
                ScheduledMessage.objects.filter(pk__in=[r.pk for r in claimed]).exclude(
                    state=State.STOPPING
                ).update(state=State.STOPPING, updated_at=now)
                attempts = StopAttempt.objects.bulk_create(
                    [
                        StopAttempt(
                            message=row,
                            trigger=self.trigger,
                            user=self.user,
                            sent_id=f"apimsgid={row.apimsgid}"
                            if row.apimsgid
                            else f"climsgid={row.climsgid}",
                            started_at=now,
                            claimed_by=owner,
                            job=self.job,
                        )
                        for row in claimed
                    ]
                )
        # Callbacks run outside the transaction: a slow one must not hold row locks.
        for outcome in unclaimed:
            self.report(outcome)
        if not claimed:
            return None
        cutoff = now + timedelta(seconds=conf.STOP_CUTOFF_SECONDS)
        racing = {row.pk for row in claimed if row.scheduled_for is not None and row.scheduled_for <= cutoff}
        return _Batch(claimed, {a.message_id: a for a in attempts}, racing=racing)

    def _queued_for_job(self, rows: list[ScheduledMessage]) -> set[int]:
        """Rows this run's job queued and nobody is calling about yet (no pending attempt)."""
        if self.job is None:
            return set()
        queued = {row.pk for row in rows if row.state == State.STOPPING and row.job_id == self.job.pk}
        if queued:
            queued -= set(
                StopAttempt.objects.filter(message_id__in=queued, outcome=Outcome.PENDING).values_list(
                    "message_id", flat=True
                )
            )
        return queued

    def _call(self, row: ScheduledMessage, started: set[int]) -> CallResult:
        if self.stopping:
            return _NOT_SENT
        started.add(row.pk)
        try:
            if self.preflight:
                # Ask first: a message already on its way needs no stop call.
                known = self.client.query(apimsgid=row.apimsgid, climsgid=row.climsgid)
                if known.status_code in _GONE_STATUSES:
                    text = f"{known.message_id} status {known.status_display} (querymsg; no stop sent)"
                    return StopResult(reply=known, http_status=200, raw_reply=text, tries=1)
            return self.client.stop(apimsgid=row.apimsgid, climsgid=row.climsgid)
        except ClickatellAuthenticationError as err:
            self.abort.set()
            self.summary.aborted = f"Clickatell rejected the account: {err.message}"
            return err
        except ClickatellStopError as err:
            return err
        except Exception as err:  # a bug must not lose the attempt: record it, carry on
            logger.exception("Unexpected error stopping %s", row)
            return ClickatellStopError(f"Internal error: {type(err).__name__}: {err}")

    def _record(self, batch: _Batch) -> None:
        claimed, attempts, started, results = batch.claimed, batch.attempts, batch.started, batch.results
        now = timezone.now()
        sent: list[tuple[ScheduledMessage, StopAttempt]] = []
        not_sent: list[ScheduledMessage] = []
        transient: set[int] = set()
        for row in claimed:
            result = results.get(row.pk)
            if isinstance(result, _NotSent) or (result is None and row.pk not in started):
                not_sent.append(row)
                continue
            attempt = attempts[row.pk]
            _apply(row, attempt, result, now)
            if result is None or (isinstance(result, ClickatellStopError) and result.transient):
                transient.add(row.pk)
            if row.pk in batch.racing and attempt.outcome == Outcome.STOPPED:
                row.needs_recheck = True  # 006 this close to the send time: the sync checks it again
            sent.append((row, attempt))
        with transaction.atomic():
            _lock_messages(sorted(row.pk for row in claimed))
            if sent:
                _update_many(
                    StopAttempt,
                    _ATTEMPT_RESULT_FIELDS,
                    [a for _, a in sent],
                    only_if={"outcome": Outcome.PENDING},
                )
                count = _update_many(
                    ScheduledMessage,
                    _MESSAGE_RESULT_FIELDS,
                    [r for r, _ in sent],
                    only_if={"state": State.STOPPING},
                )
                if count != len(sent):  # someone reconciled our claim as stale: theirs is the safer state
                    logger.warning(
                        "%d of %d messages were no longer ours to update", len(sent) - count, len(sent)
                    )
            if not_sent:
                StopAttempt.objects.filter(
                    pk__in=[attempts[r.pk].pk for r in not_sent],
                    outcome=Outcome.PENDING,
                ).delete()
                for row in not_sent:
                    row.state = row._previous_state  # type: ignore[attr-defined]
                _update_many(ScheduledMessage, ("state",), not_sent, only_if={"state": State.STOPPING})
        for row, attempt in sent:
            outcome = Outcome(attempt.outcome)
            if outcome == Outcome.STOPPED:
                message_stopped.send(sender=ScheduledMessage, message=row, attempt=attempt)
            else:
                message_stop_failed.send(
                    sender=ScheduledMessage,
                    message=row,
                    attempt=attempt,
                    outcome=outcome,
                )
            reason = attempt.error_display or (
                attempt.gateway_status_description if outcome != Outcome.STOPPED else ""
            )
            if row.pk in batch.racing:
                window = f"{conf.STOP_CUTOFF_SECONDS:g}s"
                reason = f"likely race: due within {window} of its send time. {reason}".strip()
            self.report(
                self._outcome(
                    row,
                    _RESULT_BY_OUTCOME[outcome],
                    attempt_id=attempt.pk,
                    gateway_status=attempt.gateway_status,
                    reason=reason,
                    race=row.pk in batch.racing,
                    transient=row.pk in transient,
                )
            )
        for row in not_sent:
            self.report(
                self._outcome(
                    row,
                    Result.NOT_ATTEMPTED,
                    reason=self.summary.aborted or "run interrupted",
                )
            )

    @staticmethod
    def _outcome(row: ScheduledMessage, result: Result, **kwargs: Any) -> StopOutcome:
        return StopOutcome(
            row.pk,
            row.apimsgid,
            row.climsgid,
            result,
            untracked=row.untracked,
            **kwargs,
        )


def _apply(
    row: ScheduledMessage,
    attempt: StopAttempt,
    result: CallResult | None,
    now: datetime,
) -> None:
    """Fill in *attempt* and *row* (in memory) from one call's result."""
    attempt.finished_at = now
    if result is None:
        attempt.outcome = Outcome.INTERRUPTED
        attempt.error_description = "Interrupted before Clickatell's reply arrived; stop it again."
        row.error_code, row.error_description = "", attempt.error_description
    elif isinstance(result, StopResult):
        attempt.http_status = result.http_status
        attempt.raw_reply = result.raw_reply
        attempt.gateway_status = row.gateway_status = format_code(result.reply.status_code)
        row.error_code = row.error_description = ""
        if result.reply.stopped:
            attempt.outcome = Outcome.STOPPED
            row.stopped_at = now
        elif result.reply.status_code == MessageStatus.MESSAGE_UNKNOWN:
            attempt.outcome = Outcome.UNKNOWN
        else:
            attempt.outcome = Outcome.TOO_LATE
    else:
        assert isinstance(result, ClickatellStopError)
        attempt.http_status = result.http_status
        attempt.raw_reply = result.raw_reply or ""
        if isinstance(result, ClickatellAPIError) and result.code is not None:
            attempt.error_code = format_code(result.code)
            attempt.error_description = truncate(result.description, 255)
        else:
            attempt.error_description = truncate(result.message, 255)
        is_unknown = isinstance(result, ClickatellAPIError) and result.code in UNKNOWN_MESSAGE_ERRORS
        attempt.outcome = Outcome.UNKNOWN if is_unknown else Outcome.FAILED
        row.error_code, row.error_description = (
            attempt.error_code,
            attempt.error_description,
        )
    row.state = _STATE_BY_OUTCOME[Outcome(attempt.outcome)]


_ATTEMPT_RESULT_FIELDS = (
    "finished_at",
    "outcome",
    "http_status",
    "gateway_status",
    "error_code",
    "error_description",
    "raw_reply",
)
_MESSAGE_RESULT_FIELDS = (
    "state",
    "needs_recheck",
    "gateway_status",
    "error_code",
    "error_description",
    "stopped_at",
    "updated_at",
)


def _update_many(
    model: type[Model], fields: Sequence[str], objects: Sequence[Model], *, only_if: dict[str, str]
) -> int:
    """Write *fields* of each object with one ``executemany`` of a guarded UPDATE; return rows changed.

    Django's ``bulk_update`` builds a ``CASE`` expression per field and row, whose
    compilation costs milliseconds per row; a parameterised statement run for every
    row costs microseconds and still counts as one query.
    """
    if not objects:
        return 0
    if "updated_at" in fields:
        for obj in objects:
            obj.updated_at = timezone.now()  # type: ignore[attr-defined]
    connection = connections[router.db_for_write(model)]
    quote = connection.ops.quote_name
    by_name = {f.name: f for f in model._meta.concrete_fields}
    model_fields = [by_name[name] for name in fields]
    assignments = ", ".join(f"{quote(str(f.column))} = %s" for f in model_fields)
    guards = "".join(f" AND {quote(str(by_name[name].column))} = %s" for name in only_if)
    table, pk = quote(model._meta.db_table), quote(str(model._meta.pk.column))
    sql = f"UPDATE {table} SET {assignments} WHERE {pk} = %s{guards}"
    params = [
        [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in model_fields]
        + [obj.pk, *only_if.values()]
        for obj in objects
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
        return int(cursor.rowcount) if cursor.rowcount is not None and cursor.rowcount >= 0 else len(objects)
