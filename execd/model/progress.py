"""A beat from long blocking work, for whoever watches it (start-up's recovery).

:data:`PROGRESS` holds what to call, per context: start-up sets it, in its recovery
thread, to its recovery pulse (app/daemon.py), and the loops that can take minutes on
a long ledger (a scan of the segments, an index run written or read whole) call
:func:`beat` now and then. The supervisor then tells the service manager that a long
recovery goes on (``EXTEND_TIMEOUT_USEC``) only while the beats come (app/supervisor.py).
Anywhere else nothing is set, and a beat costs a lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

PROGRESS: ContextVar[Callable[[], None] | None] = ContextVar("progress", default=None)


def beat() -> None:
    """Tell whoever watches this context's work that it goes on."""
    progress = PROGRESS.get()
    if progress is not None:
        progress()
