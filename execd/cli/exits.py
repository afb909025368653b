"""How a command ends when an exception stops it: its exit status, and for the daemon, its report.

:func:`status` is the one mapping from an exception to an exit status, used by every
command. An execd exception carries its own status (``exit_code``, declared with the
class in :mod:`execd.model.errors`), so a new one is mapped where it is declared; the
table here adds only the built-in exceptions a command meets. Statuses a command
decides from what it found rather than from an exception (a verification that failed,
arguments checked one by one) are the named constants of :mod:`execd.model.errors`.

:func:`daemon_stopped` reports what stopped ``execd run`` or ``execd replay``: config
problems on stderr, one per line; a known family as one log event (``DAEMON_EVENTS``);
anything else as a crash, with its traceback. The statuses are documented in
:mod:`execd.cli.main` and the README.
"""

from __future__ import annotations

import sys
from typing import Final

from execd.model.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    ConfigError,
    ExecdError,
    InUse,
    LedgerError,
    LedgerIOError,
    MetricsUnavailable,
    RunDamaged,
)
from execd.service import logs

# Built-in exceptions and their statuses, first match first; any other one is a failure.
# An OSError (a closed stdout's BrokenPipeError too) is a failure, reported by the command.
BUILTIN_STATUSES: Final[tuple[tuple[type[BaseException], int], ...]] = (
    (KeyboardInterrupt, EXIT_INTERRUPTED),
    (OSError, EXIT_FAILED),
)

# The event logged when one of these stops the daemon, first match first.
DAEMON_EVENTS: Final[tuple[tuple[type[ExecdError], str], ...]] = (
    (MetricsUnavailable, "metrics.unavailable"),
    (InUse, "daemon.in_use"),  # the ledger, the lakehouse or the control socket
    (RunDamaged, "index.damaged"),  # a run's block failed its check (cli/serve.py)
    (LedgerError, "ledger.refused"),
    (LedgerIOError, "ledger.io_failed"),
)


def status(exc: BaseException) -> int:
    """The exit status a command ends with when ``exc`` stops it."""
    if isinstance(exc, ExecdError):
        return exc.exit_code
    for kind, code in BUILTIN_STATUSES:
        if isinstance(exc, kind):
            return code
    return EXIT_FAILED


def daemon_event(exc: BaseException) -> str | None:
    """The event that reports ``exc`` stopping the daemon; None for a crash."""
    for kind, event in DAEMON_EVENTS:
        if isinstance(exc, kind):
            return event
    return None


def daemon_stopped(exc: BaseException) -> int:
    """Report ``exc``, the root cause that stopped the daemon; return the exit status.

    Called while ``exc`` is being handled, so that a crash is logged with its traceback.
    """
    if isinstance(exc, ConfigError):
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return status(exc)
    if isinstance(exc, KeyboardInterrupt):
        # Ctrl-C reached the daemon itself (a replay takes no signals): it stopped without
        # its drain and its stop record, which is a failure, not a clean interruption.
        return EXIT_FAILED
    event = daemon_event(exc)
    if event is None:
        logs.get("daemon").exception("daemon.crashed", error=repr(exc))
        # Whatever the exception, a crash of the daemon is "stopped on an error".
        return EXIT_FAILED
    logs.get("daemon").error(event, error=str(exc))
    return status(exc)
