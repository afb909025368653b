"""The endpoint's connections: slow or idle clients must never keep /healthz from answering.

Each connection holds a thread and one of ``metrics.max_clients`` slots, so each has
``metrics.client_timeout_ms`` in all for its request and its answer, however it spaces
its bytes; and no thread outlives its connection.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import urllib.error
import urllib.request

from execd.service.metrics import Metrics
from tests.helpers import wait_for

SLOTS = 8
TIMEOUT = 0.5  # seconds: metrics.client_timeout_ms = 500


def healthz(url: str) -> int | None:
    """/healthz's status, or None when the connection was closed unserved."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def cut(client: socket.socket) -> bool:
    """True once the server has closed or shut down its end (whatever it sent before)."""
    while select.select([client], [], [], 0)[0]:
        try:
            if not client.recv(65536):
                return True
        except ConnectionError:
            return True
    return False


def test_trickling_clients_are_cut_at_their_deadline_and_healthz_answers() -> None:
    """Before: the timeout was per read, so 8 clients sending a header line every 2 s (with
    the default 5 s timeout) held every slot for good, and /healthz, /readyz and /metrics
    were closed unanswered."""
    before = threading.active_count()
    metrics = Metrics(venues=())
    host, port = metrics.serve("127.0.0.1", 0, max_clients=SLOTS, client_timeout=TIMEOUT)
    url = f"http://{host}:{port}/healthz"
    clients = [socket.create_connection((host, port), timeout=10) for _ in range(SLOTS)]
    stop = threading.Event()

    def trickle() -> None:
        # A header line every 0.8 s, a byte at a time every 0.1 s: each read waits far
        # less than the timeout, and 100 lines (http.client's limit) take 80 s.
        lines = b"".join(b"X-Line-%d: b\r\n" % n for n in range(100))
        for byte in lines:
            if stop.wait(0.1):
                return
            for client in clients:
                with contextlib.suppress(OSError):  # cut off: that is the point
                    client.sendall(bytes((byte,)))

    try:
        for client in clients:
            client.sendall(b"GET /metrics HTTP/1.1\r\n")
        trickler = threading.Thread(target=trickle)
        trickler.start()
        try:
            wait_for(lambda: healthz(url) == 200)  # the 30 s guard is no timing
            wait_for(lambda: all(cut(client) for client in clients))
        finally:
            stop.set()
            trickler.join()
        # Their threads are gone while the endpoint serves on: only its own is left.
        wait_for(lambda: threading.active_count() == before + 1)
    finally:
        for client in clients:
            client.close()
        metrics.close()
    wait_for(lambda: threading.active_count() == before)


def test_idle_clients_free_their_slots_for_the_next_probe() -> None:
    """Connections that send nothing at all are cut at the deadline too."""
    before = threading.active_count()
    metrics = Metrics(venues=())
    host, port = metrics.serve("127.0.0.1", 0, max_clients=2, client_timeout=TIMEOUT)
    url = f"http://{host}:{port}/healthz"
    try:
        for _ in range(3):
            idle = [socket.create_connection((host, port), timeout=10) for _ in range(2)]
            wait_for(lambda idle=idle: all(cut(client) for client in idle))
            wait_for(lambda: threading.active_count() == before + 1)
            assert healthz(url) == 200
            for client in idle:
                client.close()
    finally:
        metrics.close()
    wait_for(lambda: threading.active_count() == before)
