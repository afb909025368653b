"""The head witness: a durable note, beside the segments, of a record known to be on disk.

The hash chain proves that nothing inside the ledger was edited, removed or reordered,
but not that nothing was cut off its end: a ledger cut at a line boundary, or without
its newest segment, is still a valid chain, and the intents whose outcomes were cut
would run again. So the writer keeps ``head.json`` (``{"seq": S, "hash": H}``) — written
after the records it names are fsynced, atomically (temp file, fsync, rename, directory
fsync), at most every ``ledger.head_interval_ms`` (and that long after the last commit
of a burst, so it never lags longer) and at every start and stop — and
every start and ``execd ledger verify`` check the chain against it: the chain must
reach seq S, and record S must have hash H. The daemon also logs the head
(``ledger.head``) at start, at stop and every ``ledger.head_log_ms``, so journald keeps
a copy that a deletion in the ledger directory cannot reach; ``execd ledger verify
--expect S:H`` checks against such a copy.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any

import msgspec
from msgspec import Struct

from execd.ledger.segments import fsync_dir
from execd.model.clock import monotonic
from execd.model.errors import UsageError, WitnessUnreadable

NAME = "head.json"
_EXPECT = re.compile(r"^(?P<seq>[0-9]{1,19}):(?P<hash>[0-9a-f]{64})$")


class Head(Struct, frozen=True):
    """A record the ledger is known to hold: its seq and its hash."""

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"


def parse_expect(text: str) -> Head:
    """``SEQ:HASH`` as printed by verify and logged as ``ledger.head``; UsageError if not."""
    match = _EXPECT.match(text.strip())
    if match is None:
        raise UsageError(f"expected SEQ:HASH (a seq, a colon, 64 hex digits), found {text!r}")
    return Head(int(match["seq"]), match["hash"])


def read(directory: Path) -> Head | None:
    """The witness in ``directory``, or None when there is none."""
    path = directory / NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise WitnessUnreadable(f"{path}: {exc.strerror or exc}") from None
    try:
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    try:
        return msgspec.json.decode(data, type=Head)
    except msgspec.DecodeError as exc:
        raise WitnessUnreadable(f"{path}: not a head witness ({exc})") from None


def write(directory: Path, head: Head) -> None:
    """Replace the witness atomically and durably. Blocking."""
    temp = directory / f".{NAME}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
    try:
        os.write(fd, msgspec.json.encode(head) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, directory / NAME)
    fsync_dir(directory)


class HeadWitness:
    """The writer's side: refresh the witness after commits, now and then."""

    def __init__(self, directory: Path, *, every_s: float, log_every_s: float,
                 log: Any) -> None:
        self.directory = directory
        self.every_s = every_s
        self.log_every_s = log_every_s
        self.log = log
        self._written = self._logged = -1e18
        self._failing = False
        # The newest durable head, and the one head.json holds: a quiet spell after a
        # burst must not leave the witness behind (``refresh``).
        self._latest: Head | None = None
        self._on_disk: Head | None = None
        # The syncer's thread and refresh()'s may both write: one at a time.
        self._lock = threading.Lock()

    def now(self, head: Head) -> None:
        """Write the witness and log the head (start and stop). Blocking."""
        self._write(head)
        self._log(head)

    def after_commit(self, head: Head) -> None:
        """Called in the syncer's thread once ``head`` is durable; writes when due."""
        self._latest = head
        moment = monotonic()
        if moment - self._written >= self.every_s:
            self._write(head)
        if moment - self._logged >= self.log_every_s:
            self._log(head)

    @property
    def behind(self) -> bool:
        """Whether head.json names an older record than the newest durable one."""
        return self._latest is not None and self._latest != self._on_disk

    def refresh(self) -> None:
        """Write the newest durable head if head.json is behind it. Blocking."""
        latest = self._latest
        if latest is not None and latest != self._on_disk:
            self._write(latest)

    def _write(self, head: Head) -> None:
        with self._lock:
            if self._on_disk is not None and head.seq <= self._on_disk.seq:
                return  # never move the witness backwards
            self._written = monotonic()
            self._write_locked(head)

    def _write_locked(self, head: Head) -> None:
        try:
            write(self.directory, head)
        except OSError as exc:
            # The ledger itself is durable; only the truncation check lags. Say so once.
            if not self._failing:
                self.log.error("ledger.head_unwritten", error=exc.strerror or str(exc))
            self._failing = True
        else:
            self._failing = False
            self._on_disk = head

    def _log(self, head: Head) -> None:
        self._logged = monotonic()
        self.log.info("ledger.head", seq=head.seq, hash=head.hash, expect=str(head))
