"""Ledger segment files: append, fsync, rotate (the only code that writes them).

Segments are ``segment-00000001.jsonl`` and up in one directory. The writer
rotates them itself when one passes ``segment_bytes``; nothing else may rename,
truncate or copy them (never logrotate's copytruncate). Readers that print or count
records (the scan behind recovery and verify, ``ledger tail``, replay's summary) take a
segment's lines from :func:`read_lines`, in bounded chunks, each line bounded too.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final, NamedTuple

from execd.model.errors import InUse, LedgerInUse, LedgerIOError
from execd.model.files import kind_of

# Readers take segments in chunks of this many bytes, never whole (README, "The ledger").
READ_CHUNK: Final = 1 << 20
# The longest line a reader holds. A record is at most an input line
# (``input.max_line_bytes``, at most 8 MiB) and its outcome's fields, so a longer line
# is no record execd wrote: it is reported as unreadable, never buffered whole.
MAX_LINE: Final = 16 << 20

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


def odd_segments(directory: Path) -> list[str]:
    """Each entry of ``directory`` named as a segment that :func:`list_segments` passes
    over because it is no regular file, with what it is ("segment-00000005.jsonl: a
    FIFO"). A reader that skipped one would call a gap in the ledger whole, and the
    writer rotating onto a FIFO's name would block forever.

    A character device is not reported: only a deliberate link puts one there, and
    ``/dev/full`` as the first segment is how a write that fails with ENOSPC is staged,
    and the daemon must then stop on that write (``ledger.io_failed``), as on a full disk.
    """
    if not directory.is_dir():
        return []
    found = []
    for entry in sorted(directory.iterdir()):
        if _NAME.match(entry.name) and not entry.is_file():
            try:
                mode = entry.stat().st_mode
            except OSError:
                found.append(f"{entry.name}: a symlink to nothing")
                continue
            if not stat.S_ISCHR(mode):
                found.append(f"{entry.name}: {kind_of(mode)}")
    return found


def fsync_dir(directory: Path) -> None:
    """Make a directory's entries (new or renamed files) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``, atomically and durably: a temp file beside it,
    fsync, rename, directory fsync. Blocking; OSError when it cannot be.

    The temp file is made anew, never opened through what is at its name: a FIFO there
    would block the open forever, a symlink would send the bytes elsewhere (O_EXCL |
    O_NOFOLLOW refuse both). Whatever goes wrong, no temp file is left behind: a partial
    one would hold the space the ledger's next commit needs (a full disk).
    """
    temp = path.with_name(f".{path.name}.tmp")
    if temp.is_symlink() or temp.exists():
        temp.unlink()  # a stale one (a crash mid-write); a directory there raises
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o640)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def open_derived(path: Path) -> int:
    """A descriptor for reading ``path``, a file execd wrote beside the ledger (a
    snapshot, the id index's files, the archive's manifests); never blocks.

    Only a regular file at the name itself: a FIFO would block a plain open forever
    (and a blocked worker thread cannot be cancelled, so not even a stop would end the
    wait), a device can be endless, and execd never makes a symlink there. ValueError
    saying what it is when it is not one; OSError when it cannot be opened
    (FileNotFoundError when there is none).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW's answer for a symlink at the name
            raise ValueError("a symlink, not a regular file") from None
        raise
    try:
        kind = kind_of(os.fstat(fd).st_mode)
    except BaseException:
        os.close(fd)
        raise
    if kind is not None:
        os.close(fd)
        raise ValueError(f"{kind}, not a regular file")
    return fd


def read_derived(path: Path, limit: int) -> bytes:
    """The bytes of ``path`` (see :func:`open_derived`), at most ``limit`` of them.

    ValueError when it is not a regular file or holds more than ``limit`` bytes, judged
    from ``fstat`` before anything is read (a sparse file of a terabyte costs nothing),
    and never more than ``limit`` + 1 bytes read (it may grow meanwhile).
    """
    return bytes(read_derived_buffer(path, limit))


def read_derived_buffer(path: Path, limit: int) -> bytearray:
    """:func:`read_derived` into a buffer the caller may keep and change (a saved filter
    of tens of megabytes is read once, never copied)."""
    fd = open_derived(path)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise ValueError(f"larger than {limit} bytes ({size})")
        # One byte more than the size: a file that grew meanwhile is seen to.
        data = bytearray(min(size, limit) + 1)
        view, got = memoryview(data), 0
        while got < len(data) and (n := os.readv(fd, [view[got:got + (1 << 24)]])):
            got += n
        del view
    finally:
        os.close(fd)
    if got > limit:
        raise ValueError(f"larger than {limit} bytes")
    del data[got:]
    return data


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


class Line(NamedTuple):
    """One line of a segment, as :func:`read_lines` found it."""

    data: bytes
    """Its bytes without the LF; empty when ``too_long`` (they were not kept)."""
    start: int
    """The offset of its first byte."""
    end: int
    """The offset just after its LF, or after its last byte when it has none."""
    complete: bool
    """It ends with an LF (only the last line of a segment can lack one)."""
    too_long: bool
    """It is longer than the reader's ``max_line``: reported, never buffered."""


def read_lines(path: Path, offset: int = 0, chunk: int = READ_CHUNK,
               max_line: int = MAX_LINE, *, partial: bool = False) -> Iterator[Line]:
    """Each line of ``path`` from ``offset`` on, split on LF alone; read in chunks of
    ``chunk`` bytes, never whole, so memory stays near ``chunk`` plus one line.

    LF alone: a record can hold an input line's own bytes, and a bare CR there is JSON
    whitespace, not the end of the record. A line longer than ``max_line`` bytes (LF
    not counted) is yielded with ``too_long`` and no data, its bytes skipped as they
    are read. A last line without its LF is yielded (``complete`` false) only with
    ``partial``: the writer may be writing it.
    """
    with open(path, "rb") as handle:
        handle.seek(offset)
        start = offset
        pending: list[bytes] = []  # the start of a line that a later chunk ends
        held = 0  # bytes in pending
        too_long = False  # the current line passed max_line: its bytes are dropped
        while data := handle.read(chunk):
            if b"\n" not in data:
                held += len(data)
                too_long = too_long or held > max_line
                if too_long:
                    pending.clear()
                else:
                    pending.append(data)
                continue
            pieces = data.split(b"\n")
            last = pieces.pop()
            for index, piece in enumerate(pieces):
                length = len(piece) + (held if index == 0 else 0)
                end = start + length + 1
                if (too_long and index == 0) or length > max_line:
                    yield Line(b"", start, end, True, True)
                elif index == 0 and pending:
                    yield Line(b"".join([*pending, piece]), start, end, True, False)
                else:
                    yield Line(piece, start, end, True, False)
                start = end
            held = len(last)
            too_long = held > max_line
            pending = [last] if last and not too_long else []
        if held and partial:
            data = b"" if too_long else b"".join(pending)
            yield Line(data, start, start + held, False, too_long)
