"""Sorted run files of intent ids: the format, the lookup and the merge.

A run is an immutable file of records sorted by key, each a 16-byte key (the id's
bytes, big-endian, so byte order is id order) followed by ``value_size`` bytes (0, or
8 for a position a later ``tail --intent`` index can carry), after a 64-byte header:

====== ===== ==================================================================
offset bytes
0      8     magic ``EXIDRUN\\0``
8      2     version (1), big-endian like every field
10     2     value size (0 or 8)
12     4     zero
16     8     count of records
24     8     through_seq: the ledger seq through which the writer had folded
32     32    SHA-256 of the body (every record, in order)
====== ===== ==================================================================

In memory a run keeps only its fences: every :data:`FENCE_EVERY`-th key, about 0.2
bytes an id. A lookup bisects the fences, reads that one block with ``pread`` (4 KiB
of keys) and searches it. Keys in a run are unique and strictly ascending; the writer
refuses anything else. :func:`load` reads the whole body once, checking the header,
the file's size and the SHA-256, so a damaged run is found when the index opens,
never trusted (DESIGN §3: derived state is rebuilt from the ledger, not believed).

The format and the search (:func:`pack_header`, :func:`parse_header`,
:func:`find_in_block`, :func:`merge`) are pure; :func:`write` and :func:`load` are the
thin file I/O around them.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import os
import struct
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from pathlib import Path

from msgspec import Struct

from execd.model.errors import IndexDamaged

MAGIC = b"EXIDRUN\x00"
VERSION = 1
KEY = 16
VALUE_SIZES = (0, 8)
HEADER = struct.Struct(">8sHHIQQ32s")
FENCE_EVERY = 256
# Records read or written per system call when streaming a whole run.
_CHUNK_RECORDS = FENCE_EVERY * 64


class RunInfo(Struct, frozen=True):
    """What the manifest says of a run, and what its header must agree with."""

    name: str
    count: int
    through_seq: int
    value_size: int
    sha256: str


def pack_header(count: int, through_seq: int, value_size: int, digest: bytes) -> bytes:
    """The 64-byte header for a body of ``count`` records with SHA-256 ``digest``."""
    return HEADER.pack(MAGIC, VERSION, value_size, 0, count, through_seq, digest)


def parse_header(data: bytes, name: str) -> tuple[int, int, int, bytes]:
    """(count, through_seq, value_size, digest) from a header; IndexDamaged if not one."""
    if len(data) < HEADER.size:
        raise IndexDamaged(f"{name}: {len(data)} bytes, shorter than a run's header")
    magic, version, value_size, zero, count, through, digest = HEADER.unpack_from(data)
    if magic != MAGIC or version != VERSION or zero != 0 or value_size not in VALUE_SIZES:
        raise IndexDamaged(f"{name}: not a version-{VERSION} run header")
    return count, through, value_size, digest


def find_in_block(block: bytes, key: bytes, size: int) -> int:
    """The index of the record whose key is ``key`` in ``block`` (records of ``size``
    bytes), or -1. A match that straddles two records is not a record."""
    at = block.find(key)
    while at >= 0:
        if at % size == 0:
            return at // size
        at = block.find(key, at + 1)
    return -1


def merge(sources: Iterable[Iterator[bytes]]) -> Iterator[bytes]:
    """The sorted union of sorted streams of records, one record per key.

    Records compare as bytes, key first, so equal keys arrive together and the
    smallest record of them (the earliest position, when values are positions) is kept.
    Streams are read as the merge goes: memory is one record per source.
    """
    last = None
    for record in heapq.merge(*sources):
        key = record[:KEY]
        if key != last:
            last = key
            yield record


class Run:
    """An open, checked run: its info, its fences and a descriptor to ``pread`` from.

    Lookups never change it, so any thread may make them. It is closed by whoever
    looks it up (``IdIndex``), never by the store that wrote it, so a lookup in flight
    never reads a descriptor reused for another file; :meth:`reopen` gives another
    owner its own descriptor.
    """

    __slots__ = ("_fd", "fences", "info", "path", "size")

    def __init__(self, path: Path, info: RunInfo, fences: list[bytes], fd: int) -> None:
        self.path = path
        self.info = info
        self.fences = fences
        self.size = KEY + info.value_size
        self._fd = fd

    def __len__(self) -> int:
        return self.info.count

    def get(self, key: bytes) -> bytes | None:
        """The value stored with ``key`` (``b""`` when the run holds none), or None."""
        block = bisect_right(self.fences, key) - 1
        if block < 0:
            return None
        size = self.size
        step = FENCE_EVERY * size
        # The last block is shorter: pread stops at the end of the file.
        data = os.pread(self._fd, step, HEADER.size + block * step)
        at = find_in_block(data, key, size)
        if at < 0:
            return None
        return data[at * size + KEY:(at + 1) * size]

    def __contains__(self, key: bytes) -> bool:
        return self.get(key) is not None

    def _chunks(self) -> Iterator[bytes]:
        step = _CHUNK_RECORDS * self.size
        end = HEADER.size + self.info.count * self.size
        for offset in range(HEADER.size, end, step):
            yield os.pread(self._fd, min(step, end - offset), offset)

    def records(self) -> Iterator[bytes]:
        """Every record in order, read in bounded chunks (for merging and rebuilding)."""
        size = self.size
        for chunk in self._chunks():
            yield from [chunk[i:i + size] for i in range(0, len(chunk), size)]

    def keys(self) -> Iterator[int]:
        """Every id as its 128-bit integer, in order (for building a filter)."""
        size, of = self.size, int.from_bytes
        for chunk in self._chunks():
            yield from [of(chunk[i:i + KEY]) for i in range(0, len(chunk), size)]

    def reopen(self) -> Run:
        """The same run with a descriptor of its own, for a second owner."""
        return Run(self.path, self.info, self.fences, os.dup(self._fd))

    def close(self) -> None:
        """Close the descriptor (once no lookup can be in flight)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def write(path: Path, records: Iterable[bytes], through_seq: int, value_size: int = 0) -> Run:
    """Write a run of ``records`` (sorted, unique keys) to ``path``, fsynced. Blocking.

    The file is complete and durable when this returns, but only the manifest makes
    it part of the index (:mod:`execd.ledger.index.store`); a file the manifest does
    not name is an orphan that the next open removes. ValueError if ``records`` are
    not strictly ascending or not ``16 + value_size`` bytes each.
    """
    if value_size not in VALUE_SIZES:
        raise ValueError(f"value size {value_size}: expected one of {VALUE_SIZES}")
    digest = hashlib.sha256()
    fences: list[bytes] = []
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
    try:
        os.write(fd, bytes(HEADER.size))
        pending: list[bytes] = []
        count = 0
        for record in _ascending(records, KEY + value_size, fences, path.name):
            count += 1
            pending.append(record)
            if len(pending) == _CHUNK_RECORDS:
                _flush(fd, pending, digest)
        _flush(fd, pending, digest)
        os.pwrite(fd, pack_header(count, through_seq, value_size, digest.digest()), 0)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    info = RunInfo(path.name, count, through_seq, value_size, digest.hexdigest())
    return Run(path, info, fences, fd)


def _ascending(records: Iterable[bytes], size: int, fences: list[bytes],
               name: str) -> Iterator[bytes]:
    # Checks each record as it streams past, and notes every FENCE_EVERY-th key.
    last = b""
    for count, record in enumerate(records):
        key = record[:KEY]
        if len(record) != size or key <= last:
            raise ValueError(f"{name}: record {count} is not a {size}-byte record "
                             "with a key above the one before")
        if count % FENCE_EVERY == 0:
            fences.append(key)
        last = key
        yield record


def _flush(fd: int, pending: list[bytes], digest: hashlib._Hash) -> None:
    data = b"".join(pending)
    digest.update(data)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    pending.clear()


def load(path: Path, expected: RunInfo) -> Run:
    """Open ``path`` and check it against its header and the manifest's ``expected``:
    size, count, seq, value size and the SHA-256 of the body. IndexDamaged if any
    differs, the keys' fences are out of order, or it cannot be read. Blocking."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise IndexDamaged(f"{path.name}: {exc.strerror or exc}") from None
    try:
        return _checked(path, expected, fd)
    except BaseException:
        os.close(fd)
        raise


def _checked(path: Path, expected: RunInfo, fd: int) -> Run:
    name = path.name
    try:
        count, through, value_size, digest = parse_header(os.pread(fd, HEADER.size, 0), name)
        size = KEY + value_size
        found = os.fstat(fd).st_size
        if found != HEADER.size + count * size:
            raise IndexDamaged(f"{name}: {found} bytes, the header says "
                               f"{HEADER.size + count * size}")
        info = RunInfo(name, count, through, value_size, digest.hex())
        if info != expected:
            raise IndexDamaged(f"{name}: the header says {info}, the manifest {expected}")
        run = Run(path, info, [], fd)
        body = hashlib.sha256()
        fences = run.fences
        step = _CHUNK_RECORDS * size
        for offset in range(HEADER.size, found, step):
            chunk = os.pread(fd, min(step, found - offset), offset)
            body.update(chunk)
            fences.extend(chunk[i:i + KEY] for i in range(0, len(chunk), FENCE_EVERY * size))
    except OSError as exc:
        raise IndexDamaged(f"{name}: {exc.strerror or exc}") from None
    if body.digest() != digest:
        raise IndexDamaged(f"{name}: the body's SHA-256 is not the header's")
    if any(a >= b for a, b in itertools.pairwise(fences)):
        raise IndexDamaged(f"{name}: keys out of order")
    return run
