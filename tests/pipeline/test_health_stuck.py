"""/healthz against the daemon in-process, while its event loop is blocked.

An actor waiting for input is never stuck, so without the loop's own pulse a loop
blocked while every actor waits would still be called alive. It must not be.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import anyio

from execd.app.daemon import Daemon
from execd.config import schema as config
from tests.helpers import write_config


def health(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def test_a_blocked_event_loop_is_reported_stuck_then_alive_again(tmp_path: Path) -> None:
    path = write_config(tmp_path, extra='\n[metrics]\nlisten = "127.0.0.1:0"\n'
                                         'stuck_after_ms = 1000\n')
    daemon = Daemon(config.load(path), mode="run")
    answers: list[tuple[int, str]] = []
    done = threading.Event()

    def poll(url: str) -> None:
        while not done.is_set():
            answers.append(health(url))
            time.sleep(0.05)

    async def operator() -> None:
        while not daemon.supervisor.ready_sent or daemon.metrics is None:
            await anyio.sleep(0.01)
        assert daemon.metrics.address is not None
        host, port = daemon.metrics.address
        url = f"http://{host}:{port}/healthz"
        assert health(url) == (200, "alive\n")
        poller = threading.Thread(target=poll, args=(url,))
        poller.start()
        try:
            # Block the event loop itself (on purpose: this is the fault under test),
            # well past stuck_after_ms, while the poller asks from its own thread.
            time.sleep(3.0)
            while answers[-1] != (200, "alive\n"):
                await anyio.sleep(0.05)
        finally:
            done.set()
            poller.join()
        daemon.stopping.set()

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(operator)
            await daemon.run()
    stuck = [body for code, body in answers if code == 503]
    assert stuck, answers
    assert all(body.startswith("stuck: ") for body in stuck)
    assert any("loop (" in body for body in stuck), stuck
    assert answers[-1] == (200, "alive\n")
