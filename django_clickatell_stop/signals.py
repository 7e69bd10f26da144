"""Signals sent by the stop service, after the outcome is committed.

``message_stopped``: Clickatell answered 006. Arguments: ``message``, ``attempt``.
``message_stop_failed``: any other outcome (too late, unknown, failed, interrupted).
Arguments: ``message``, ``attempt``, ``outcome`` (an ``Outcome`` value).
``message_status_changed``: the status sync or a delivery callback changed a message's
state. Arguments: ``message``, ``old_state``, ``new_state``, ``status`` (the code, int).
``message_race_lost``: a message recorded as stopped turned out delivered. Arguments:
``message``, ``status``.
These four are sent with ``sender=ScheduledMessage``.
``job_finished``: a queued stop job is done (``sender=StopJob``). Arguments: ``job``,
``progress``.
"""

from __future__ import annotations

from django.dispatch import Signal

message_stopped = Signal()
message_stop_failed = Signal()
message_status_changed = Signal()
message_race_lost = Signal()
#: ``progress`` is a ``jobs.JobProgress``: the job's messages counted by state.
job_finished = Signal()
