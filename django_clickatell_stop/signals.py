"""Signals sent by the stop service, after the outcome is committed.

``message_stopped``: Clickatell answered 006. Arguments: ``message``, ``attempt``.
``message_stop_failed``: any other outcome (too late, unknown, failed, interrupted).
Arguments: ``message``, ``attempt``, ``outcome`` (an ``Outcome`` value).
Both are sent with ``sender=ScheduledMessage``.
"""

from __future__ import annotations

from django.dispatch import Signal

message_stopped = Signal()
message_stop_failed = Signal()
