"""The control socket: how ``execd ctl`` talks to a running daemon.

Protocol: the client connects to an AF_UNIX stream socket, writes one JSON object
and a newline, and reads one JSON object and a newline back; then both close.

Request: ``{"command": "halt", "reason": "...", "actor": "..."}`` — commands
``status``, ``config`` (the resolved config, secrets masked), ``halt``, ``reduce``,
``resume``, ``tick`` (with ``time``), ``safety-sell`` (with ``venue`` and optionally
``symbol``) and ``cancel`` (with ``intent``: a parent order's id, whose schedule ends).
Every command that changes something needs ``reason`` (except ``tick``) and ``actor``.

Reply: ``{"ok": true, ...}`` once the change is applied *and* its ledger record is
durable, or ``{"ok": false, "error": "..."}``. A command that changes something and
is not answered within ``control.timeout_ms`` gets ``{"ok": false, "unconfirmed":
true, "error": "...", "check": "..."}``: it was not refused and may still take
effect (a halt during a frozen disk is applied when the disk thaws); ``check`` says
how to find out.

Limits: at most ``control.max_clients`` connections are served at once (each holds a
file descriptor), and never more than half of the descriptors free when serving
starts (``control.max_clients_lowered`` says so): a process out of descriptors fails
wherever it next opens a file, so clients must not be able to take them all. One
beyond the bound is answered ``{"ok": false, "error": "busy: ..."}`` without
waiting for its request, and closed. A client must send its request line
within ``control.request_timeout_ms``. A request is at most 64 KiB. When accept()
fails because the process is out of file descriptors or memory, the server logs
``control.accept_failed`` and accepts again ``control.accept_retry_ms`` later:
the connections waiting meanwhile stay in the listen backlog.

The socket file is created owner-only (0600), or 0660 with
``[control] group_access``; it is never world-accessible, not even for the instant
between bind and chmod.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import resource
import socket
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import anyio
import msgspec
from anyio.abc import ObjectSendStream, SocketAttribute, SocketListener, SocketStream
from anyio.streams.memory import MemoryObjectReceiveStream
from msgspec import Meta, Struct

from execd.config.schema import ControlConfig
from execd.model.clock import WallClock
from execd.model.errors import ControlInUse, RequestTooLong, Unconfirmed
from execd.model.messages import Entry
from execd.service import logs

MAX_REQUEST = 64 * 1024
# What ``execd ctl`` reads back at most: a status reply lists every open position.
MAX_REPLY = 64 * 1024 * 1024
# The ledger's integer range: times are signed 64-bit wherever the ledger is read.
MAX_TIME = 2**63 - 1
Command = Literal["status", "halt", "reduce", "resume", "tick", "safety-sell", "reload",
                  "config", "cancel", "resume-schedule"]

# How to learn whether a command that was not confirmed took effect after all.
CHECK: dict[str, str] = {
    "halt": "`execd ctl status` (state) or `execd ledger tail --kind trading_state`",
    "reduce": "`execd ctl status` (state) or `execd ledger tail --kind trading_state`",
    "resume": "`execd ctl status` (state) or `execd ledger tail --kind trading_state`",
    "tick": "`execd ctl status` (logical time) or `execd ledger tail --kind tick`",
    "safety-sell": "`execd ledger tail --kind safety_sell` and `execd ctl status` (positions)",
    "reload": "`execd ledger tail --kind config` or `execd ctl status` (config reloads)",
    "cancel": "`execd ledger tail --intent ID` (the parent's outcome) or `execd ctl status`",
    "resume-schedule": "`execd ledger tail --kind resume` or `execd ctl status` (schedules)",
}

# accept() errors that mean "out of a resource for now", not "the socket is broken".
_EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
# While a condition lasts, a warning on its first occurrence and then every this many.
_REMIND_EVERY = 100


class Request(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """One command for the daemon."""

    command: Command
    reason: str | None = None
    actor: str | None = None
    time: int | None = None
    venue: str | None = None
    symbol: str | None = None
    intent: str | None = None
    # safety-sell: "venue" exits what the venue holds; "ledger" (None) execd's positions.
    basis: Literal["ledger", "venue"] | None = None
    # safety-sell --basis venue: how old (seconds) the holdings read may be (None: the
    # default, README "What the venue holds").
    max_age: Annotated[float, Meta(gt=0, le=31_536_000)] | None = None

    def problem(self) -> str | None:
        """What is missing for this command, or None."""
        needs = {"status": (), "config": (), "tick": ("time", "actor"),
                 "safety-sell": ("venue", "reason", "actor"),
                 "cancel": ("intent", "reason", "actor"),
                 "resume-schedule": ("intent", "reason", "actor")}
        for name in needs.get(self.command, ("reason", "actor")):
            value = getattr(self, name)
            if value is None or (isinstance(value, str) and not value.strip()):
                return f"{self.command} needs {name}"
        time = self.time
        if time is not None and not 0 <= time <= MAX_TIME:
            # A huge number is named by its size: echoing 4,000 digits helps nobody.
            found = str(time) if abs(time) < 10**30 else f"a {len(str(abs(time)))}-digit number"
            return (f"{self.command} needs time from 0 to {MAX_TIME} (the ledger's integer "
                    f"range), found {found}")
        return None

    @property
    def changes(self) -> bool:
        """True for a command that changes the daemon (all but ``status`` and ``config``)."""
        return self.command not in ("status", "config")


class ControlRequest:
    """A command on its way to the actor that carries it out, and its answer.

    The actor sets ``entries`` (the records to wait for), ``result`` or ``error``,
    then ``done``; the daemon waits for ``done`` and then for the records to be durable.
    """

    def __init__(self, request: Request) -> None:
        self.request = request
        # When it arrived (ns, the wall clock): what a Safety Sell from the venue's
        # holdings judges their age by. Commands never reach the paper path's decisions
        # through it (a replay takes none).
        self.wall = WallClock().now()
        self.done = anyio.Event()
        self.entries: list[Entry] = []
        self.result: dict[str, Any] = {}
        self.error: str | None = None
        # Set by the daemon when every record in ``entries`` is durable.
        self.durable = anyio.Event()
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
    """Accepts ``execd ctl`` connections and answers each with ``handler``.

    At most ``max_clients`` are served at once; each must send its request within
    ``request_timeout_ms`` and read its reply within that time again, so a client
    that does nothing holds its slot (and its file descriptor) only that long.
    """

    def __init__(self, config: ControlConfig, *, handler: Handler) -> None:
        self.path = Path(config.socket)
        self.mode = 0o660 if config.group_access else 0o600
        self.timeout = config.timeout_ms / 1000
        self.max_clients = config.max_clients
        self.request_timeout = config.request_timeout_ms / 1000
        self.accept_retry_ms = config.accept_retry_ms
        self.handler = handler
        self.log = logs.get("control")
        self._lock: int | None = None
        self._clients = 0
        self.capacity = config.max_clients  # max_clients, or less (see _capacity)
        self._refused = 0  # busy refusals since a client was last let in

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
            self.capacity = self._capacity()
            async with listener, anyio.create_task_group() as clients:
                while True:
                    stream = await self._accept(listener)
                    if self._clients >= self.capacity:
                        await self._refuse_busy(stream)
                        continue
                    self._clients += 1
                    self._refused = 0
                    clients.start_soon(self._client, stream)
        finally:
            self.remove()

    def _capacity(self) -> int:
        """``max_clients``, lowered when the file descriptor limit has no room for it.

        Each client holds a descriptor, and a process out of descriptors fails
        wherever it next opens one (the inbox scan, a segment, a venue connection),
        not only here. So control clients get at most half of what is free when
        serving starts, whatever ``max_clients`` says.
        """
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        try:
            in_use = len(os.listdir("/proc/self/fd"))
        except OSError:  # no /proc: nothing to measure against
            return self.max_clients
        if soft == resource.RLIM_INFINITY:
            return self.max_clients
        room = max(1, (soft - in_use) // 2)
        if room >= self.max_clients:
            return self.max_clients
        self.log.warning("control.max_clients_lowered", max_clients=self.max_clients,
                         effective=room, fd_limit=soft, fds_open=in_use)
        return room

    async def _accept(self, listener: SocketListener) -> SocketStream:
        """The next connection; running out of descriptors or memory only delays it.

        Out of file descriptors, accept() fails until something closes one (an
        idle client reaching its deadline, a finished input file): the connection
        stays in the listen backlog, so after a pause it is simply tried again.
        """
        failures = 0
        while True:
            try:
                stream = await listener.accept()
            except anyio.BrokenResourceError as exc:
                cause = exc.__cause__
                if not isinstance(cause, OSError) or cause.errno not in _EXHAUSTED:
                    raise
                failures += 1
                if failures % _REMIND_EVERY == 1:
                    self.log.warning("control.accept_failed", errno=errno.errorcode[cause.errno],
                                     error=os.strerror(cause.errno), failures=failures,
                                     clients=self._clients, retry_ms=self.accept_retry_ms)
                await anyio.sleep(self.accept_retry_ms / 1000)
                continue
            if failures:
                self.log.info("control.accept_resumed", failures=failures, clients=self._clients)
            return stream

    async def _refuse_busy(self, stream: SocketStream) -> None:
        """Say "busy" and close, without waiting for the client in any way."""
        self._refused += 1
        if self._refused % _REMIND_EVERY == 1:
            self.log.warning("control.busy", clients=self._clients, capacity=self.capacity,
                             refused=self._refused)
        reply = _encode({"ok": False, "error": f"busy: {self._clients} control clients are "
                         "connected, the most served at once (control.max_clients); try "
                         "again shortly"}) + b"\n"
        raw = stream.extra(SocketAttribute.raw_socket)  # noqa: S610 - anyio's extra(), not Django's
        # The socket is non-blocking and its send buffer empty: a short line goes at once
        # or not at all. Reading what the client already sent first keeps the close
        # from resetting the connection before it has read the reply.
        with contextlib.suppress(OSError):
            raw.recv(MAX_REQUEST)
        with contextlib.suppress(OSError):
            raw.send(reply)
        await stream.aclose()

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
        try:
            async with stream:
                reply = await self._answer(stream)
                if reply is None:
                    return
                # A client that never reads its reply gives its slot back too.
                with anyio.move_on_after(self.request_timeout), contextlib.suppress(
                        anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    await stream.send(_encode(reply) + b"\n")
        finally:
            self._clients -= 1

    async def _answer(self, stream: SocketStream) -> dict[str, Any] | None:
        """The reply to the client's request, or None when the client is gone."""
        try:
            with anyio.fail_after(self.request_timeout):
                data = await _read_line(stream)
        except TimeoutError:
            return {"ok": False, "error": f"no request within {self.request_timeout:g}s "
                    "(control.request_timeout_ms)"}
        except RequestTooLong as exc:
            return {"ok": False, "error": str(exc)}
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            return None
        try:
            request = _request(data)
        except msgspec.DecodeError as exc:
            return {"ok": False, "error": f"bad request: {exc}"}
        problem = request.problem()
        if problem:
            return {"ok": False, "error": problem}
        try:
            with anyio.fail_after(self.timeout):
                return await self.handler(request)
        except TimeoutError:
            if not request.changes:
                return {"ok": False, "error": f"no answer within {self.timeout:g}s "
                        "(control.timeout_ms)"}
            # The command may be queued, or applied with its record not yet durable
            # (a frozen disk): "refused" would be wrong, and an operator who retries
            # on that belief could act twice.
            return {"ok": False, "unconfirmed": True, "check": CHECK[request.command],
                    "error": f"{request.command} not confirmed within {self.timeout:g}s "
                    "(control.timeout_ms): it was not refused and may still take effect"}
        except ValueError as exc:
            return {"ok": False, "error": str(exc)}


async def _read_line(stream: SocketStream) -> bytes:
    data = bytearray()
    while b"\n" not in data:
        try:
            chunk = await stream.receive(4096)
        except anyio.EndOfStream:
            break
        data += chunk
        if len(data) > MAX_REQUEST:
            raise RequestTooLong(f"request longer than {MAX_REQUEST} bytes")
    return bytes(data.split(b"\n", 1)[0])


def call(path: Path, request: Request, timeout: float) -> dict[str, Any]:
    """Send ``request`` to the daemon at ``path`` and return its reply (blocking client).

    Raises OSError when the request cannot have been delivered (no socket, nobody
    listening, no connection within ``timeout``, closed before it was read), and
    Unconfirmed when it may have been.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sent = True
        try:
            sock.sendall(msgspec.json.encode(request) + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            # The daemon answered before reading (busy) and closed: read that answer.
            sent = False
        except TimeoutError:
            raise Unconfirmed(f"no answer within {timeout:g}s") from None
        data = bytearray()
        try:
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
                if len(data) > MAX_REPLY:
                    raise Unconfirmed(f"a reply longer than {MAX_REPLY} bytes")
        except OSError as exc:
            if not sent:
                raise  # the request never got through: nothing can have been applied
            if isinstance(exc, TimeoutError):
                raise Unconfirmed(f"no answer within {timeout:g}s") from None
            raise Unconfirmed(f"the connection failed: {exc.strerror or exc}") from None
    if not data:
        if not sent:
            raise ConnectionResetError(errno.ECONNRESET, "the daemon closed the connection "
                                       "before reading the request")
        raise Unconfirmed("the daemon closed the connection without an answer")
    try:
        reply: Any = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise Unconfirmed(f"an answer that is not JSON ({exc})") from None
    if not isinstance(reply, dict):
        raise Unconfirmed("an answer that is not a JSON object")
    return reply
