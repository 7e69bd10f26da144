"""What stopmessage and syncmessagestatus share: naming and selecting messages."""

from __future__ import annotations

from argparse import RawDescriptionHelpFormatter
from datetime import datetime
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from django_clickatell_stop.exceptions import ClickatellInvalidIDError
from django_clickatell_stop.parsing import validate_apimsgid, validate_climsgid

EXIT_OK, EXIT_NOT_STOPPED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class SelectionMixin:
    """Positional apimsgids, ``--climsgid``, and the ``--all-scheduled`` / ``--scheduled-*`` flags."""

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # Keep the help text's own line breaks (examples, the exit status table).
        return super().create_parser(  # type: ignore[misc,no-any-return]
            prog_name, subcommand, formatter_class=RawDescriptionHelpFormatter, **kwargs
        )

    def add_selection_arguments(self, parser: CommandParser, verb: str, states: str) -> None:
        parser.add_argument("apimsgid", nargs="*", help=f"API message IDs (32 hex characters) to {verb}")
        parser.add_argument(
            "--climsgid",
            action="append",
            default=[],
            metavar="ID",
            help=f"client message ID to {verb} (repeatable)",
        )
        selection = parser.add_argument_group(f"selecting tracked messages ({states})")
        selection.add_argument("--all-scheduled", action="store_true", help="every such tracked message")
        selection.add_argument(
            "--scheduled-before",
            metavar="ISO_DATETIME",
            help="scheduled before this time, e.g. 2026-12-24T09:00",
        )
        selection.add_argument(
            "--scheduled-after", metavar="ISO_DATETIME", help="scheduled at or after this time"
        )

    def _validated_ids(self, options: dict[str, Any]) -> list[tuple[str, str]]:
        try:
            return [("apimsgid", validate_apimsgid(i).lower()) for i in options["apimsgid"]] + [
                ("climsgid", validate_climsgid(i)) for i in options["climsgid"]
            ]
        except ClickatellInvalidIDError as err:
            raise CommandError(str(err), returncode=EXIT_USAGE) from None

    def _selection(self, options: dict[str, Any]) -> Q | None:
        if not (options["all_scheduled"] or options["scheduled_before"] or options["scheduled_after"]):
            return None
        query = Q()
        if options["scheduled_before"]:
            query &= Q(scheduled_for__lt=self._datetime(options["scheduled_before"], "--scheduled-before"))
        if options["scheduled_after"]:
            query &= Q(scheduled_for__gte=self._datetime(options["scheduled_after"], "--scheduled-after"))
        return query

    @staticmethod
    def _datetime(value: str, flag: str) -> datetime:
        try:
            parsed = parse_datetime(value)
        except ValueError:
            parsed = None
        if parsed is None:
            raise CommandError(
                f"{flag}: {value!r} is not an ISO date-time, e.g. 2026-12-24T09:00", returncode=EXIT_USAGE
            )
        return timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed
