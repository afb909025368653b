"""The control socket's claim: one daemon per socket path, even when two start at once."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from execd.control import ControlInUse, ControlServer, Request


async def answer(request: Request) -> dict[str, Any]:
    return {"ok": True}


def server(path: Path) -> ControlServer:
    return ControlServer(path, group_access=False, timeout=1.0, handler=answer)


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
