from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, ClassVar

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from .codes import error_description, format_code, status_description

if TYPE_CHECKING:
    from django_stubs_ext.db.models.manager import RelatedManager


class State(models.TextChoices):
    SCHEDULED = "scheduled", _("Scheduled")
    STOPPING = "stopping", _("Stopping")
    STOPPED = "stopped", _("Stopped")
    TOO_LATE = "too_late", _("Too late")
    UNKNOWN = "unknown", _("Unknown to Clickatell")
    FAILED = "failed", _("Failed")
    DELIVERED = "delivered", _("Delivered")


#: States from which a stop may be sent: never sent yet, or the last try got no usable answer.
STOPPABLE_STATES = (State.SCHEDULED, State.FAILED)


class Trigger(models.TextChoices):
    ADMIN = "admin", _("Admin")
    COMMAND = "command", _("Command")
    SERVICE = "service", _("Service")
    TASK = "task", _("Task")


class Outcome(models.TextChoices):
    PENDING = "pending", _("In flight")
    STOPPED = "stopped", _("Stopped")
    TOO_LATE = "too_late", _("Too late")
    UNKNOWN = "unknown", _("Unknown to Clickatell")
    FAILED = "failed", _("Failed")
    INTERRUPTED = "interrupted", _("Interrupted")


apimsgid_validator = RegexValidator(
    r"^[0-9a-fA-F]{32}\Z",
    _("An apimsgid is the 32 hexadecimal characters that Clickatell returned."),
)
climsgid_validator = RegexValidator(r"^[A-Za-z0-9]{1,32}\Z", _("A climsgid is 1 to 32 letters and digits."))


class JobState(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    FINISHED = "finished", _("Finished")


class StopJob(models.Model):
    """A bulk stop handed to workers (Celery, or Django's tasks framework) instead of run in process.

    Enqueueing moves the selected messages to ``stopping`` and links them here; workers
    stop them chunk by chunk (``StopJobChunk``). Progress is read from the messages'
    states, so it is right however many times a chunk runs.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    backend = models.CharField(_("run by"), max_length=16)
    trigger = models.CharField(_("trigger"), max_length=16, choices=Trigger.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("requested by"),
    )
    state = models.CharField(_("state"), max_length=16, choices=JobState.choices, default=JobState.QUEUED)
    total = models.PositiveIntegerField(_("messages queued"), default=0)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    summary = models.JSONField(
        _("summary"), default=dict, blank=True, help_text=_("Messages by state when the job finished.")
    )
    error = models.CharField(
        _("error"),
        max_length=255,
        blank=True,
        help_text=_("Why the job could not be queued (its messages were put back as they were)."),
    )

    if TYPE_CHECKING:
        messages: RelatedManager[ScheduledMessage]
        chunks: RelatedManager[StopJobChunk]
        attempts: RelatedManager[StopAttempt]

    class Meta:
        verbose_name = _("stop job")
        verbose_name_plural = _("stop jobs")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Stop job {self.pk}"


class StopJobChunk(models.Model):
    """One worker task's share of a job; ``done_at`` is set once, so a task run twice counts once."""

    job = models.ForeignKey(StopJob, on_delete=models.CASCADE, related_name="chunks", verbose_name=_("job"))
    index = models.PositiveIntegerField(_("index"))
    size = models.PositiveIntegerField(_("messages"))
    tries = models.PositiveIntegerField(_("tries"), default=0)
    done_at = models.DateTimeField(_("done at"), null=True, blank=True)

    class Meta:
        verbose_name = _("stop job chunk")
        verbose_name_plural = _("stop job chunks")
        ordering = ["job", "index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="dcs_job_chunk_once")]

    def __str__(self) -> str:
        return f"{self.job} chunk {self.index}"


class ScheduledMessageQuerySet(models.QuerySet["ScheduledMessage"]):
    def stoppable(self) -> ScheduledMessageQuerySet:
        """Messages a stop may still be sent for (scheduled, or failed last time)."""
        return self.filter(state__in=STOPPABLE_STATES)

    def for_object(self, obj: models.Model) -> ScheduledMessageQuerySet:
        """Messages scheduled for *obj* (``schedule_message(..., for_object=obj)``)."""
        return self.filter(content_type=ContentType.objects.get_for_model(obj), object_id=str(obj.pk))


class ScheduledMessage(models.Model):
    """An SMS scheduled with Clickatell, identified by its apimsgid and/or climsgid."""

    apimsgid = models.CharField(
        _("API message ID"),
        max_length=32,
        unique=True,
        null=True,
        blank=True,
        validators=[apimsgid_validator],
        help_text=_("The ID Clickatell returned from sendmsg."),
    )
    climsgid = models.CharField(
        _("client message ID"),
        max_length=32,
        unique=True,
        null=True,
        blank=True,
        validators=[climsgid_validator],
        help_text=_("The ID this site chose when it sent the message."),
    )
    recipient = models.CharField(_("recipient"), max_length=32, blank=True)
    body = models.TextField(_("body"), blank=True)
    scheduled_for = models.DateTimeField(_("scheduled for"), null=True, blank=True, db_index=True)
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.SCHEDULED)
    gateway_status = models.CharField(
        _("gateway status"),
        max_length=4,
        blank=True,
        help_text=_("Last status code Clickatell gave."),
    )
    error_code = models.CharField(_("error code"), max_length=4, blank=True)
    error_description = models.CharField(_("error description"), max_length=255, blank=True)
    stopped_at = models.DateTimeField(_("stopped at"), null=True, blank=True)
    needs_recheck = models.BooleanField(
        _("needs re-check"),
        default=False,
        help_text=_("Stopped within STOP_CUTOFF_SECONDS of its send time: the status sync checks it again."),
    )
    content_type = models.ForeignKey(
        ContentType, null=True, blank=True, on_delete=models.SET_NULL, verbose_name=_("for object type")
    )
    object_id = models.CharField(_("for object ID"), max_length=64, null=True, blank=True)
    for_object = GenericForeignKey("content_type", "object_id")
    untracked = models.BooleanField(
        _("untracked"),
        default=False,
        help_text=_("Created by a stop of an ID this site had not recorded (e.g. from the command)."),
    )
    job = models.ForeignKey(
        StopJob,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="messages",
        verbose_name=_("stop job"),
        help_text=_("The latest queued stop job this message was part of."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects: ClassVar[ScheduledMessageQuerySet] = ScheduledMessageQuerySet.as_manager()  # type: ignore[assignment]

    if TYPE_CHECKING:
        attempts: RelatedManager[StopAttempt]
        callbacks: RelatedManager[CallbackEvent]

    class Meta:
        verbose_name = _("scheduled message")
        verbose_name_plural = _("scheduled messages")
        ordering = ["-scheduled_for", "-pk"]
        permissions = [("stop_scheduledmessage", _("Can stop scheduled messages"))]
        indexes = [
            models.Index(fields=["state", "scheduled_for"], name="dcs_message_state_idx"),
            models.Index(fields=["content_type", "object_id"], name="dcs_message_object_idx"),
            models.Index(fields=["recipient", "state"], name="dcs_message_recipient_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(apimsgid__isnull=False) | Q(climsgid__isnull=False),
                name="dcs_message_has_an_id",
                violation_error_message=_("A message needs an apimsgid or a climsgid."),
            ),
            models.CheckConstraint(condition=~Q(apimsgid=""), name="dcs_apimsgid_not_empty"),
            models.CheckConstraint(condition=~Q(climsgid=""), name="dcs_climsgid_not_empty"),
            models.CheckConstraint(condition=Q(state__in=State.values), name="dcs_message_state_valid"),
        ]

    def __str__(self) -> str:
        return self.apimsgid or f"climsgid {self.climsgid}"

    def save(self, *args: object, **kwargs: object) -> None:
        # Blank IDs are stored as NULL so that "unique when present" holds.
        self.apimsgid = self.apimsgid.lower() if self.apimsgid else None
        self.climsgid = self.climsgid or None
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    @property
    def is_stoppable(self) -> bool:
        return self.state in STOPPABLE_STATES

    @property
    def gateway_status_description(self) -> str:
        return status_description(int(self.gateway_status)) if self.gateway_status else ""


class StopAttempt(models.Model):
    """One call to Clickatell's stop command, written before the call and completed after.

    Rows are an audit trail: the admin cannot add, change or delete them, and a
    message with attempts cannot be deleted (``PROTECT``).
    """

    message = models.ForeignKey(
        ScheduledMessage,
        on_delete=models.PROTECT,
        related_name="attempts",
        verbose_name=_("message"),
    )
    trigger = models.CharField(_("trigger"), max_length=16, choices=Trigger.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("user"),
    )
    sent_id = models.CharField(
        _("ID sent"),
        max_length=48,
        help_text=_("Which ID the stop named, e.g. 'apimsgid=…'."),
    )
    started_at = models.DateTimeField(_("started at"), db_index=True)
    claimed_by = models.CharField(
        _("claimed by"),
        max_length=64,
        blank=True,
        help_text=_("Host and process that made the call; lets a later run tell that it died."),
    )
    job = models.ForeignKey(
        StopJob,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="attempts",
        verbose_name=_("stop job"),
    )
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    outcome = models.CharField(_("outcome"), max_length=16, choices=Outcome.choices, default=Outcome.PENDING)
    http_status = models.PositiveSmallIntegerField(_("HTTP status"), null=True, blank=True)
    gateway_status = models.CharField(_("gateway status"), max_length=4, blank=True)
    error_code = models.CharField(_("error code"), max_length=4, blank=True)
    error_description = models.CharField(_("error description"), max_length=255, blank=True)
    raw_reply = models.TextField(
        _("raw reply"), blank=True, help_text=_("Truncated; never holds credentials.")
    )

    class Meta:
        verbose_name = _("stop attempt")
        verbose_name_plural = _("stop attempts")
        ordering = ["-started_at", "-pk"]
        indexes = [models.Index(fields=["outcome", "started_at"], name="dcs_attempt_outcome_idx")]

    def __str__(self) -> str:
        return (
            f"{self.get_trigger_display()} stop of {self.message_id} at {self.started_at:%Y-%m-%d %H:%M:%S}"
        )

    @property
    def gateway_status_description(self) -> str:
        return status_description(int(self.gateway_status)) if self.gateway_status else ""

    @property
    def error_display(self) -> str:
        if not self.error_code:
            return self.error_description
        description = self.error_description or error_description(int(self.error_code))
        return f"ERR {format_code(int(self.error_code))}: {description}"


class CallbackEvent(models.Model):
    """One delivery-status callback from Clickatell, as received (replays are not stored twice)."""

    apimsgid = models.CharField(_("API message ID"), max_length=64, blank=True, db_index=True)
    climsgid = models.CharField(_("client message ID"), max_length=64, blank=True)
    status = models.CharField(_("status"), max_length=4)
    timestamp = models.CharField(_("Clickatell timestamp"), max_length=32, blank=True)
    recipient = models.CharField(_("to"), max_length=32, blank=True)
    sender = models.CharField(_("from"), max_length=32, blank=True)
    charge = models.CharField(_("charge"), max_length=16, blank=True)
    message = models.ForeignKey(
        ScheduledMessage,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="callbacks",
        verbose_name=_("message"),
        help_text=_("Empty when Clickatell reported an ID this site does not track."),
    )
    applied = models.BooleanField(_("applied"), default=False, help_text=_("Whether it changed the message."))
    received_at = models.DateTimeField(_("received at"), auto_now_add=True)

    class Meta:
        verbose_name = _("delivery callback")
        verbose_name_plural = _("delivery callbacks")
        ordering = ["-received_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["apimsgid", "climsgid", "status", "timestamp"], name="dcs_callback_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.apimsgid or self.climsgid}: status {self.status}"
