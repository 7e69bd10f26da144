"""Clickatell's HTTP delivery-status callbacks.

Include ``django_clickatell_stop.urls`` and give Clickatell the callback URL with the
secret, e.g. ``https://example.com/clickatell/callback/?secret=…``. Without
``CALLBACK_SECRET`` the endpoint does not exist (404).
"""

from __future__ import annotations

import hmac

from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from .conf import conf
from .models import CallbackEvent, ScheduledMessage
from .status import apply_status


@csrf_exempt  # Clickatell posts from outside; the shared secret is the protection
@require_http_methods(["GET", "POST"])
def delivery_callback(request: HttpRequest) -> HttpResponse:
    secret = conf.CALLBACK_SECRET
    if not secret:
        raise Http404("No CALLBACK_SECRET configured")
    data = request.POST if request.method == "POST" else request.GET
    given = request.GET.get("secret") or data.get("secret") or ""
    if not hmac.compare_digest(given.encode(), secret.encode()):
        return HttpResponseForbidden("Bad secret")
    if (
        conf.API_ID
        and data.get("api_id")
        and not hmac.compare_digest(data["api_id"].encode(), conf.API_ID.encode())
    ):
        return HttpResponseForbidden("Not for this account")
    apimsgid, climsgid = data.get("apiMsgId", "")[:64], data.get("cliMsgId", "")[:64]
    try:
        status = int(data.get("status", ""))
    except ValueError:
        return HttpResponseBadRequest("Missing or bad status")
    if not (apimsgid or climsgid) or not 0 <= status <= 9999:
        return HttpResponseBadRequest("Missing message ID or bad status")
    message = None
    if apimsgid:
        message = ScheduledMessage.objects.filter(apimsgid=apimsgid.lower()).first()
    if message is None and climsgid:
        message = ScheduledMessage.objects.filter(climsgid=climsgid).first()
    try:
        with transaction.atomic():
            event = CallbackEvent.objects.create(
                apimsgid=apimsgid,
                climsgid=climsgid,
                status=f"{status:03d}",
                timestamp=data.get("timestamp", "")[:32],
                recipient=data.get("to", "")[:32],
                sender=data.get("from", "")[:32],
                charge=data.get("charge", "")[:16],
                message=message,
            )
    except IntegrityError:
        return HttpResponse("OK (already received)")  # a replay: nothing more to do
    if message is not None:
        event.applied = apply_status(message, status).applied
        event.save(update_fields=["applied"])
    return HttpResponse("OK")
