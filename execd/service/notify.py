"""The service manager's notify protocol (sd_notify), spoken directly.

systemd names an AF_UNIX datagram socket in ``NOTIFY_SOCKET`` (a leading ``@``
means the abstract namespace); each datagram is newline-separated ``KEY=VALUE``
lines: ``READY=1``, ``STATUS=…``, ``RELOADING=1``, ``STOPPING=1``, ``WATCHDOG=1``.
Without the variable (a terminal, a test) every call does nothing.

``WATCHDOG_USEC`` (and ``WATCHDOG_PID``, when set, naming this process) asks for a
``WATCHDOG=1`` at least that often; :func:`watchdog_seconds` reads it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


def _address(name: str) -> str | bytes:
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    return name


class Notifier:
    """Sends notifications to the service manager, never blocking and never raising.

    A datagram the manager cannot take at once (its queue full, the socket gone) is
    dropped and counted: notifications are advisory, the daemon's work is not.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        name = env.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = None
        self._socket: socket.socket | None = None
        self.dropped = 0
        self.last_error: str | None = None
        if name and (name.startswith(("@", "/"))):
            self.address = _address(name)
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.setblocking(False)

    @property
    def enabled(self) -> bool:
        """True when a service manager listens."""
        return self._socket is not None

    def send(self, *lines: str) -> bool:
        """Send one datagram of ``lines``; False when it could not be delivered."""
        if self._socket is None or self.address is None:
            return False
        try:
            self._socket.sendto("\n".join(lines).encode(), self.address)
        except OSError as exc:
            self.dropped += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            return False
        return True

    def ready(self, status: str) -> bool:
        """Start-up (or a reload) is complete."""
        return self.send("READY=1", f"STATUS={_line(status)}")

    def status(self, status: str) -> bool:
        """A line for ``systemctl status``."""
        return self.send(f"STATUS={_line(status)}")

    def reloading(self, status: str) -> bool:
        """A reload began; :meth:`ready` ends it."""
        return self.send("RELOADING=1", f"STATUS={_line(status)}")

    def stopping(self, status: str) -> bool:
        """The daemon is draining and will exit."""
        return self.send("STOPPING=1", f"STATUS={_line(status)}")

    def extend(self, seconds: float) -> bool:
        """``EXTEND_TIMEOUT_USEC``: the manager is to wait ``seconds`` more for the next
        message before it judges the start (or stop) timed out (systemd 236 on)."""
        return self.send(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")

    def watchdog(self) -> bool:
        """Every part of the daemon reported in recently."""
        return self.send("WATCHDOG=1")

    def close(self) -> None:
        """Release the socket (idempotent)."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _line(text: str) -> str:
    # A newline would start a new KEY=VALUE pair: STATUS= is one line.
    return " ".join(text.split("\n"))


def watchdog_seconds(environ: Mapping[str, str] | None = None) -> float | None:
    """The watchdog period the service manager asked for, or None when it asked for none.

    ``WATCHDOG_PID`` naming another process means the request is not ours (a child
    that inherited the environment).
    """
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1_000_000
