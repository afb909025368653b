"""Ledger segment files: append, fsync, rotate (the only code that writes them).

Segments are ``segment-00000001.jsonl`` and up in one directory. The writer
rotates them itself when one passes ``segment_bytes``; nothing else may rename,
truncate or copy them (never logrotate's copytruncate). Readers that print or count
records (``ledger tail``, replay's summary) take a segment's lines from :func:`read_lines`,
in bounded chunks.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from execd.model.errors import InUse, LedgerInUse, LedgerIOError

_NAME = re.compile(r"^segment-(\d{8})\.jsonl$")


@contextmanager
def exclusive(directory: Path, in_use: type[InUse] = LedgerInUse,
              what: str = "the ledger") -> Iterator[None]:
    """Hold ``directory``'s lock (a flock on the directory) for as long as the block runs.

    Non-blocking: a second daemon on the same ledger stops at once with LedgerInUse
    instead of writing a record of its own into the first one's chain (and likewise
    for the lakehouse, with ``in_use`` and ``what`` saying which).
    """
    directory.mkdir(parents=True, exist_ok=True)
    # The lock is on the directory itself, not on a file in it: a clean-up job that
    # deletes a lock file would let a second daemon in, and a directory cannot be
    # deleted while it holds the ledger.
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise in_use(f"another process holds {what} in {directory}") from None
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def segment_name(number: int) -> str:
    """File name of segment ``number``."""
    return f"segment-{number:08d}.jsonl"


def list_segments(directory: Path) -> list[Path]:
    """Segment files in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        match = _NAME.match(entry.name)
        if match and entry.is_file():
            found.append((int(match.group(1)), entry))
    return [path for _, path in sorted(found)]


def fsync_dir(directory: Path) -> None:
    """Make a directory's entries (new or renamed files) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SegmentStore:
    """Appends whole batches of records to the newest segment and syncs them."""

    def __init__(self, directory: Path, segment_bytes: int) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._fd = -1
        self._number = 0
        self.size = 0

    def open(self) -> None:
        """Open the newest segment for appending, creating the first if none exists."""
        self.directory.mkdir(parents=True, exist_ok=True)
        segments = list_segments(self.directory)
        self._number = int(_NAME.match(segments[-1].name).group(1)) if segments else 1  # type: ignore[union-attr]
        self._open_current()

    def _open_current(self) -> None:
        path = self.directory / segment_name(self._number)
        existed = path.exists()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self.size = os.fstat(self._fd).st_size
        if not existed:
            fsync_dir(self.directory)

    def write_durably(self, data: bytes) -> None:
        """Append ``data`` (whole lines) and fsync. Blocking: run it off the event loop."""
        try:
            if self.size and self.size + len(data) > self.segment_bytes:
                self._rotate()
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
        except OSError as exc:
            raise LedgerIOError(f"ledger write or fsync failed: {exc}") from exc
        self.size += len(data)

    def _rotate(self) -> None:
        os.fsync(self._fd)
        os.close(self._fd)
        self._number += 1
        self._open_current()

    def close(self) -> None:
        """Close the current segment (everything written is already synced)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def read_lines(path: Path, offset: int, chunk: int = 1 << 20) -> Iterator[tuple[bytes, int]]:
    """Each complete line of ``path`` from ``offset`` on, split on LF alone, with the
    offset just after it; read in chunks of ``chunk`` bytes, never whole.

    LF alone: a record can hold an input line's own bytes, and a bare CR there is JSON
    whitespace, not the end of the record. A last line without its LF is not yielded
    (the writer may be writing it).
    """
    with open(path, "rb") as handle:
        handle.seek(offset)
        pending: list[bytes] = []  # the start of a line that the next chunk ends
        while data := handle.read(chunk):
            if b"\n" not in data:
                pending.append(data)
                continue
            pieces = data.split(b"\n")
            pieces[0] = b"".join([*pending, pieces[0]])
            pending = [pieces.pop()]
            for line in pieces:
                offset += len(line) + 1
                yield line, offset
