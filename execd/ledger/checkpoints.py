"""The snapshot files of checkpoints: ``<ledger_dir>/checkpoints/``.

Each is ``snapshot-<through seq, 20 digits>.msgpack`` (:mod:`execd.ledger.snapshot`),
written atomically (temp file, fsync, rename, directory fsync) like every derived
file (DESIGN §3), and read back with a bounded size. Only the newest
``ledger.checkpoints_kept`` are kept. A file here is never trusted on its own: it
counts only when the ``checkpoint`` record right after its last record names it
with its sha256 and size (``ledger/recovery.py``).
"""

from __future__ import annotations

import re
import stat
from pathlib import Path

from execd.ledger.segments import fsync_dir, read_derived, replace_durably

DIRECTORY = "checkpoints"
# A snapshot larger than this is not read: far above any the fold makes today (the
# id set, 16 bytes an id, is the largest part), and it bounds what start-up reads.
MAX_BYTES = 1 << 32
# What a snapshot can hold beyond the ledger it was folded from. Everything in it comes
# from a record of that ledger and takes fewer bytes there than in the record (an id:
# 16 bytes against a 36-character UUID; orders and sends: their record's JSON body),
# except the framing and one empty entry per configured venue: this bounds those.
SLACK_BYTES = 1 << 20
_NAME = re.compile(r"^snapshot-(\d{20})\.msgpack$")
_TEMP = re.compile(r"^\.snapshot-\d{20}\.msgpack\.tmp$")


def name(through: int) -> str:
    """The file name of the snapshot through record ``through``."""
    return f"snapshot-{through:020d}.msgpack"


def through_of(file_name: str) -> int | None:
    """The record a snapshot's file name says it runs through (None: not a snapshot)."""
    match = _NAME.match(file_name)
    return int(match.group(1)) if match else None


def listed(ledger: Path) -> list[Path]:
    """The snapshot files beside ``ledger``, newest (highest record) first.

    OSError when ``checkpoints/`` cannot be listed (no permission, an I/O error).
    """
    directory = ledger / DIRECTORY
    if not directory.is_dir():
        return []
    found = [(through, entry) for entry in directory.iterdir()
             if (through := through_of(entry.name)) is not None]
    return [path for _, path in sorted(found, reverse=True)]


def write(ledger: Path, file_name: str, data: bytes) -> None:
    """Write one snapshot atomically and durably (:func:`segments.replace_durably`: never
    through a FIFO or symlink at the temp name, no temp left behind). Blocking; OSError
    when it cannot be."""
    directory = ledger / DIRECTORY
    if not directory.is_dir():
        directory.mkdir(mode=0o750)
        fsync_dir(ledger)
    replace_durably(directory / file_name, data)


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except FileNotFoundError:
        return False


def prune(ledger: Path, kept: int, through: int, good: set[str]) -> tuple[list[str], list[Path]]:
    """Remove old and stale snapshots; the names removed, and the entries passed over
    because they are not regular files (a directory, a FIFO: never execd's).

    Walking from record ``through`` (the newest recorded) down, once ``kept`` snapshots
    named in ``good`` (each vouched for by a durable checkpoint record) are passed, every
    older one goes; others in between stay, so no unvouched file ever displaces a vouched
    one. Every one past ``through`` goes too: it belongs to no chain this ledger holds (a
    crash kept it from being recorded, and the records after the restart took other
    seqs). OSError when the directory cannot be listed or a file cannot be removed.
    """
    removed: list[str] = []
    skipped: list[Path] = []
    counted = 0
    for path in listed(ledger):
        if not _regular(path):
            skipped.append(path)
            continue
        position = through_of(path.name) or 0
        if position <= through and counted < kept:
            counted += path.name in good
            continue
        path.unlink(missing_ok=True)
        removed.append(path.name)
    return removed, skipped


def remove_strays(ledger: Path) -> list[str]:
    """Remove the temp files a crash or a failed write left in ``checkpoints/``; their
    names. Only regular files and symlinks (never what they point to)."""
    directory = ledger / DIRECTORY
    if not directory.is_dir():
        return []
    removed = []
    for entry in directory.iterdir():
        if _TEMP.match(entry.name) and (entry.is_symlink() or _regular(entry)):
            entry.unlink(missing_ok=True)
            removed.append(entry.name)
    return removed


def read(path: Path, limit: int = MAX_BYTES) -> bytes:
    """The bytes of the snapshot at ``path``; ValueError when it holds more than ``limit``.

    Only a regular file is read (no FIFO or device can hang start-up), and never more
    than ``limit`` + 1 bytes (:func:`~execd.ledger.segments.read_derived`).
    """
    return read_derived(path, limit)

