"""``make demo``: the example project on SQLite with the bundled fake gateway.

Starts the fake Clickatell gateway (unless CLICKATELL_BASE_URL points elsewhere),
migrates, seeds demo data, and serves http://127.0.0.1:8000. Ctrl-C stops it all.
Safe to run again: migrations and seeding are idempotent.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MANAGE = [sys.executable, str(HERE / "manage.py")]
GATEWAY_PORT = 8765
SITE = os.environ.get("DEMO_ADDRESS", "127.0.0.1:8000")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def main() -> int:
    # SIGTERM (e.g. from a supervisor) cleans up like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        if "CLICKATELL_BASE_URL" not in os.environ:
            if port_open(GATEWAY_PORT):
                print(
                    f"Port {GATEWAY_PORT} is taken: is another demo running? Stop it first.", file=sys.stderr
                )
                return 1
            gateway = [sys.executable, "-m", "django_clickatell_stop.testing", "--port", str(GATEWAY_PORT)]
            processes.append(subprocess.Popen([*gateway, "--accept-any-id"]))
            for _ in range(50):
                if port_open(GATEWAY_PORT):
                    break
                time.sleep(0.1)
        subprocess.run([*MANAGE, "migrate", "--no-input", "-v", "0"], check=True)
        subprocess.run([*MANAGE, "seed_demo"], check=True)
        worker_note = ""
        if os.environ.get("CLICKATELL_EXECUTION") == "celery":
            worker_note = " and the Celery worker"
            # Stop jobs from the admin go to this worker (Redis at CELERY_BROKER_URL).
            worker = [sys.executable, "-m", "celery", "-A", "demo_site", "worker", "--concurrency", "1"]
            processes.append(subprocess.Popen([*worker, "--loglevel", "INFO"], cwd=HERE))
        print(
            f"""
  The demo is running. Open:
    http://{SITE}/               appointments: cancel one to stop its reminder
    http://{SITE}/admin/         admin: log in as demo / demo (superuser)
                                        or support / support (may only view and stop)
  From another terminal, the command:
    .venv/bin/python example_project/manage.py stopmessage --all-scheduled --dry-run
  Ctrl-C stops the site and the fake gateway{worker_note}.
""",
            flush=True,
        )
        server = subprocess.Popen([*MANAGE, "runserver", "--noreload", SITE])
        processes.append(server)
        return server.wait()
    except KeyboardInterrupt:
        return 0
    except subprocess.CalledProcessError as err:
        return err.returncode
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    sys.exit(main())
