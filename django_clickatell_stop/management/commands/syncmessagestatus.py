from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from django_clickatell_stop.exceptions import ClickatellConfigurationError
from django_clickatell_stop.models import ScheduledMessage, State
from django_clickatell_stop.status import StatusChange, sync_statuses

from ._selection import EXIT_NOT_STOPPED, EXIT_USAGE, SelectionMixin

#: What the sync selects: what may still change (a stop can still lose its race).
SYNCED_STATES = (State.SCHEDULED, State.FAILED, State.STOPPED, State.TOO_LATE)

HELP = """\
Ask Clickatell (querymsg) what became of tracked messages, and record it.

A stop answered 006 can still have lost the race against the send time: a message
recorded as stopped that Clickatell now reports delivered is marked "delivered" and
reported as a lost race. Name messages by ID, or select those scheduled, failed,
stopped or too late with the flags below; --needs-recheck picks the stops made within
STOP_CUTOFF_SECONDS of their send time.

Exit status:
  0    done; no race was lost and every query was answered
  1    a race was lost, or some queries got no usable answer
  2    usage or configuration error, or Clickatell rejected the account
"""


class Command(SelectionMixin, BaseCommand):
    help = HELP

    def add_arguments(self, parser: CommandParser) -> None:
        self.add_selection_arguments(parser, "check", "scheduled, failed, stopped or too late")
        parser.add_argument(
            "--needs-recheck", action="store_true", help="stops made inside the cut-off window"
        )
        parser.add_argument(
            "--json", action="store_true", help="one JSON object per message, then a summary object"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        ids = self._validated_ids(options)
        selection = self._selection(options)
        query = Q(pk__in=[])
        for kind, value in ids:
            query |= Q(**{kind: value})
        if selection is not None:
            query |= Q(state__in=SYNCED_STATES) & selection
        if options["needs_recheck"]:
            query |= Q(needs_recheck=True)
        if not ids and selection is None and not options["needs_recheck"]:
            raise CommandError("Name messages or select them (see --help).", returncode=EXIT_USAGE)

        def on_outcome(message: ScheduledMessage, change: StatusChange | None, error: str) -> None:
            line: dict[str, Any] = {
                "apimsgid": message.apimsgid,
                "climsgid": message.climsgid,
                "old_state": change.old_state if change else message.state,
                "new_state": change.new_state if change else message.state,
                "status": f"{change.status:03d}" if change else None,
                "race_lost": bool(change and change.race_lost),
                "error": error or None,
            }
            if options["json"]:
                self.stdout.write(json.dumps(line))
            elif options["verbosity"]:
                label = message.apimsgid or f"climsgid={message.climsgid}"
                if change is None:
                    self.stdout.write(f"{label} - {error}", self.style.ERROR)
                else:
                    what = f"{change.old_state} -> {change.new_state}" if change.changed else change.new_state
                    lost = " - RACE LOST: it was stopped, but went out" if change.race_lost else ""
                    style = self.style.ERROR if change.race_lost else self.style.SUCCESS
                    self.stdout.write(f"{label} - {what} - status {change.status:03d}{lost}", style)

        try:
            summary = sync_statuses(
                ScheduledMessage.objects.filter(query).order_by("pk"), on_outcome=on_outcome
            )
        except ClickatellConfigurationError as err:
            raise CommandError(f"Configuration error: {err}", returncode=EXIT_USAGE) from None
        counts = ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in summary.counts.most_common())
        if options["json"]:
            self.stdout.write(
                json.dumps({"summary": {"total": summary.total, "counts": dict(summary.counts)}})
            )
        else:
            self.stdout.write(f"{summary.total} messages: {counts or 'nothing to do'}.")
        if summary.aborted:
            raise CommandError(summary.aborted, returncode=EXIT_USAGE)
        if not summary.ok:
            raise CommandError("Some races were lost or queries failed.", returncode=EXIT_NOT_STOPPED)
