"""The snapshot files of checkpoints: ``<ledger_dir>/checkpoints/``.

Each is ``snapshot-<through seq, 20 digits>.msgpack`` (:mod:`execd.ledger.snapshot`),
written atomically (temp file, fsync, rename, directory fsync) like every derived
file (DESIGN §3), and read back with a bounded size. Only the newest
``ledger.checkpoints_kept`` are kept. A file here is never trusted on its own: it
counts only when the ``checkpoint`` record right after its last record names it
with its sha256 and size (``ledger/recovery.py``).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from execd.ledger.segments import fsync_dir

DIRECTORY = "checkpoints"
# A snapshot larger than this is not read: far above any the fold makes today (the
# id set, 16 bytes an id, is the largest part), and it bounds what start-up reads.
MAX_BYTES = 1 << 32
_NAME = re.compile(r"^snapshot-(\d{20})\.msgpack$")


def name(through: int) -> str:
    """The file name of the snapshot through record ``through``."""
    return f"snapshot-{through:020d}.msgpack"


def through_of(file_name: str) -> int | None:
    """The record a snapshot's file name says it runs through (None: not a snapshot)."""
    match = _NAME.match(file_name)
    return int(match.group(1)) if match else None


def listed(ledger: Path) -> list[Path]:
    """The snapshot files beside ``ledger``, newest (highest record) first."""
    directory = ledger / DIRECTORY
    if not directory.is_dir():
        return []
    found = [(through, entry) for entry in directory.iterdir()
             if (through := through_of(entry.name)) is not None]
    return [path for _, path in sorted(found, reverse=True)]


def write(ledger: Path, file_name: str, data: bytes) -> None:
    """Write one snapshot atomically and durably. Blocking."""
    directory = ledger / DIRECTORY
    if not directory.is_dir():
        directory.mkdir(mode=0o750)
        fsync_dir(ledger)
    temp = directory / f".{file_name}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, directory / file_name)
    fsync_dir(directory)


def prune(ledger: Path, kept: int, through: int) -> list[str]:
    """Remove all but the ``kept`` newest snapshots up to record ``through`` (the one just
    written), every one past it, and stray temp files; the names removed.

    One past ``through`` belongs to no chain this ledger holds: a crash kept it from
    being recorded, and the records after the restart took other seqs.
    """
    removed = []
    files = listed(ledger)
    stale = [path for path in files if (through_of(path.name) or 0) > through]
    current = [path for path in files if path not in stale]
    for path in [*stale, *current[kept:]]:
        path.unlink(missing_ok=True)
        removed.append(path.name)
    directory = ledger / DIRECTORY
    for stray in directory.glob(".snapshot-*.tmp"):
        stray.unlink(missing_ok=True)
    return removed


def read(path: Path, limit: int = MAX_BYTES) -> bytes:
    """The bytes of the snapshot at ``path``; ValueError when it holds more than ``limit``.

    Only a regular file is read (no FIFO or device can hang start-up), and never more
    than ``limit`` + 1 bytes.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        chunks = []
        left = limit + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 24))):
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise ValueError(f"larger than {limit} bytes")
    return data

