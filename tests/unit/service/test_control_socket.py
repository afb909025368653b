"""The control socket's claim (one daemon per socket path, even when two start at once),
and its accept loop when the process runs out of file descriptors.
"""

from __future__ import annotations

import json
import os
import resource
import socket
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from execd.config.schema import ControlConfig
from execd.model.errors import ControlInUse
from execd.service.control import ControlServer, Request


async def answer(request: Request) -> dict[str, Any]:
    return {"ok": True}


def server(path: Path, **keys: Any) -> ControlServer:
    return ControlServer(ControlConfig(socket=str(path), timeout_ms=1000, **keys),
                         handler=answer)


async def test_the_lock_beside_the_socket_decides_who_owns_it(tmp_path: Path) -> None:
    path = tmp_path / "execd.sock"
    first, second = server(path), server(path)
    listener = await first.bind()
    # Bound but not yet serving looks dead to a probe; the lock still refuses.
    with pytest.raises(ControlInUse,
                       match=r"another execd is serving .*execd.sock \(it holds .*sock.lock\)"):
        await second.bind()
    assert path.is_socket()
    await listener.aclose()
    first.remove()
    assert not path.exists()
    # A stale socket (its owner gone, lock released) is replaced by the next daemon.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    listener = await second.bind()
    assert path.is_socket()
    # The first one's late second clean-up must not remove the new owner's socket.
    first.remove()
    assert path.is_socket()
    await listener.aclose()
    second.remove()
    second.remove()
    assert not path.exists()


async def test_a_file_that_is_not_a_socket_is_refused_and_the_lock_let_go(tmp_path: Path) -> None:
    path = tmp_path / "execd.sock"
    path.write_text("not a socket")
    with pytest.raises(ControlInUse, match="exists and is not a socket"):
        await server(path).bind()
    path.unlink()
    listener = await server(path).bind()  # the failed bind released the lock
    await listener.aclose()


def _ask(client: socket.socket) -> dict[str, Any]:
    client.setblocking(True)
    client.settimeout(10)
    client.sendall(b'{"command":"status"}\n')
    with client.makefile("rb") as stream:
        reply: dict[str, Any] = json.loads(stream.readline())
    return reply


async def test_accept_out_of_file_descriptors_waits_and_then_serves(tmp_path: Path) -> None:
    """A real EMFILE from accept() (this process's fd limit lowered) is not fatal."""
    path = tmp_path / "execd.sock"
    with capture_logs() as logged:
        control = server(path, accept_retry_ms=20)
        listener = await control.bind()
        # Sockets made while descriptors are still free; connecting needs no new one.
        clients = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(3)]
        async with anyio.create_task_group() as tg:
            tg.start_soon(control.serve, listener)
            await anyio.sleep(0.05)  # serving started (its capacity measured)
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            lowest_free = os.dup(0)
            os.close(lowest_free)
            resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
            try:
                for client in clients:
                    client.connect(str(path))
                while not any(e["event"] == "control.accept_failed" for e in logged):
                    await anyio.sleep(0.01)
                await anyio.sleep(0.1)  # several retries, each after accept_retry_ms
            finally:
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            replies = [await anyio.to_thread.run_sync(_ask, client) for client in clients]
            tg.cancel_scope.cancel()
    for client in clients:
        client.close()
    assert replies == [{"ok": True}] * 3
    failed = [e for e in logged if e["event"] == "control.accept_failed"]
    # One warning for the whole spell, not one per retry.
    assert len(failed) == 1 and failed[0]["log_level"] == "warning", failed
    assert failed[0]["errno"] == "EMFILE" and failed[0]["retry_ms"] == 20
    resumed = [e for e in logged if e["event"] == "control.accept_resumed"]
    assert len(resumed) == 1 and resumed[0]["failures"] > 1
    assert not path.exists()
