"""The plan ledger: governance events, append-only and hash-chained like the execution ledger.

Same record format, chain, segment files and scan as ``execd/ledger``, in a
directory of its own; record kinds ``plan_event`` and ``season_event``. Commands that
change plans hold an exclusive lock on the directory while they read, decide and
append, so two operators cannot both take the same sequence number. After every
append the season's snapshot is rewritten atomically (it is derived, and can always
be rebuilt from the events).
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec

from execd.governance.plans import Governance, PlanEvent, SeasonEvent
from execd.ledger.record import LedgerChain, Record
from execd.ledger.scan import scan
from execd.ledger.segments import SegmentStore, fsync_dir
from execd.model.errors import NotRegular
from execd.model.files import kind_of
from execd.model.messages import encode

_plan_event = msgspec.json.Decoder(PlanEvent).decode
_season_event = msgspec.json.Decoder(SeasonEvent).decode

Append = Callable[[PlanEvent | SeasonEvent], None]


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: temp file, fsync, rename, fsync the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    with open(temp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    fsync_dir(path.parent)


def _open_lock(path: Path) -> int | None:
    """The lock file opened read-only, or None when there is none; NotRegular when it
    is anything but a regular file.

    O_NONBLOCK because opening a FIFO for reading waits for a writer, forever if none
    comes; O_NOFOLLOW so a link cannot point the lock, and what root opens, elsewhere.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno != errno.ELOOP or not os.path.islink(path):
            raise
        raise NotRegular(f"{path}: expected a regular lock file, found a symlink") from exc
    kind = kind_of(os.fstat(fd).st_mode)
    if kind is not None:
        os.close(fd)
        raise NotRegular(f"{path}: expected a regular lock file, found {kind}")
    return fd


class PlanLedger:
    """Reads and appends governance events in ``directory``."""

    def __init__(self, directory: Path, segment_bytes: int = 64 << 20) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes

    @contextmanager
    def _lock(self, kind: int) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".lock", "a+b") as handle:
            fcntl.flock(handle.fileno(), kind)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _fold(self, *, repair: bool) -> tuple[Governance, LedgerChain]:
        governance = Governance()

        def observe(record: Record) -> None:
            if record.kind == "plan_event":
                governance.apply(_plan_event(record.body))
            elif record.kind == "season_event":
                governance.apply(_season_event(record.body))

        result = scan(self.directory, observe, repair=repair)
        return governance, LedgerChain(result.next_seq, result.last_hash, result.last_time)

    def load(self) -> Governance:
        """The current state, read under a shared lock; nothing is created or changed.

        An operator reads plans as root in a directory the user execd owns: a lock file
        or directory made here would be root's, and the next change could not open it.
        So the lock file is opened read-only (flock needs no more), and a directory or
        lock file that does not exist yet is not made: no change has taken the lock,
        and what a first change writes meanwhile is read as a torn tail, not folded.
        A lock file that is not a regular file (a FIFO, a link, a directory) is refused
        with :class:`NotRegular` (exit 1) rather than opened, or waited on.
        """
        fd = _open_lock(self.directory / ".lock")
        if fd is None:
            return self._fold(repair=False)[0]  # no ledger yet, or no change ever made
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            return self._fold(repair=False)[0]
        finally:
            os.close(fd)  # and with it the lock

    @contextmanager
    def change(self) -> Iterator[tuple[Governance, Append]]:
        """The current state and a durable ``append``, under an exclusive lock."""
        with self._lock(fcntl.LOCK_EX):
            governance, chain = self._fold(repair=True)
            store = SegmentStore(self.directory, self.segment_bytes)
            store.open()

            def append(event: PlanEvent | SeasonEvent) -> None:
                kind = "plan_event" if isinstance(event, PlanEvent) else "season_event"
                store.write_durably(chain.append(kind, 0, encode(event)))
                governance.apply(event)
                self.write_snapshot(governance, event.season_id)

            try:
                yield governance, append
            finally:
                store.close()

    def write_snapshot(self, governance: Governance, season_id: str) -> Path:
        """Rewrite ``snapshots/<season>.json`` from the folded state."""
        path = self.directory / "snapshots" / f"{season_id}.json"
        write_atomically(path, msgspec.json.format(encode(governance.snapshot(season_id))))
        return path
