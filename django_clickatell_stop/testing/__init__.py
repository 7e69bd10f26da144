"""A fake Clickatell gateway, for this app's tests, the demo, and your own site's tests.

``FakeGateway`` is a real HTTP server on 127.0.0.1 that behaves like Clickatell's
legacy HTTP/S API (``delmsg``, ``sendmsg``, ``querymsg``), records every request and
injects faults on demand. ``fake_gateway()`` starts one and points
``settings.CLICKATELL_STOP`` at it for the duration of a ``with`` block.
"""

from __future__ import annotations

from .gateway import Call, FakeGateway, FakeMessage, Fault, fake_gateway

__all__ = ["Call", "FakeGateway", "FakeMessage", "Fault", "fake_gateway"]
