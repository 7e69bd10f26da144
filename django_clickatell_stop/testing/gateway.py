from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from django_clickatell_stop.codes import ErrorCode, MessageStatus
from django_clickatell_stop.parsing import (
    APIMSGID_RE,
    CLIMSGID_RE,
    StopReply,
    format_error_reply,
    format_stop_reply,
)

FakeState = Literal["scheduled", "queued", "stopped", "handed_on", "delivered"]
FaultKind = Literal["latency", "http", "drop", "reset", "body", "error"]

#: What a stop answers for each state of the fake (see README: "The fake gateway").
_STOP_STATUS: dict[str, MessageStatus] = {
    "scheduled": MessageStatus.USER_CANCELLED,
    "queued": MessageStatus.USER_CANCELLED,
    # Undocumented: we assume a repeated stop answers 006 again.
    "stopped": MessageStatus.USER_CANCELLED,
    "handed_on": MessageStatus.DELIVERED_TO_GATEWAY,
    "delivered": MessageStatus.RECEIVED_BY_RECIPIENT,
}
_QUERY_STATUS: dict[str, MessageStatus] = {
    "scheduled": MessageStatus.QUEUED_FOR_LATER,
    "queued": MessageStatus.MESSAGE_QUEUED,
    "stopped": MessageStatus.USER_CANCELLED,
    "handed_on": MessageStatus.DELIVERED_TO_GATEWAY,
    "delivered": MessageStatus.RECEIVED_BY_RECIPIENT,
}


@dataclass
class FakeMessage:
    apimsgid: str
    climsgid: str | None = None
    state: FakeState = "scheduled"
    to: str = ""
    text: str = ""
    #: Gateway-clock time at which a scheduled message is delivered (None: never by itself).
    due: float | None = None


@dataclass(frozen=True)
class Call:
    """One HTTP request the gateway received."""

    method: str
    path: str
    #: The request target as sent (path and query string): what would reach an access log.
    target: str
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]
    body: str
    at: float

    @property
    def command(self) -> str:
        """``delmsg``, ``auth``, … for the HTTP API; ``rest`` for the REST API."""
        return "rest" if self.path.startswith("/rest/message/") else self.path.rsplit("/", 1)[-1]

    @property
    def params(self) -> dict[str, str]:
        return {**self.query, **self.form}


@dataclass
class Fault:
    """A fault injected into the next matching request(s)."""

    kind: FaultKind
    command: str = "delmsg"
    times: int = 1
    status: int = 500
    body: str = ""
    delay: float = 0.0
    code: int = ErrorCode.INTERNAL_ERROR
    #: Extra response headers, e.g. ``{"Retry-After": "2"}``.
    headers: dict[str, str] = field(default_factory=dict)
    #: Only for requests that name this ID (apimsgid or climsgid); None: any request.
    message_id: str | None = None

    def matches(self, command: str, params: dict[str, str]) -> bool:
        if self.command != command:
            return False
        return self.message_id is None or self.message_id in (
            params.get("apimsgid"),
            params.get("climsgid"),
        )


class FakeGateway:
    """A real HTTP server that answers like Clickatell's legacy HTTP/S API.

    Start it with ``start()`` (or use it as a context manager); ``url`` is then its
    base URL and ``settings()`` the ``CLICKATELL_STOP`` dict that points at it.
    """

    def __init__(
        self,
        *,
        user: str = "fake-user",
        password: str = "fake-password-3e1d",
        api_id: str = "3456789",
        token: str = "fake-rest-token-5b7c",
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        clock: Callable[[], float] = time.time,
        accept_any_id: bool = False,
    ) -> None:
        self.user, self.password, self.api_id, self.token = user, password, api_id, token
        #: Where to post delivery-status callbacks (``?secret=…`` included); None: no callbacks.
        self.callback_url: str | None = None
        self.callbacks_sent: list[dict[str, str]] = []
        #: HTTP status of each answered callback (0: no answer), in the order answers came.
        self.callback_answers: list[int] = []
        #: Queue callbacks until ``release_callbacks()`` (deterministic tests) instead of sending at once.
        self.hold_callbacks = False
        self._held_callbacks: list[tuple[str, dict[str, str]]] = []
        #: Session ID -> gateway-clock time of its last use; idle sessions expire.
        self.sessions: dict[str, float] = {}
        self.session_idle_timeout = 15 * 60.0
        self.host, self.port = host, port
        self.latency = latency
        self._clock = clock
        self._offset = 0.0
        #: Answer stops of unknown IDs as if they were scheduled (the demo's "untracked" IDs).
        self.accept_any_id = accept_any_id
        self.messages: dict[str, FakeMessage] = {}
        self.calls: list[Call] = []
        self.faults: deque[Fault] = deque()
        self.replies: dict[str, str] = {}
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> FakeGateway:
        handler = type("Handler", (_Handler,), {"gateway": self})
        self._server = _Server((self.host, self.port), handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-clickatell",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeGateway:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def settings(self, **extra: Any) -> dict[str, Any]:
        """A ``CLICKATELL_STOP`` dict pointing at this gateway, with *extra* keys."""
        return {
            "USER": self.user,
            "PASSWORD": self.password,
            "API_ID": self.api_id,
            "TOKEN": self.token,
            "BASE_URL": self.url,
            "RETRY_BACKOFF": 0.01,
            **extra,
        }

    # -- state ------------------------------------------------------------------

    def now(self) -> float:
        """The gateway's clock: real time plus whatever ``advance()`` added."""
        return self._clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the gateway's clock forward; scheduled messages that come due are delivered."""
        with self.lock:
            self._offset += seconds

    def add_message(
        self,
        apimsgid: str | None = None,
        *,
        climsgid: str | None = None,
        state: FakeState = "scheduled",
        due_in: float | None = None,
    ) -> FakeMessage:
        """Make the gateway know a message (as if ``sendmsg`` had scheduled it)."""
        with self.lock:
            message = FakeMessage(
                apimsgid=(apimsgid or uuid.uuid4().hex).lower(),
                climsgid=climsgid,
                state=state,
                due=None if due_in is None else self.now() + due_in,
            )
            self.messages[message.apimsgid] = message
            return message

    def message(self, apimsgid: str) -> FakeMessage:
        with self.lock:
            message = self.messages[apimsgid.lower()]
            self._deliver_if_due(message)
            return message

    def reply(self, message_id: str, text: str) -> None:
        """Answer every stop of *message_id* with *text* (a canned reply)."""
        with self.lock:
            self.replies[message_id] = text

    def fault(self, kind: FaultKind, **kwargs: Any) -> Fault:
        """Queue a fault; it hits the next ``times`` matching requests. See ``Fault``."""
        fault = Fault(kind, **kwargs)
        with self.lock:
            self.faults.append(fault)
        return fault

    def calls_to(self, command: str) -> list[Call]:
        with self.lock:
            return [call for call in self.calls if call.command == command]

    def reset(self) -> None:
        with self.lock:
            self.messages.clear()
            self.calls.clear()
            self.faults.clear()
            self.replies.clear()
            self.sessions.clear()
            self._offset = 0.0

    # -- request handling (called from the server's threads) -----------------------

    def _take_fault(self, command: str, params: dict[str, str]) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(command, params):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def _deliver_if_due(self, message: FakeMessage) -> None:
        if message.state in ("scheduled", "queued") and message.due is not None and self.now() >= message.due:
            message.state = "delivered"
            self.notify(message, MessageStatus.RECEIVED_BY_RECIPIENT)

    def notify(self, message: FakeMessage, status: int) -> None:
        """Post a delivery-status callback for *message* to ``callback_url``, in the background.

        Clickatell documents no callback for 006; the fake sends one anyway when asked to
        (``callback_url`` set), so that tests can follow a stop end to end.
        """
        if self.callback_url is None:
            return
        form = {
            "apiMsgId": message.apimsgid,
            "cliMsgId": message.climsgid or "",
            "api_id": self.api_id,
            "to": message.to,
            "timestamp": str(int(self.now())),
            "from": "",
            "status": f"{status:03d}",
            "charge": "1",
        }
        self.callbacks_sent.append(form)
        if self.hold_callbacks:
            self._held_callbacks.append((self.callback_url, form))
            return
        url = self.callback_url
        threading.Thread(target=_post_callback, args=(url, form, self.callback_answers), daemon=True).start()

    def release_callbacks(self) -> list[int]:
        """Send the held callbacks now, one after another, in this thread; return their HTTP statuses."""
        with self.lock:
            held, self._held_callbacks = self._held_callbacks, []
        start = len(self.callback_answers)
        for url, form in held:
            _post_callback(url, form, self.callback_answers)
        return self.callback_answers[start:]

    def _find(self, params: dict[str, str]) -> FakeMessage | None:
        apimsgid, climsgid = params.get("apimsgid"), params.get("climsgid")
        if apimsgid:
            return self.messages.get(apimsgid.lower())
        return next(
            (m for m in self.messages.values() if climsgid and m.climsgid == climsgid),
            None,
        )

    def _authenticated(self, params: dict[str, str]) -> bool:
        return (params.get("user"), params.get("password"), params.get("api_id")) == (
            self.user,
            self.password,
            self.api_id,
        )

    def answer(self, command: str, params: dict[str, str]) -> str:
        """The body Clickatell would send for *command* with *params*."""
        if command == "auth":
            if not self._authenticated(params):
                return format_error_reply(ErrorCode.AUTHENTICATION_FAILED, "Authentication failed")
            session_id = uuid.uuid4().hex
            with self.lock:
                self.sessions[session_id] = self.now()
            return f"OK: {session_id}"
        if "session_id" in params:
            with self.lock:
                last_used = self.sessions.get(params["session_id"])
                if last_used is None or self.now() - last_used > self.session_idle_timeout:
                    self.sessions.pop(params["session_id"], None)
                    return format_error_reply(ErrorCode.SESSION_ID_EXPIRED, "Session ID expired")
                self.sessions[params["session_id"]] = self.now()  # every call extends it
        elif not self._authenticated(params):
            return format_error_reply(ErrorCode.AUTHENTICATION_FAILED, "Authentication failed")
        if command == "ping":
            return "OK: "
        handler = {
            "delmsg": self._delmsg,
            "sendmsg": self._sendmsg,
            "querymsg": self._querymsg,
        }.get(command)
        if handler is None:
            return format_error_reply(
                ErrorCode.INVALID_OR_MISSING_PARAMETERS, "Invalid or missing parameters"
            )
        with self.lock:
            return handler(params)

    def _status_of(self, message: FakeMessage, *, stop: bool) -> MessageStatus:
        """The status to answer; a stop moves a stoppable message to ``stopped`` (and calls back)."""
        self._deliver_if_due(message)
        status = (_STOP_STATUS if stop else _QUERY_STATUS)[message.state]
        if stop and status == MessageStatus.USER_CANCELLED and message.state != "stopped":
            message.state = "stopped"
            self.notify(message, status)
        return status

    def _message_reply(self, params: dict[str, str], stop: bool) -> str:
        asked = params.get("apimsgid") or params.get("climsgid")
        if not asked:
            return format_error_reply(ErrorCode.MISSING_MESSAGE_ID, "Missing message ID")
        if asked in self.replies:
            return self.replies[asked]
        message = self._find(params)
        if message is None and self.accept_any_id and stop:
            if params.get("apimsgid") and APIMSGID_RE.fullmatch(asked):
                message = self.add_message(asked)
            elif params.get("climsgid") and CLIMSGID_RE.fullmatch(asked):
                message = self.add_message(climsgid=asked)
        if message is None:
            if params.get("apimsgid"):
                return format_error_reply(ErrorCode.UNKNOWN_API_MESSAGE_ID, "Unknown API message ID")
            return format_error_reply(ErrorCode.UNKNOWN_CLIENT_MESSAGE_ID, "Unknown client message ID")
        status = self._status_of(message, stop=stop)
        # Undocumented which ID comes back when asked by climsgid: we echo the ID asked for.
        return format_stop_reply(StopReply(message_id=asked, status_code=status))

    def _delmsg(self, params: dict[str, str]) -> str:
        return self._message_reply(params, stop=True)

    def _querymsg(self, params: dict[str, str]) -> str:
        return self._message_reply(params, stop=False)

    def _sendmsg(self, params: dict[str, str]) -> str:
        if not params.get("to") or not params.get("text"):
            return format_error_reply(
                ErrorCode.INVALID_OR_MISSING_PARAMETERS, "Invalid or missing parameters"
            )
        try:
            deliv_time = int(params.get("deliv_time", "0"))
        except ValueError:
            deliv_time = -1
        if not 0 <= deliv_time <= 10080:
            return format_error_reply(ErrorCode.INVALID_DELIVERY_TIME, "Invalid delivery time")
        climsgid = params.get("climsgid") or None
        if climsgid and any(m.climsgid == climsgid for m in self.messages.values()):
            return format_error_reply(ErrorCode.INVALID_OR_MISSING_PARAMETERS, "Duplicate climsgid")
        message = self.add_message(climsgid=climsgid, due_in=deliv_time * 60)
        message.to, message.text = params["to"], params["text"]
        if deliv_time == 0:
            message.state = "delivered"
        return f"ID: {message.apimsgid}"

    def rest_answer(self, method: str, apimsgid: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """HTTP status and JSON body of the legacy REST API for ``/rest/message/{apimsgid}``."""

        def error(status: int, code: int, description: str) -> tuple[int, dict[str, Any]]:
            body = {
                "code": f"{code:03d}",
                "description": description,
                "documentation": "https://example.invalid/",
            }
            return status, {"error": body}

        if headers.get("Authorization") != f"Bearer {self.token}":
            return error(401, ErrorCode.AUTHENTICATION_FAILED, "Authentication failed")
        if headers.get("X-Version") != "1" or method not in ("DELETE", "GET"):
            return error(400, ErrorCode.INVALID_OR_MISSING_PARAMETERS, "Invalid or missing parameters")
        with self.lock:
            message = self.messages.get(apimsgid.lower())
            if message is None and self.accept_any_id and APIMSGID_RE.fullmatch(apimsgid):
                message = self.add_message(apimsgid)
            if message is None:
                return error(404, ErrorCode.UNKNOWN_API_MESSAGE_ID, "Unknown API message ID")
            status = self._status_of(message, stop=method == "DELETE")
        data = {"messageStatus": f"{status:03d}", "description": status.description, "apiMessageId": apimsgid}
        return 200, {"data": data}

    def snapshot(self) -> dict[str, Any]:
        """Calls and messages as JSON-able data (for the control endpoint)."""
        with self.lock:
            return {
                "calls": [asdict(call) for call in self.calls],
                "messages": [asdict(message) for message in self.messages.values()],
            }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Injected drops and resets make writes fail on purpose: nothing to report.
        pass


class _Handler(BaseHTTPRequestHandler):
    gateway: FakeGateway
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: a reply written as headers then body must not wait for a delayed ACK.
    disable_nagle_algorithm = True
    server_version = "FakeClickatell/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by default
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        gateway = self.gateway
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        form = (
            dict(parse_qsl(body, keep_blank_values=True))
            if "form-urlencoded" in (self.headers.get("Content-Type") or "")
            else {}
        )
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        if parts.path.startswith("/_fake/"):
            self._control(parts.path, body)
            return
        call = Call(
            self.command,
            parts.path,
            self.path,
            query,
            form,
            dict(self.headers),
            body,
            gateway.now(),
        )
        with gateway.lock:
            gateway.calls.append(call)
        rest = parts.path.startswith("/rest/message/")
        command = "rest" if rest else parts.path.rsplit("/", 1)[-1]
        params = {"apimsgid": parts.path.rsplit("/", 1)[-1]} if rest else call.params
        if gateway.latency:
            time.sleep(gateway.latency)
        fault = gateway._take_fault(command, params)
        if fault is not None:
            if fault.kind == "latency":
                time.sleep(fault.delay)
            elif fault.kind == "http":
                self._send(fault.status, fault.body, headers=fault.headers)
                return
            elif fault.kind == "body":
                self._send(200, fault.body)
                return
            elif fault.kind == "error":
                self._send(
                    200,
                    format_error_reply(fault.code, fault.body or _error_text(fault.code)),
                )
                return
            elif fault.kind == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            elif fault.kind == "reset":
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nID: ")
                self.wfile.flush()
                # SO_LINGER 0: close() sends RST instead of FIN.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                return
        if rest:
            status, payload = gateway.rest_answer(self.command, params["apimsgid"], dict(self.headers))
            self._send(status, json.dumps(payload), "application/json")
            return
        if not parts.path.startswith("/http/"):
            self._send(404, "Not found")
            return
        self._send(200, gateway.answer(command, params))

    def _control(self, path: str, body: str) -> None:
        gateway = self.gateway
        if path == "/_fake/state":
            self._send(200, json.dumps(gateway.snapshot()), "application/json")
        elif path == "/_fake/reset":
            gateway.reset()
            self._send(200, "{}", "application/json")
        elif path == "/_fake/messages":
            data = json.loads(body or "{}")
            message = gateway.add_message(
                data.get("apimsgid"),
                climsgid=data.get("climsgid"),
                state=data.get("state", "scheduled"),
                due_in=data.get("due_in"),
            )
            self._send(200, json.dumps(asdict(message)), "application/json")
        elif path == "/_fake/deliver":
            with gateway.lock:
                gateway.message(json.loads(body or "{}")["apimsgid"]).state = "delivered"
            self._send(200, "{}", "application/json")
        elif path == "/_fake/advance":
            gateway.advance(float(json.loads(body or "{}").get("seconds", 0)))
            self._send(200, "{}", "application/json")
        else:
            self._send(404, "Not found")

    def _send(
        self,
        status: int,
        text: str,
        content_type: str = "text/html; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        payload = text.encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _post_callback(url: str, form: dict[str, str], answers: list[int]) -> None:
    import requests

    status = 0
    with contextlib.suppress(requests.RequestException):  # like Clickatell, the fake does not retry
        status = requests.post(url, data=form, timeout=10).status_code
    answers.append(status)


def _error_text(code: int) -> str:
    try:
        return ErrorCode(code).description
    except ValueError:
        return "Error"


@contextmanager
def fake_gateway(**settings_extra: Any) -> Iterator[FakeGateway]:
    """Start a ``FakeGateway`` and point ``settings.CLICKATELL_STOP`` at it.

    Keyword arguments are added to the ``CLICKATELL_STOP`` dict (e.g. ``MAX_RETRIES=0``).
    """
    from django.test import override_settings

    with (
        FakeGateway() as gateway,
        override_settings(CLICKATELL_STOP=gateway.settings(**settings_extra)),
    ):
        yield gateway
