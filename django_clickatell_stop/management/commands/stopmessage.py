from __future__ import annotations

import json
import signal
import sys
import threading
import time
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from django_clickatell_stop.conf import conf
from django_clickatell_stop.exceptions import ClickatellConfigurationError, ClickatellQueueError
from django_clickatell_stop.jobs import enqueue_stop, progress
from django_clickatell_stop.models import ScheduledMessage, StopJob
from django_clickatell_stop.services import (
    Result,
    StopInterrupted,
    StopOutcome,
    StopSummary,
    stop_messages,
    track_untracked,
)

from ._selection import EXIT_INTERRUPTED, EXIT_NOT_STOPPED, EXIT_USAGE, SelectionMixin

HELP = """\
Stop SMS messages scheduled with Clickatell, and record every attempt.

Name messages by ID (positional apimsgids, or --climsgid), or select tracked
messages that are still scheduled (or failed last time) with --all-scheduled,
--scheduled-before and --scheduled-after. IDs this site never recorded are still
stopped, and a record marked "untracked" is created for them.

Examples:
  manage.py stopmessage f6b9af2a2c9e5b18ee2d257e3def5d66
  manage.py stopmessage --climsgid reminder42 --climsgid reminder43
  manage.py stopmessage --scheduled-before 2026-12-24T00:00 --dry-run
  manage.py stopmessage --all-scheduled --yes --json --concurrency 16
  manage.py stopmessage --all-scheduled --yes --enqueue     (on Celery workers)
  manage.py stopmessage --job 1b0c4a6e-... --wait           (follow a queued job)

--enqueue hands the stop to workers (the EXECUTION setting's queue, or celery
if EXECUTION is "inline") and prints the job ID at once; --job shows a job's
progress, counted by message state, and --wait follows it until it finishes.

Exit status:
  0    every message was stopped (or had been stopped already)
  1    at least one message could not be stopped (too late, unknown to
       Clickatell, failed, or not stoppable); with --job, also: not finished yet
  2    usage or configuration error: bad arguments or IDs, missing credentials,
       Clickatell rejected the account (the run stops at the first rejection),
       or the queue refused a job (--enqueue; nothing is left queued)
  130  interrupted with Ctrl-C; every call made is recorded
"""


class Command(SelectionMixin, BaseCommand):
    help = HELP
    #: Seconds between progress reads with --wait.
    poll_interval = 1.0

    def add_arguments(self, parser: CommandParser) -> None:
        self.add_selection_arguments(parser, "stop", "state scheduled or failed")
        parser.add_argument("--dry-run", action="store_true", help="print what would be sent; send nothing")
        parser.add_argument(
            "--json", action="store_true", help="one JSON object per message, then a summary object"
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            metavar="N",
            help="calls in flight at once (default: CONCURRENCY setting)",
        )
        parser.add_argument("--yes", action="store_true", help="do not ask before stopping a selection")
        jobs_group = parser.add_argument_group("queued stops (Celery or Django tasks workers)")
        jobs_group.add_argument(
            "--enqueue",
            nargs="?",
            const="",
            choices=["", "celery", "tasks"],
            metavar="QUEUE",
            help="queue the stop for workers and print the job ID (QUEUE: celery or tasks)",
        )
        jobs_group.add_argument("--job", metavar="JOB_ID", help="show a queued job's progress")
        jobs_group.add_argument(
            "--wait", action="store_true", help="with --enqueue or --job: follow the job until it finishes"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["concurrency"] is not None and options["concurrency"] < 1:
            raise CommandError("--concurrency must be at least 1.", returncode=EXIT_USAGE)
        if options["wait"] and options["enqueue"] is None and not options["job"]:
            raise CommandError("--wait goes with --enqueue or --job.", returncode=EXIT_USAGE)
        if options["job"]:
            self._follow(options["job"], options)
            return
        selection = self._selection(options)
        ids = self._validated_ids(options)
        if not ids and selection is None:
            raise CommandError(
                "Name messages to stop (APIMSGID or --climsgid) or select them "
                "(--all-scheduled, --scheduled-before, --scheduled-after). See --help.",
                returncode=EXIT_USAGE,
            )
        selected = ScheduledMessage.objects.stoppable().filter(selection) if selection is not None else None
        if options["dry_run"]:
            self._dry_run(ids, selected, options)
            return
        if selected is not None:
            self._confirm(selected.count(), options)
        messages = self._messages(ids, selected)
        if options["enqueue"] is not None:
            self._enqueue(messages, options)
            return
        self._stop(messages, options)

    # -- arguments --------------------------------------------------------------

    def _confirm(self, count: int, options: dict[str, Any]) -> None:
        if count <= 1 or options["yes"]:
            return
        if not sys.stdin.isatty():
            raise CommandError(
                f"Refusing to stop {count} selected messages without --yes (not an interactive terminal).",
                returncode=EXIT_USAGE,
            )
        answer = input(f"Stop {count} scheduled messages with Clickatell? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise CommandError("Nothing stopped.", returncode=EXIT_USAGE)

    def _messages(self, ids: list[tuple[str, str]], selected: Any) -> list[ScheduledMessage] | Any:
        if not ids:
            return selected
        tracked = [track_untracked(**{kind: value})[0] for kind, value in ids]
        if selected is None:
            return tracked
        return ScheduledMessage.objects.filter(
            Q(pk__in=[m.pk for m in tracked]) | Q(pk__in=selected.values("pk"))
        )

    # -- running ----------------------------------------------------------------

    def _dry_run(self, ids: list[tuple[str, str]], selected: Any, options: dict[str, Any]) -> None:
        lines: list[dict[str, Any]] = []
        for kind, value in ids:
            message = ScheduledMessage.objects.filter(**{kind: value}).first()
            state = message.state if message else None
            would_send = message is None or message.is_stoppable
            lines.append(
                {kind: value, "tracked": message is not None, "state": state, "would_send": would_send}
            )
        if selected is not None:
            known = {(kind, value) for kind, value in ids}
            for apimsgid, climsgid, state in selected.values_list("apimsgid", "climsgid", "state").iterator():
                if ("apimsgid", apimsgid) in known or ("climsgid", climsgid) in known:
                    continue
                lines.append(
                    {
                        "apimsgid": apimsgid,
                        "climsgid": climsgid,
                        "tracked": True,
                        "state": state,
                        "would_send": True,
                    }
                )
        sending = sum(line["would_send"] for line in lines)
        for line in lines:
            if options["json"]:
                self.stdout.write(json.dumps({"dry_run": True, **line}))
            elif options["verbosity"]:
                label = line.get("apimsgid") or f"climsgid={line.get('climsgid')}"
                what = "would stop" if line["would_send"] else f"would skip ({line['state']})"
                self.stdout.write(f"{label} - {what}{'' if line['tracked'] else ' [untracked]'}")
        if options["json"]:
            self.stdout.write(
                json.dumps({"summary": {"dry_run": True, "would_send": sending, "total": len(lines)}})
            )
        else:
            self.stdout.write(
                f"Dry run: {sending} of {len(lines)} messages would be sent to Clickatell; nothing sent."
            )

    def _stop(self, messages: Any, options: dict[str, Any]) -> None:
        progress = _Progress(self.stderr) if self.stderr.isatty() and not options["json"] else None

        def on_outcome(outcome: StopOutcome) -> None:
            if progress is not None:
                progress.clear()
            if options["json"]:
                self.stdout.write(json.dumps(outcome.as_dict()))
            elif options["verbosity"]:
                self.stdout.write(outcome.describe(), self.style.SUCCESS if outcome.ok else self.style.ERROR)

        cancel = threading.Event()
        previous_handler = self._install_sigint_handler(cancel)
        try:
            summary = stop_messages(
                messages,
                trigger="command",
                concurrency=options["concurrency"],
                on_outcome=on_outcome,
                progress=progress,
                cancel=cancel,
            )
        except ClickatellConfigurationError as err:
            raise CommandError(f"Configuration error: {err}", returncode=EXIT_USAGE) from None
        except StopInterrupted as interrupted:
            self._summary(interrupted.summary, options)
            done, total = interrupted.summary.done, interrupted.summary.total
            raise CommandError(
                f"Interrupted after {done} of {total} messages; every call made is recorded.",
                returncode=EXIT_INTERRUPTED,
            ) from None
        finally:
            if previous_handler is not None:
                signal.signal(signal.SIGINT, previous_handler)
            if progress is not None:
                progress.clear()
        self._summary(summary, options)
        if summary.interrupted:
            raise CommandError(
                f"Interrupted after {summary.done - summary.counts[Result.NOT_ATTEMPTED]} of {summary.total} "
                "messages; every call made is recorded.",
                returncode=EXIT_INTERRUPTED,
            )
        if summary.aborted:
            raise CommandError(summary.aborted, returncode=EXIT_USAGE)
        failed = summary.total - sum(summary.counts[r] for r in Result if r.ok)
        if failed:
            raise CommandError(
                f"{failed} of {summary.total} messages were not stopped.", returncode=EXIT_NOT_STOPPED
            )

    # -- queued jobs ---------------------------------------------------------------

    def _enqueue(self, messages: Any, options: dict[str, Any]) -> None:
        backend = options["enqueue"] or (conf.EXECUTION if conf.EXECUTION != "inline" else "celery")
        try:
            job = enqueue_stop(messages, trigger="command", backend=backend)
        except ClickatellConfigurationError as err:
            raise CommandError(f"Configuration error: {err}", returncode=EXIT_USAGE) from None
        except ClickatellQueueError as err:
            raise CommandError(str(err), returncode=EXIT_USAGE) from None
        if options["json"]:
            self.stdout.write(json.dumps({"job": str(job.pk), "queued": job.total, "queue": backend}))
        else:
            self.stdout.write(f"Queued {job.total} messages for stopping on {backend}: job {job.pk}")
            if not options["wait"]:
                self.stdout.write(f"Follow it with: manage.py stopmessage --job {job.pk} --wait")
        if options["wait"]:
            self._follow(str(job.pk), options)

    def _follow(self, job_id: str, options: dict[str, Any]) -> None:
        try:
            current = progress(job_id)
        except (StopJob.DoesNotExist, ValueError, ValidationError):
            raise CommandError(f"No stop job {job_id!r}.", returncode=EXIT_USAGE) from None
        shown = None
        while True:
            line = json.dumps(current.as_dict()) if options["json"] else current.describe()
            if line != shown:
                self.stdout.write(line)
                shown = line
            if current.finished or not options["wait"]:
                break
            try:
                time.sleep(self.poll_interval)
            except KeyboardInterrupt:
                raise CommandError(
                    f"Stopped following job {job_id}; the workers carry on.", returncode=EXIT_INTERRUPTED
                ) from None
            current = progress(job_id)
        if not current.ok:
            left = "not finished yet" if not current.finished else "not every message was stopped"
            raise CommandError(f"Job {job_id}: {left}.", returncode=EXIT_NOT_STOPPED)

    def _install_sigint_handler(self, cancel: threading.Event) -> Any:
        """First Ctrl-C: send nothing new, record the calls in flight. Second: stop at once."""
        if threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum: int, frame: Any) -> None:
            if cancel.is_set():
                raise KeyboardInterrupt
            cancel.set()
            self.stderr.write("Interrupted: finishing the calls in flight (Ctrl-C again to abandon them)...")

        return signal.signal(signal.SIGINT, handler)

    def _summary(self, summary: StopSummary, options: dict[str, Any]) -> None:
        if options["json"]:
            self.stdout.write(json.dumps({"summary": summary.as_dict()}))
            return
        counts = ", ".join(
            f"{count} {result.value.replace('_', ' ')}" for result, count in summary.counts.most_common()
        )
        self.stdout.write(f"{summary.total} messages: {counts or 'nothing to do'}.")


class _Progress:
    """``done/total, rate, ETA`` on one self-overwriting stderr line (terminals only)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.started = time.monotonic()
        self.last = 0.0
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.2 and done < total:
            return
        self.last = now
        rate = done / max(now - self.started, 1e-9)
        eta = (total - done) / rate if rate else 0.0
        self.stream.write(f"\r{done}/{total}  {rate:.1f}/s  ETA {eta:.0f}s ", ending="")
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K", ending="")
            self.stream.flush()
            self.shown = False
