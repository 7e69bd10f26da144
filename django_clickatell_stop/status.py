"""What really happened: Clickatell's later word on a message, from querymsg or a callback.

A stop answered 006 can still lose the race against the send time, so the status sync
(``sync_statuses``) and the delivery-callback receiver (``views``) both feed the same
rule, ``apply_status``: a final status is never overwritten by an intermediate one
(callbacks arrive out of order), and a message recorded as stopped that later shows
delivered is marked ``delivered`` and reported as a lost race.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet

from .client import Transport, get_client
from .codes import UNKNOWN_MESSAGE_ERRORS, MessageStatus, format_code
from .exceptions import ClickatellAPIError, ClickatellAuthenticationError, ClickatellStopError
from .models import ScheduledMessage, State
from .signals import message_race_lost, message_status_changed

logger = logging.getLogger(__name__)

#: Statuses after which nothing more will happen to the message.
FINAL_STATUSES = frozenset({4, 5, 6, 7, 9, 10, 12, 14})
#: Statuses that say the message has left (or is leaving) Clickatell: it can no longer be stopped.
DELIVERED_STATUSES = frozenset({3, 4, 8})


@dataclass(frozen=True, slots=True)
class StatusChange:
    """The result of applying one status to one message."""

    message_pk: int | None
    old_state: str
    new_state: str
    status: int
    applied: bool
    race_lost: bool = False
    reason: str = ""

    @property
    def changed(self) -> bool:
        return self.old_state != self.new_state


def apply_status(message: ScheduledMessage, status: int) -> StatusChange:
    """Record Clickatell's *status* for *message*, unless it is older news.

    Returns what changed. The update is guarded by the state read, so a concurrent
    stop or callback is never overwritten.
    """
    old_state = message.state
    known_final = bool(message.gateway_status) and int(message.gateway_status) in FINAL_STATUSES
    if known_final and status not in FINAL_STATUSES:
        return StatusChange(
            message.pk, old_state, old_state, status, applied=False, reason="older than what we know"
        )
    if old_state == State.DELIVERED and status == MessageStatus.USER_CANCELLED:
        # A message that reached the network was not stopped, whatever arrives late.
        return StatusChange(
            message.pk, old_state, old_state, status, applied=False, reason="already delivered"
        )
    if status == MessageStatus.USER_CANCELLED:
        new_state = State.STOPPED
    elif status in DELIVERED_STATUSES:
        new_state = State.DELIVERED
    else:
        new_state = State(old_state)  # queued, unknown or failed delivery: the status says it all
    race_lost = old_state == State.STOPPED and new_state == State.DELIVERED
    updates: dict[str, Any] = {"gateway_status": format_code(status), "state": new_state}
    if new_state != State.STOPPED or old_state == State.STOPPED:
        updates["needs_recheck"] = False
    if race_lost:
        updates["stopped_at"] = None
    count = ScheduledMessage.objects.filter(pk=message.pk, state=old_state).update(**updates)
    if not count:
        return StatusChange(
            message.pk, old_state, old_state, status, applied=False, reason="changed meanwhile"
        )
    for name, value in updates.items():
        setattr(message, name, value)
    if new_state != old_state:
        message_status_changed.send(
            sender=ScheduledMessage, message=message, old_state=old_state, new_state=new_state, status=status
        )
    if race_lost:
        logger.warning("Race lost: %s was stopped, but Clickatell now reports status %03d", message, status)
        message_race_lost.send(sender=ScheduledMessage, message=message, status=status)
    return StatusChange(message.pk, old_state, new_state, status, applied=True, race_lost=race_lost)


@dataclass(slots=True)
class SyncSummary:
    total: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    aborted: str = ""

    @property
    def ok(self) -> bool:
        return not self.aborted and not self.counts["failed"] and not self.counts["race_lost"]


SyncCallback = Callable[[ScheduledMessage, StatusChange | None, str], None]


def sync_statuses(
    messages: Iterable[ScheduledMessage] | QuerySet[ScheduledMessage],
    *,
    client: Transport | None = None,
    on_outcome: SyncCallback | None = None,
) -> SyncSummary:
    """Ask Clickatell (``querymsg``) for the status of each message and apply it.

    Counts by what happened: ``race_lost``, ``stopped``, ``delivered``, ``unchanged``,
    ``unknown`` (Clickatell does not know the ID) and ``failed`` (no usable answer).
    A rejected account stops the sync (``aborted``). ``on_outcome(message, change,
    error)`` is called for each message.
    """
    client = client or get_client()
    summary = SyncSummary()
    rows = messages.iterator(chunk_size=500) if isinstance(messages, QuerySet) else iter(messages)
    for message in rows:
        summary.total += 1
        if summary.aborted:
            summary.counts["not_attempted"] += 1
            continue
        try:
            reply = client.query(apimsgid=message.apimsgid, climsgid=message.climsgid)
        except ClickatellStopError as err:
            unknown = isinstance(err, ClickatellAPIError) and err.code in UNKNOWN_MESSAGE_ERRORS
            if (
                isinstance(err, ClickatellAPIError)
                and unknown
                and message.state in (State.SCHEDULED, State.FAILED)
            ):
                ScheduledMessage.objects.filter(pk=message.pk, state=message.state).update(
                    state=State.UNKNOWN,
                    error_code=format_code(err.code or 0),
                    error_description=err.description,
                )
            if isinstance(err, ClickatellAuthenticationError):
                summary.aborted = f"Clickatell rejected the account: {err.message}"
            summary.counts["unknown" if unknown else "failed"] += 1
            if on_outcome is not None:
                on_outcome(message, None, str(err))
            continue
        change = apply_status(message, reply.status_code)
        if change.race_lost:
            summary.counts["race_lost"] += 1
        elif change.changed:
            summary.counts[change.new_state] += 1
        else:
            summary.counts["unchanged"] += 1
        if on_outcome is not None:
            on_outcome(message, change, "")
    return summary
