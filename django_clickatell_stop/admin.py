from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .conf import conf
from .exceptions import ClickatellConfigurationError, ClickatellQueueError
from .jobs import enqueue_stop, job_counts, progress
from .models import STOPPABLE_STATES, CallbackEvent, ScheduledMessage, State, StopAttempt, StopJob
from .services import Result, StopSummary, stop_messages

if TYPE_CHECKING:
    CallbackAdminBase = admin.ModelAdmin[CallbackEvent]
    JobAdminBase = admin.ModelAdmin[StopJob]
    MessageAdminBase = admin.ModelAdmin[ScheduledMessage]
    AttemptAdminBase = admin.ModelAdmin[StopAttempt]
    AttemptInlineBase = admin.TabularInline[StopAttempt, ScheduledMessage]
else:
    MessageAdminBase = AttemptAdminBase = CallbackAdminBase = JobAdminBase = admin.ModelAdmin
    AttemptInlineBase = admin.TabularInline

STOP_PERMISSION = "django_clickatell_stop.stop_scheduledmessage"
#: How many messages the confirmation page lists by name.
CONFIRMATION_LIST_LIMIT = 100

_INLINE_FIELDS: tuple[str, ...] = (
    "started_at",
    "trigger",
    "user",
    "outcome",
    "gateway_status",
    "error_display",
    "http_status",
    "finished_at",
    "job",
)
_ATTEMPT_FIELDS: tuple[str, ...] = (
    "message_link",
    "sent_id",
    "trigger",
    "user",
    "started_at",
    "finished_at",
    "outcome",
    "http_status",
    "gateway_status",
    "error_display",
    "raw_reply",
    "job",
)

_STATE_COLOURS = {
    State.SCHEDULED: "#417690",
    State.STOPPING: "#6c757d",
    State.STOPPED: "#2e7d32",
    State.TOO_LATE: "#b26a00",
    State.UNKNOWN: "#8e24aa",
    State.FAILED: "#c62828",
    State.DELIVERED: "#5d4037",
}

_RESULT_LEVELS = {
    Result.TOO_LATE: messages.WARNING,
    Result.UNKNOWN: messages.WARNING,
    Result.SKIPPED: messages.INFO,
    Result.ALREADY_STOPPED: messages.INFO,
    Result.FAILED: messages.ERROR,
    Result.INTERRUPTED: messages.ERROR,
    Result.NOT_ATTEMPTED: messages.ERROR,
}


class ReadOnlyAdminMixin:
    """Audit trail: visible, never added, changed or deleted through the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AttemptColumnsMixin:
    """Columns both attempt views show."""

    @admin.display(description=_("error"))
    def error_display(self, obj: StopAttempt) -> str:
        return obj.error_display


class StopAttemptInline(ReadOnlyAdminMixin, AttemptColumnsMixin, AttemptInlineBase):
    model = StopAttempt
    extra = 0
    ordering = ["-started_at", "-pk"]
    fields = readonly_fields = _INLINE_FIELDS
    show_change_link = True
    verbose_name_plural = _("stop attempts (newest first)")


_MESSAGE_RESULT_FIELDS: tuple[str, ...] = (
    "state",
    "gateway_status_display",
    "error_code",
    "error_description",
    "stopped_at",
    "job_link",
)
_MESSAGE_RECORD_FIELDS: tuple[str, ...] = ("untracked", "created_at", "updated_at")


@admin.register(ScheduledMessage)
class ScheduledMessageAdmin(MessageAdminBase):
    list_display = [
        "recipient",
        "apimsgid",
        "climsgid",
        "scheduled_for",
        "state_badge",
        "gateway_status_display",
        "stopped_at",
    ]
    list_filter = ["state", "scheduled_for", "needs_recheck", "untracked"]
    search_fields = ["apimsgid", "climsgid", "recipient"]
    date_hierarchy = "scheduled_for"
    fieldsets = [
        (None, {"fields": ["apimsgid", "climsgid", "recipient", "body", "scheduled_for"]}),
        (_("What Clickatell said"), {"fields": _MESSAGE_RESULT_FIELDS}),
        (_("Record"), {"fields": _MESSAGE_RECORD_FIELDS}),
    ]
    readonly_fields = [*_MESSAGE_RESULT_FIELDS, *_MESSAGE_RECORD_FIELDS]  # the app's record, not the site's
    inlines = [StopAttemptInline]
    actions = ["stop_selected"]
    change_form_template = "admin/django_clickatell_stop/scheduledmessage/change_form.html"

    @admin.display(description=_("state"), ordering="state")
    def state_badge(self, obj: ScheduledMessage) -> str:
        return format_html(
            '<span class="dcs-state dcs-state-{}" style="color:#fff;background:{};padding:1px 6px;'
            'border-radius:4px;white-space:nowrap">{}</span>',
            obj.state,
            _STATE_COLOURS.get(State(obj.state), "#6c757d"),
            obj.get_state_display(),
        )

    @admin.display(description=_("gateway status"), ordering="gateway_status")
    def gateway_status_display(self, obj: ScheduledMessage) -> str:
        if not obj.gateway_status:
            return "—"
        return f"{obj.gateway_status} {obj.gateway_status_description}"

    @admin.display(description=_("stop job"))
    def job_link(self, obj: ScheduledMessage) -> str:
        if obj.job_id is None:
            return "—"
        url = reverse("admin:django_clickatell_stop_stopjob_change", args=[obj.job_id])
        return format_html('<a href="{}">{}</a>', url, obj.job_id)

    def has_stop_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(STOP_PERMISSION)

    # -- views -------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        stop_view = self.admin_site.admin_view(self.stop_view)
        return [
            path("<path:object_id>/stop/", stop_view, name="{}_{}_stop".format(*info)),
            *super().get_urls(),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # Django drops an action the user may not run with a vague message; a forged
        # stop gets a plain 403 instead, before anything is sent.
        stopping = request.method == "POST" and request.POST.get("action") == "stop_selected"
        if stopping and not self.has_stop_permission(request):
            raise PermissionDenied
        if stopping:
            try:
                for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
                    self.opts.pk.to_python(value)
            except ValidationError:
                return HttpResponseBadRequest("Invalid selection.")
        return super().changelist_view(request, extra_context)

    def stop_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The change page's "Stop this message" button: the action's confirmation for one message."""
        if not self.has_stop_permission(request):
            raise PermissionDenied
        queryset = self.get_queryset(request).filter(pk=object_id)
        if not queryset.exists():
            self.message_user(request, _("That message does not exist."), messages.WARNING)
            return HttpResponseRedirect(self._changelist_url())
        return self._confirmation(request, queryset, form_action=self._changelist_url())

    def _changelist_url(self) -> str:
        return reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = {**(extra_context or {}), "can_stop": self.has_stop_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)

    # -- the action -------------------------------------------------------------

    @admin.action(description=_("Stop selected messages"), permissions=["stop"])
    def stop_selected(
        self, request: HttpRequest, queryset: QuerySet[ScheduledMessage]
    ) -> HttpResponse | None:
        if not self.has_stop_permission(request):  # also checked in changelist_view
            raise PermissionDenied
        total = queryset.count()
        queued = conf.EXECUTION != "inline"
        if total > conf.ADMIN_MAX_SELECTION and not queued:  # workers have no request to time out
            self.message_user(
                request,
                _(
                    "%(total)d messages selected; the admin stops at most %(limit)d at once. "
                    "Use 'manage.py stopmessage' (e.g. with --scheduled-before) for larger stops."
                )
                % {"total": total, "limit": conf.ADMIN_MAX_SELECTION},
                messages.ERROR,
            )
            return None
        if request.POST.get("post") == "yes" and queued:
            try:
                job = enqueue_stop(queryset, trigger="admin", user=request.user)
            except (ClickatellConfigurationError, ClickatellQueueError) as err:
                self.message_user(request, _("Nothing queued: %(error)s") % {"error": err}, messages.ERROR)
                return None
            url = reverse("admin:django_clickatell_stop_stopjob_change", args=[job.pk])
            text = ngettext(
                "%(count)d message queued for stopping.",
                "%(count)d messages queued for stopping.",
                job.total,
            ) % {"count": job.total}
            self.message_user(
                request,
                format_html('{} <a href="{}">{}</a>', text, url, _("Follow the job")),
                messages.SUCCESS if job.total else messages.INFO,
            )
            return None
        if request.POST.get("post") == "yes":
            try:
                summary = stop_messages(queryset, trigger="admin", user=request.user)
            except ClickatellConfigurationError as err:
                self.message_user(request, _("Nothing sent: %(error)s") % {"error": err}, messages.ERROR)
                return None
            self._report(request, summary)
            return None
        return self._confirmation(request, queryset, form_action=request.get_full_path())

    def _confirmation(
        self, request: HttpRequest, queryset: QuerySet[ScheduledMessage], *, form_action: str
    ) -> TemplateResponse:
        by_state = dict(
            queryset.order_by().values_list("state").annotate(n=Count("pk")).values_list("state", "n")
        )
        sending = sum(by_state.get(state, 0) for state in STOPPABLE_STATES)
        skipped = [
            (State(state).label, count)
            for state, count in sorted(by_state.items())
            if state not in STOPPABLE_STATES and count
        ]
        total = sum(by_state.values())
        listed = list(queryset.order_by("scheduled_for", "pk")[:CONFIRMATION_LIST_LIMIT])
        context = {
            **self.admin_site.each_context(request),
            "title": _("Stop scheduled messages?"),
            "opts": self.opts,
            "queryset": queryset,
            "listed": listed,
            "unlisted": total - len(listed),
            "total": total,
            "sending": sending,
            "skipped": skipped,
            "skipped_total": total - sending,
            "queued": conf.EXECUTION != "inline",
            "limit": conf.ADMIN_MAX_SELECTION,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            # "Select all N" is re-posted as such (the filters travel in form_action's query
            # string); otherwise each pk is re-posted, as delete_selected does.
            "select_across": request.POST.get("select_across") == "1",
            "selected_pks": []
            if request.POST.get("select_across") == "1"
            else queryset.values_list("pk", flat=True),
            "form_action": form_action,
            "changelist_url": self._changelist_url(),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, "admin/django_clickatell_stop/stop_selected_confirmation.html", context
        )

    def _report(self, request: HttpRequest, summary: StopSummary) -> None:
        stopped = summary.counts[Result.STOPPED]
        if stopped:
            self.message_user(
                request,
                ngettext("Stopped %(count)d message.", "Stopped %(count)d messages.", stopped)
                % {"count": stopped},
                messages.SUCCESS,
            )
        if summary.aborted:
            self.message_user(request, summary.aborted, messages.ERROR)
        for (result, reason), (labels, count) in summary.reasons.items():
            more = count - len(labels)
            ids = ", ".join(labels) + (f" (+{more} more)" if more > 0 else "")
            self.message_user(
                request,
                _("%(count)d %(result)s: %(reason)s — %(ids)s")
                % {"count": count, "result": result.value.replace("_", " "), "reason": reason, "ids": ids},
                _RESULT_LEVELS[result],
            )
        already = summary.counts[Result.ALREADY_STOPPED]
        if already:
            self.message_user(
                request,
                ngettext(
                    "%(count)d message was already stopped; nothing sent for it.",
                    "%(count)d messages were already stopped; nothing sent for them.",
                    already,
                )
                % {"count": already},
                messages.INFO,
            )
        if not summary.total:
            self.message_user(request, _("Nothing to stop."), messages.INFO)


@admin.register(StopAttempt)
class StopAttemptAdmin(ReadOnlyAdminMixin, AttemptColumnsMixin, AttemptAdminBase):
    list_display = [_INLINE_FIELDS[0], "message_link", *_INLINE_FIELDS[1:]]
    list_filter = ["outcome", "trigger", "user", "started_at"]
    search_fields = ["message__apimsgid", "message__climsgid", "sent_id"]
    list_select_related = ["message", "user"]
    date_hierarchy = "started_at"
    fields = readonly_fields = _ATTEMPT_FIELDS

    @admin.display(description=_("message"), ordering="message")
    def message_link(self, obj: StopAttempt) -> str:
        url = reverse("admin:django_clickatell_stop_scheduledmessage_change", args=[obj.message_id])
        return format_html('<a href="{}">{}</a>', url, obj.message)


@admin.register(CallbackEvent)
class CallbackEventAdmin(ReadOnlyAdminMixin, CallbackAdminBase):
    list_display = ["received_at", "apimsgid", "climsgid", "status", "message", "applied"]
    list_filter = ["status", "applied", "received_at"]
    search_fields = ["apimsgid", "climsgid", "recipient"]
    list_select_related = ["message"]


_JOB_COLUMNS = ("backend", "trigger", "requested_by", "state", "total", "progress_display")


@admin.register(StopJob)
class StopJobAdmin(ReadOnlyAdminMixin, JobAdminBase):
    """Queued stops: where each stands (messages by state), read from the messages themselves."""

    list_display = ["created_at", "id", *_JOB_COLUMNS]
    list_filter = ["state", "backend", "trigger", "created_at"]
    list_select_related = ["requested_by"]
    date_hierarchy = "created_at"
    fields = readonly_fields = (
        "id",
        *_JOB_COLUMNS,
        "chunks_display",
        "messages_link",
        "error",
        "created_at",
        "started_at",
        "finished_at",
    )

    @admin.display(description=_("progress"))
    def progress_display(self, obj: StopJob) -> str:
        counts = job_counts(obj)
        left = counts.get(State.STOPPING, 0)
        shown = ", ".join(f"{n} {State(state).label.lower()}" for state, n in counts.items() if n)
        return f"{obj.total - left}/{obj.total} done" + (f": {shown}" if shown else "")

    @admin.display(description=_("chunks done"))
    def chunks_display(self, obj: StopJob) -> str:
        job = progress(obj)
        return f"{job.chunks_done}/{job.chunks_total}"

    @admin.display(description=_("messages"))
    def messages_link(self, obj: StopJob) -> str:
        url = reverse("admin:django_clickatell_stop_scheduledmessage_changelist")
        return format_html('<a href="{}?job__exact={}">{}</a>', url, obj.pk, _("The job's messages"))
