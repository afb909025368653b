"""The control socket: how ``execd ctl`` talks to a running daemon.

Protocol: the client connects to an AF_UNIX stream socket, writes one JSON object
and a newline, and reads one JSON object and a newline back; then both close.

Request: ``{"command": "halt", "reason": "...", "actor": "..."}`` — commands
``status``, ``halt``, ``reduce``, ``resume``, ``tick`` (with ``time``) and
``safety-sell`` (with ``venue`` and optionally ``symbol``). Every command that
changes something needs ``reason`` (except ``tick``) and ``actor``.

Reply: ``{"ok": true, ...}`` once the change is applied *and* its ledger record is
durable, or ``{"ok": false, "error": "..."}``.

The socket file is created owner-only (0600), or 0660 with
``[control] group_access``; it is never world-accessible, not even for the instant
between bind and chmod.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import anyio
import msgspec
from anyio.abc import ObjectSendStream, SocketListener, SocketStream
from anyio.streams.memory import MemoryObjectReceiveStream
from msgspec import Struct

from execd.messages import Entry

MAX_REQUEST = 64 * 1024
Command = Literal["status", "halt", "reduce", "resume", "tick", "safety-sell", "reload"]


class Request(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """One command for the daemon."""

    command: Command
    reason: str | None = None
    actor: str | None = None
    time: int | None = None
    venue: str | None = None
    symbol: str | None = None

    def problem(self) -> str | None:
        """What is missing for this command, or None."""
        needs = {"status": (), "tick": ("time", "actor"), "safety-sell": ("venue", "reason",
                                                                            "actor")}
        for name in needs.get(self.command, ("reason", "actor")):
            value = getattr(self, name)
            if value is None or (isinstance(value, str) and not value.strip()):
                return f"{self.command} needs {name}"
        return None


class ControlRequest:
    """A command on its way to the actor that carries it out, and its answer.

    The actor sets ``entries`` (the records to wait for), ``result`` or ``error``,
    then ``done``; the daemon waits for ``done`` and then for the records to be durable.
    """

    def __init__(self, request: Request) -> None:
        self.request = request
        self.done = anyio.Event()
        self.entries: list[Entry] = []
        self.result: dict[str, Any] = {}
        self.error: str | None = None
        # Set by the daemon when every record in ``entries`` is durable.
        self.durable = anyio.Event()
        self.undurable = 0
        # What the command carries beyond the request (a reload: the new config).
        self.payload: Any = None

    def fail(self, error: str) -> None:
        """Answer with ``error``."""
        self.error = error
        self.done.set()


ControlHook = Callable[[ControlRequest], None]
T = TypeVar("T")


def refuse_waiting(commands: MemoryObjectReceiveStream[ControlRequest]) -> None:
    """Answer every command still queued for an actor that is stopping."""
    while True:
        try:
            request = commands.receive_nowait()
        except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
            return
        request.fail("the daemon is stopping")


async def answer(request: ControlRequest, out: list[T], send: ObjectSendStream[list[T]],
                 on_control: ControlHook) -> None:
    """Hand a command's records downstream once its waiters are registered.

    ``on_control`` registers the wait for durability before anything is sent, so
    the records cannot become durable unseen.
    """
    request.entries = [item for item in out if isinstance(item, Entry)]
    if request.error is None:
        on_control(request)
    request.done.set()
    if out:
        # Shielded: these records are numbered already, and the ledger waits for them.
        with anyio.CancelScope(shield=True):
            await send.send(out)


class ControlInUse(Exception):
    """Another process is already serving the control socket."""


_request = msgspec.json.Decoder(Request).decode
_encode = msgspec.json.Encoder(decimal_format="string").encode

Handler = Callable[[Request], Awaitable[dict[str, Any]]]


def _claim_path(path: Path) -> None:
    """Remove a stale socket left by a daemon that died; refuse if one is alive."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ControlInUse(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise
        os.unlink(path)
    else:
        raise ControlInUse(f"another execd is serving {path}")
    finally:
        probe.close()


class ControlServer:
    """Accepts ``execd ctl`` connections and answers each with ``handler``."""

    def __init__(self, path: Path, *, group_access: bool, timeout: float,
                 handler: Handler) -> None:
        self.path = path
        self.mode = 0o660 if group_access else 0o600
        self.timeout = timeout
        self.handler = handler
        self._lock: int | None = None

    def _take_lock(self) -> None:
        """Hold ``<socket>.lock`` for as long as the socket is ours.

        Probing the socket alone is racy: a daemon that has bound but not yet
        listened looks dead to a second one, which would unlink and replace its
        socket. Only the lock holder may remove or create the socket file.
        """
        lock = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ControlInUse(f"another execd is serving {self.path} (it holds {lock})") from None
        self._lock = fd

    async def bind(self) -> SocketListener:
        """Create the socket file (replacing a stale one); raises ControlInUse if alive."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        try:
            _claim_path(self.path)
            # The umask makes bind() create the file with no access for others at all.
            old = os.umask(0o777 & ~self.mode)
            try:
                listener = await anyio.create_unix_listener(self.path)
            finally:
                os.umask(old)
            os.chmod(self.path, self.mode)
        except BaseException:
            self._release()
            raise
        return listener

    async def serve(self, listener: SocketListener) -> None:
        """Answer clients until cancelled; the socket file goes with it."""
        try:
            async with listener:
                await listener.serve(self._client)
        finally:
            self.remove()

    def remove(self) -> None:
        """Remove the socket file and let go of its lock (idempotent).

        Once the lock is released the path may be another daemon's: nothing after
        that touches it.
        """
        if self._lock is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    async def _client(self, stream: SocketStream) -> None:
        async with stream:
            reply: dict[str, Any]
            try:
                with anyio.fail_after(self.timeout):
                    data = await _read_line(stream)
                    request = _request(data)
                    problem = request.problem()
                    reply = ({"ok": False, "error": problem} if problem
                             else await self.handler(request))
            except TimeoutError:
                reply = {"ok": False, "error": f"no answer within {self.timeout:g}s"}
            except msgspec.DecodeError as exc:
                reply = {"ok": False, "error": f"bad request: {exc}"}
            except ValueError as exc:
                reply = {"ok": False, "error": str(exc)}
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                await stream.send(_encode(reply) + b"\n")


async def _read_line(stream: SocketStream) -> bytes:
    data = b""
    while b"\n" not in data:
        try:
            chunk = await stream.receive(4096)
        except anyio.EndOfStream:
            break
        data += chunk
        if len(data) > MAX_REQUEST:
            raise ValueError(f"request longer than {MAX_REQUEST} bytes")
    return data.split(b"\n", 1)[0]


def call(path: Path, request: Request, timeout: float) -> dict[str, Any]:
    """Send ``request`` to the daemon at ``path`` and return its reply (blocking client)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(msgspec.json.encode(request) + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    reply: dict[str, Any] = msgspec.json.decode(data)
    return reply
