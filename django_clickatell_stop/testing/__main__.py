"""Run the fake gateway: ``python -m django_clickatell_stop.testing [--port 8765]``."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading

from .gateway import FakeGateway


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m django_clickatell_stop.testing", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds to wait before every reply")
    parser.add_argument("--user", default="fake-user")
    parser.add_argument("--password", default="fake-password-3e1d")
    parser.add_argument("--api-id", default="3456789")
    parser.add_argument("--token", default="fake-rest-token-5b7c", help="bearer token of the REST API")
    parser.add_argument(
        "--accept-any-id",
        action="store_true",
        help="treat unknown IDs as scheduled messages",
    )
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the fake gateway listens on loopback only")
    gateway = FakeGateway(
        host=args.host,
        port=args.port,
        latency=args.latency,
        user=args.user,
        password=args.password,
        api_id=args.api_id,
        token=args.token,
        accept_any_id=args.accept_any_id,
    ).start()
    print(f"Fake Clickatell gateway listening on {gateway.url}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    gateway.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
