"""Every exception execd raises, in one hierarchy, each carrying the exit status it means.

:class:`ExecdError` is the base; beneath it are the families (config and command line,
input and files, the ledger, a directory or socket in use, the control socket,
governance) and their members. ``exit_code`` is the status a command ends with when the
exception stops it; the CLI reads it in one place (:func:`execd.cli.exits.status`). The
statuses are the ones the README and :mod:`execd.cli.main` document:

====  =========================================================================
0     success
1     failed: verification failed, the daemon stopped on an error, refused
2     bad config or bad command line
3     the ledger cannot be used (corrupt, cut short, not empty for a replay, or
      holding live orders this config cannot resolve)
4     an ``execd ctl`` change sent but not confirmed (see :mod:`execd.cli.ctl`)
130   interrupted (Ctrl-C)
====  =========================================================================

Members that were built-in exceptions before this hierarchy keep that base too
(``NotRegular`` an ``OSError``; ``ClockRegression``, ``GovernanceError``,
``RequestTooLong`` and ``UsageError`` ``ValueError`` s; ``InUse`` and ``LedgerIOError``
``RuntimeError`` s), so every ``except OSError`` or ``except ValueError`` that caught
one still does: the reader refuses a non-regular file through its ``except OSError``,
and the control handlers answer a ``ValueError`` as a refusal. Two private exceptions
stay beside the code they steer, because they never leave it
(``execd.model.input._NumberGiven``, ``execd.reader.shell._Stopped``); they are
``ExecdError`` s all the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Final

from msgspec import Struct

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_CONFIG: Final = 2
EXIT_LEDGER: Final = 3
EXIT_UNCONFIRMED: Final = 4
EXIT_INTERRUPTED: Final = 130  # 128 + SIGINT, as shells report it


class ExecdError(Exception):
    """The base of every exception execd raises; ``exit_code`` is the status it means."""

    exit_code: ClassVar[int] = EXIT_FAILED


# --------------------------------------------------------------------------- config


class ConfigProblem(Struct, frozen=True):
    """One thing wrong with a config file."""

    file: str
    key: str
    expected: str
    found: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: expected {self.expected}, found {self.found}"


class ConfigError(ExecdError):
    """The config file cannot be used; ``problems`` says why, one line each."""

    exit_code = EXIT_CONFIG

    def __init__(self, problems: list[ConfigProblem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


class UsageError(ExecdError, ValueError):
    """A command-line argument that cannot be used; the message says why."""

    exit_code = EXIT_CONFIG


class ReloadRefused(ExecdError):
    """A reload that cannot be applied; ``problems`` says why, one line each.

    The daemon answers it to ``execd ctl reload`` (or logs it after SIGHUP) and runs on
    with the config it had: it never ends a command.
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


# --------------------------------------------------------------------------- input


class InputError(ExecdError):
    """Input execd would not take: a file, a tick, a submission."""


class FileRefused(InputError):
    """A file that was not read: missing, unreadable, not a regular file, or too large.

    ``expected`` and ``found`` are the two halves of the message; ``missing`` is true
    when nothing exists at the path (some callers count that as an empty file).
    """

    # The daemon turns it into a config problem or a file's outcome; a command meets it
    # only for a file its command line names (``--key-file``): a usage problem.
    exit_code = EXIT_CONFIG

    def __init__(self, path: str | Path, expected: str, found: str, *,
                 missing: bool = False) -> None:
        super().__init__(f"{path}: expected {expected}, found {found}")
        self.path = str(path)
        self.expected = expected
        self.found = found
        self.missing = missing


class NotRegular(InputError, OSError):
    """A path that execd only reads as a regular file is something else."""


class ClockRegression(InputError, ValueError):
    """A tick tried to move the logical clock backwards."""


class SubmitError(InputError):
    """The file was not submitted; the message says why (one line per problem)."""


# --------------------------------------------------------------------------- ledger


class LedgerError(ExecdError):
    """The ledger cannot be used as it is found: execd does not start on it."""

    exit_code = EXIT_LEDGER


class LedgerCorrupt(LedgerError):
    """A bad record is followed by valid ones: the ledger was damaged or tampered with."""


class LedgerTruncated(LedgerCorrupt):
    """The chain ends before a record the head witness says was durable."""


class LedgerArchived(LedgerError):
    """Start-up must fold records that were archived (no checkpoint is usable): folding
    what is left would forget their outcomes and run their intents again."""


class IndexUnusable(LedgerError):
    """The id index cannot be kept where execd keeps it: ``<ledger_dir>/index`` is not a
    directory, or the rebuilt index cannot be written there (a full disk, a size limit).
    Start-up stops naming the path: without the index, duplicate ids go unrefused."""


class WitnessUnreadable(LedgerError):
    """head.json exists but is not a head witness."""


class LedgerNotEmpty(LedgerError):
    """``execd replay`` writes a new ledger and refuses to append to an existing one."""


class UnresolvedOrders(LedgerError):
    """The ledger holds live orders without an outcome that this config cannot resolve."""


class IndexDamaged(ExecdError):
    """The on-disk id index is missing, damaged or disagrees with its manifest.

    Never the ledger's fault and never a reason to stop: the index is derived state,
    so whoever opens it rebuilds it from the ledger (execd/ledger/index/store.py).
    """


class RunDamaged(IndexDamaged):
    """A block of an index run failed its check when it was read (runs are opened by
    their meta alone, execd/ledger/index/runs.py). Whoever was asking cannot answer,
    so the daemon stops after removing that index's manifest (``store.condemn``): the
    next start rebuilds the index, and the intent being decided, never recorded, is
    decided again then. ``path`` is the run's file."""

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = path


class LedgerIOError(ExecdError, RuntimeError):
    """Writing or syncing the ledger failed. The daemon stops; the write is not retried,
    because a second fsync may report success for data that never reached the disk."""

    # Not a LedgerError: the ledger is not judged unusable (exit 3); the daemon stopped
    # on an error (exit 1), and the next start recovers what reached the disk.


# --------------------------------------------------------------------------- in use


class InUse(ExecdError, RuntimeError):
    """Another process holds a directory that only one daemon may own at a time."""


class LedgerInUse(InUse):
    """Another process holds the ledger: two writers would fork the chain."""


class LakehouseInUse(InUse):
    """Another daemon holds the lakehouse: both would claim and execute the same files."""


class ControlInUse(InUse):
    """Another process is already serving the control socket."""


# --------------------------------------------------------------------------- service


class MetricsUnavailable(ExecdError):
    """The metrics endpoint could not be bound."""


class ControlError(ExecdError):
    """Talking over the control socket went wrong."""


class RequestTooLong(ControlError, ValueError):
    """A client sent more than MAX_REQUEST bytes without a newline."""


class Unconfirmed(ControlError):
    """The request reached the daemon's socket but no whole reply came back.

    The daemon may still read it and act on it (a request waiting in the listen
    backlog is read after the client has gone), so its effect is unknown.
    """

    exit_code = EXIT_UNCONFIRMED


# --------------------------------------------------------------------------- governance


class GovernanceError(ExecdError, ValueError):
    """A governance request was refused; the message says why."""
