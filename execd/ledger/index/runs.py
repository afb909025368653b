"""Sorted run files of intent ids: the format, the lookup and the merge.

A run is an immutable file: a 512-byte header area, then records sorted by key, each
a 16-byte key (the id's bytes, big-endian, so byte order is id order) followed by
``value_size`` bytes (0; 8; 16, the positions index's seq and byte offset,
:mod:`execd.ledger.index.positions`; or 80 for a consumed file's entry,
:mod:`execd.ledger.index.files`), then the run's *meta*: its own filter
(:class:`~execd.ledger.index.filter.RunFilter`, ``filter_words`` 64-bit words over
its keys), its fences (the first key of every block of :data:`FENCE_EVERY` records:
the high halves, then the low halves, 8 bytes each) and each block's CRC-32 (4
bytes). The header, big-endian like every field, is followed by zeros up to :data:`BODY`:

====== ===== ==================================================================
offset bytes
0      8     magic ``EXIDRUN\\0``
8      2     version (3; an older run is damaged, to be rebuilt)
10     2     value size (0, 8, 16 or 80)
12     4     zero
16     8     count of records
24     8     through_seq: the ledger seq through which the writer had folded
32     8     filter_words
40     32    SHA-256 of the meta (filter, fences, CRCs)
====== ===== ==================================================================

In memory a run keeps its filter (one byte an id), its fences, as two arrays of 64-bit
halves with a radix table over them (half a byte an id, :class:`Fences`), and the
blocks' CRCs (an eighth of a byte an id). A lookup asks the filter, finds the block in
the fences, reads that one 512-byte block with ``pread``, checks it against its CRC
and its fence, and finds the key in it (``bench/ids.py``: from the page cache a 4 KiB
read cost about four times a 512-byte one). Keys in a run are unique and strictly
ascending; the writer refuses anything else (but in a run of 16-byte values,
:data:`REPEATS`, the positions index's, where an intent id has a record per ledger
record that names it: there keys may repeat, and records, key and value together,
strictly ascend instead).

Nothing is trusted unchecked (DESIGN §3: derived state is rebuilt from the ledger, not
believed), but nothing is read before it is needed either: :func:`load` reads the
header and the meta alone and checks the file's size and the meta's SHA-256, so
opening a run costs about 1.6 bytes an id however long its records are (a whole-file
hash at every start-up read 170 MB at 10M ids); each block is checked when it is
read, by a lookup or a stream, and a block that fails raises :class:`RunDamaged`. A
daemon that meets one stops after removing the index's manifest (:func:`condemn
<execd.ledger.index.store.condemn>`), so the next start rebuilds the index rather
than meeting the block again; the intent it was deciding was never recorded, so it is
decided again then.

The format and the search (:func:`pack_header`, :func:`parse_header`,
:class:`Fences`, :func:`find_in_block`, :func:`merge`) are pure; :func:`write` and
:func:`load` are the thin file I/O around them.
"""

from __future__ import annotations

import hashlib
import heapq
import os
import struct
import sys
import zlib
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Sized
from pathlib import Path

from msgspec import Struct

from execd.ledger.index.filter import RUN_BITS_PER_ID, RunFilter, words_for
from execd.ledger.segments import open_derived
from execd.model.errors import IndexDamaged, RunDamaged
from execd.model.progress import beat

MAGIC = b"EXIDRUN\x00"
VERSION = 3  # 3: the meta (fences and block CRCs) is saved; 2 hashed every record
KEY = 16
VALUE_SIZES = (0, 8, 16, 80)
REPEATS = 16  # the value size whose runs may repeat a key (see above)
HEADER = struct.Struct(">8sHHIQQQ32s")
BODY = 512  # the header area: records start here, so 512-byte blocks align to pages
FENCE_EVERY = 32
_M64 = (1 << 64) - 1
# Records read or written per system call when streaming a whole run.
_CHUNK_RECORDS = FENCE_EVERY * 512
CHECK = 4  # a block's CRC-32
_FENCE = 16  # a fence's two halves
assert array("I").itemsize == CHECK
assert array("Q").itemsize == 8


def blocks(count: int) -> int:
    """How many blocks (and so fences and CRCs) a run of ``count`` records has."""
    return -(-count // FENCE_EVERY)


def file_size(count: int, value_size: int, filter_words: int) -> int:
    """The size of a run file of ``count`` records of ``value_size`` and a filter of
    ``filter_words`` words: what its header implies, and what its file must measure."""
    return (BODY + count * (KEY + value_size) + filter_words * 8
            + blocks(count) * (_FENCE + CHECK))


class RunInfo(Struct, frozen=True):
    """What the manifest says of a run, and what its header must agree with."""

    name: str
    count: int
    through_seq: int
    value_size: int
    sha256: str


def pack_header(count: int, through_seq: int, value_size: int, filter_words: int,
                digest: bytes) -> bytes:
    """The header area (:data:`BODY` bytes) for ``count`` records and a filter of
    ``filter_words`` words, whose meta's SHA-256 is ``digest``."""
    fields = HEADER.pack(MAGIC, VERSION, value_size, 0, count, through_seq, filter_words,
                         digest)
    return fields + bytes(BODY - HEADER.size)


def parse_header(data: bytes, name: str) -> tuple[int, int, int, int, bytes]:
    """(count, through_seq, value_size, filter_words, digest) from a header area;
    IndexDamaged if it is not one."""
    if len(data) < BODY:
        raise IndexDamaged(f"{name}: {len(data)} bytes, shorter than a run's header")
    magic, version, value_size, zero, count, through, words, digest = HEADER.unpack_from(data)
    if (magic != MAGIC or version != VERSION or zero != 0 or value_size not in VALUE_SIZES
            or words < 1 or any(data[HEADER.size:BODY])):
        raise IndexDamaged(f"{name}: not a version-{VERSION} run header")
    return count, through, value_size, words, digest


class Fences:
    """The first key of every block as two arrays of 64-bit halves, and a radix table
    over the high halves (about eight fences a slot), so finding a block is a table
    lookup and a bisect of a few entries: a bisect of millions of fences cost as much
    as the block read, in cache misses (bench/ids.py at 100M ids). Pure.

    The table is filled as lookups reach its slots (a slot's start is one bisect of the
    whole array, the first time): filling all of it when a run opened was 65,536
    bisects at 10M ids, a tenth of a second of every start-up. Two threads filling one
    slot write the same number.
    """

    __slots__ = ("_shift", "_starts", "his", "los")

    def __init__(self, his: array[int], los: array[int]) -> None:
        self.his, self.los = his, los
        bits = min(20, (len(his) // 8).bit_length())
        self._shift = 64 - bits
        starts = array("q", [-1]) * (1 << bits)  # -1: not looked up yet
        starts.append(len(his))
        self._starts = starts

    def __len__(self) -> int:
        return len(self.his)

    def fill(self) -> None:
        """Fill every slot of the table not filled yet (about a microsecond a slot, a
        quarter of a second at 100M ids): for a thread that is not the one waiting on
        lookups (app/id_runs.py ``prepare``, and :func:`write`), so that lookups never
        pay for a first touch of a slot."""
        his, starts, shift = self.his, self._starts, self._shift
        low = 0
        for slot in range(len(starts) - 1):
            if starts[slot] < 0:
                starts[slot] = bisect_left(his, slot << shift, low)
            low = starts[slot]

    def block(self, key: int) -> int:
        """The block that holds ``key`` if any block does (-1: below the first key).

        The high halves alone decide, except among blocks whose first keys share
        ``key``'s high half (ids numbered in their low bits): those are told apart by
        the low halves.
        """
        his, high, starts = self.his, key >> 64, self._starts
        slot = high >> self._shift
        low, top = starts[slot], starts[slot + 1]
        if low < 0:
            low = starts[slot] = bisect_left(his, slot << self._shift)
        if top < 0:
            top = starts[slot + 1] = bisect_left(his, (slot + 1) << self._shift, low)
        end = bisect_right(his, high, low, top)
        if end == 0 or his[end - 1] != high:
            return end - 1
        return bisect_right(self.los, key & _M64, bisect_left(his, high, low, end), end) - 1


def find_in_block(block: bytes, key: bytes, size: int) -> int:
    """The index of the record whose key is ``key`` in ``block`` (records of ``size``
    bytes), or -1. A match that straddles two records is not a record."""
    at = block.find(key)
    while at >= 0:
        if at % size == 0:
            return at // size
        at = block.find(key, at + 1)
    return -1


def merge(sources: Iterable[Iterator[bytes]],
          latest: Callable[[bytes], int] | None = None,
          repeats: bool = False) -> Iterator[bytes]:
    """The sorted union of sorted streams of records, one record per key (with
    ``repeats``, one per distinct record: keys may repeat, :data:`REPEATS`).

    Records compare as bytes, key first, so equal keys arrive together and the
    smallest record of them (the earliest position, when values are positions) is kept;
    with ``latest``, the one it ranks highest (a consumed file's entry changes, and
    each carries the seq of its last change: ``ledger/index/files.py``).
    Streams are read as the merge goes: memory is one record per source.
    """
    if latest is not None:
        yield from _merge_latest(heapq.merge(*sources), latest)
        return
    last = None
    for record in heapq.merge(*sources):
        key = record if repeats else record[:KEY]
        if key != last:
            last = key
            yield record


def _merge_latest(records: Iterator[bytes], latest: Callable[[bytes], int]
                  ) -> Iterator[bytes]:
    best = None
    for record in records:
        if best is not None and record[:KEY] == best[:KEY]:
            if latest(record) > latest(best):
                best = record
            continue
        if best is not None:
            yield best
        best = record
    if best is not None:
        yield best


class Run:
    """An open, checked run: its info, filter, fences, block CRCs and a descriptor to
    ``pread`` from.

    Lookups never change it, so any thread may make them. It is closed by whoever
    looks it up (``IdIndex``), never by the store that wrote it, so a lookup in flight
    never reads a descriptor reused for another file; :meth:`reopen` gives another
    owner its own descriptor. Every block it reads is checked first (:class:`RunDamaged`).
    """

    __slots__ = ("_end", "_fd", "checks", "fences", "filter", "info", "path", "size")

    def __init__(self, path: Path, info: RunInfo, fences: Fences, run_filter: RunFilter,
                 checks: array[int], fd: int) -> None:
        self.path = path
        self.info = info
        self.fences = fences
        #: The run's own filter: ask it (with ``filter.probe``'s answer) before :meth:`has`.
        self.filter = run_filter
        #: Each block's CRC-32, checked when the block is read.
        self.checks = checks
        self.size = KEY + info.value_size
        self._end = BODY + info.count * self.size
        self._fd = fd

    def __len__(self) -> int:
        return self.info.count

    def _block(self, key: int) -> bytes:
        block = self.fences.block(key)
        if block < 0:
            return b""
        step = FENCE_EVERY * self.size
        offset = BODY + block * step
        # The last block is shorter, and the meta after it is not records.
        want = min(step, self._end - offset)
        data = os.pread(self._fd, want, offset)
        # The block must be the one its CRC and fence name, and the one whose range holds
        # ``key`` (the fences ascend, as the writer checked and the meta's digest vouches:
        # this catches a wrong answer from the table above, never trusting it).
        fences, after = self.fences, block + 1
        first = fences.his[block] << 64 | fences.los[block]
        if (len(data) != want or zlib.crc32(data) != self.checks[block]
                or int.from_bytes(data[:KEY]) != first or key < first
                or (after < len(fences) and key >= fences.his[after] << 64 | fences.los[after])):
            raise RunDamaged(self.path, f"block {block} is not the one its CRC and fence "
                                        "describe")
        return data

    def get(self, key: bytes) -> bytes | None:
        """The value stored with ``key`` (``b""`` when the run holds none), or None."""
        data = self._block(int.from_bytes(key))
        at = find_in_block(data, key, self.size)
        if at < 0:
            return None
        return data[at * self.size + KEY:(at + 1) * self.size]

    def has(self, key: int) -> bool:
        """Whether the run holds the id ``key`` (its 128-bit integer): one block read."""
        # find_in_block, inline: this is a duplicate's whole cost after the filters.
        data, needle, size = self._block(key), key.to_bytes(KEY), self.size
        at = data.find(needle)
        while at >= 0:
            if at % size == 0:
                return True
            at = data.find(needle, at + 1)
        return False

    def __contains__(self, key: bytes) -> bool:
        return self.get(key) is not None

    def _chunks(self) -> Iterator[bytes]:
        step, block = _CHUNK_RECORDS * self.size, FENCE_EVERY * self.size
        checks, crc = self.checks, zlib.crc32
        for offset in range(BODY, self._end, step):
            want = min(step, self._end - offset)
            data = os.pread(self._fd, want, offset)
            first, view = (offset - BODY) // block, memoryview(data)
            if len(data) != want or any(
                    crc(view[at:at + block]) != checks[first + i]
                    for i, at in enumerate(range(0, want, block))):
                raise RunDamaged(self.path, f"a block of records {(offset - BODY) // self.size}"
                                            f" on is not the one its CRC describes")
            beat()
            yield data

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
        return Run(self.path, self.info, self.fences, self.filter, self.checks,
                   os.dup(self._fd))

    def close(self) -> None:
        """Close the descriptor (once no lookup can be in flight)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def write(path: Path, records: Iterable[bytes], through_seq: int, value_size: int = 0,
          capacity: int | None = None, filtered: bool = True) -> Run:
    """Write a run of ``records`` (sorted, unique keys) to ``path``, fsynced. Blocking.

    Its filter is sized for ``capacity`` ids (default: the number of ``records``,
    which are then listed first if they are a mere iterator); a merge passes the sum
    of its inputs. The file is complete and durable when this returns, but only the
    manifest makes it part of the index (:mod:`execd.ledger.index.store`); a file the
    manifest does not name is an orphan that the next open removes. ValueError if
    ``records`` are not strictly ascending or not ``16 + value_size`` bytes each.

    ``filtered`` false: the run's filter is one word with every bit set (it answers
    "maybe" for every key, so it is never wrong), for a run that is only ever read by
    key range (the positions index): no cost a record to build it, none in memory.
    """
    if value_size not in VALUE_SIZES:
        raise ValueError(f"value size {value_size}: expected one of {VALUE_SIZES}")
    if not filtered:
        run_filter = RunFilter(1, bytes([0xFF]) * 8)
    else:
        if capacity is None:
            records = records if isinstance(records, Sized) else list(records)
            capacity = len(records)
        run_filter = RunFilter(words_for(capacity, RUN_BITS_PER_ID))
    halves: tuple[array[int], array[int]] = (array("Q"), array("Q"))
    checks = array("I")
    block = FENCE_EVERY * (KEY + value_size)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
    try:
        os.write(fd, bytes(BODY))
        pending: list[bytes] = []
        count = 0
        checked = _ascending(records, KEY + value_size, halves,
                             run_filter if filtered else None, path.name)
        for record in checked:
            count += 1
            pending.append(record)
            if len(pending) == _CHUNK_RECORDS:
                _flush(fd, pending, checks, block)
        _flush(fd, pending, checks, block)
        meta = pack_meta(run_filter.to_bytes(), *halves, checks)
        _write_all(fd, meta)
        digest = hashlib.sha256(meta)
        os.pwrite(fd, pack_header(count, through_seq, value_size, run_filter.words,
                                  digest.digest()), 0)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    info = RunInfo(path.name, count, through_seq, value_size, digest.hexdigest())
    fences = Fences(*halves)
    fences.fill()  # the writer's thread: a run it hands over is looked up at once
    return Run(path, info, fences, run_filter, checks, fd)


def _ascending(records: Iterable[bytes], size: int, halves: tuple[array[int], array[int]],
               run_filter: RunFilter | None, name: str) -> Iterator[bytes]:
    # Checks each record as it streams past, adds it to the run's filter (if it has
    # one to build), and notes every FENCE_EVERY-th key.
    last = -1
    his, los = halves
    add, of = (run_filter.add if run_filter is not None else None), int.from_bytes
    repeats, before = size == KEY + REPEATS, b""
    for count, record in enumerate(records):
        key = of(record[:KEY])
        if len(record) != size or key < last or (key == last and (
                not repeats or record <= before)):
            raise ValueError(f"{name}: record {count} is not a {size}-byte record "
                             "with a key above the one before")
        before = record
        if count % FENCE_EVERY == 0:
            his.append(key >> 64)
            los.append(key & _M64)
        if add is not None:
            add(key)
        last = key
        yield record


def _flush(fd: int, pending: list[bytes], checks: array[int], block: int) -> None:
    # Whole blocks but the last (a chunk is a whole number of them), each CRC noted.
    beat()  # a merge of millions of ids at start-up is minutes of this
    data = b"".join(pending)
    view = memoryview(data)
    checks.extend(zlib.crc32(view[at:at + block]) for at in range(0, len(data), block))
    _write_all(fd, data)
    pending.clear()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _big(values: array[int]) -> bytes:
    # Big-endian, like every field of the file, whatever this machine's order.
    if sys.byteorder == "little":
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def pack_meta(filter_words: bytes, his: array[int], los: array[int],
              checks: array[int]) -> bytes:
    """The meta that follows a run's records: its filter's words, its fences' high and
    low halves, and its blocks' CRCs (one fence and one CRC a block). Pure."""
    return filter_words + _big(his) + _big(los) + _big(checks)


def load(path: Path, expected: RunInfo) -> Run:
    """Open ``path`` and check it against its header and the manifest's ``expected``:
    size, count, seq, value size and the SHA-256 of its meta (filter, fences and block
    CRCs; the records are checked block by block as they are read). IndexDamaged if
    any differs or it cannot be read. Blocking: reads the meta alone, about 1.6 bytes
    an id."""
    try:
        fd = open_derived(path)  # a regular file only: a FIFO would hang start-up
    except OSError as exc:
        raise IndexDamaged(f"{path.name}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise IndexDamaged(f"{path.name}: {exc}") from None
    try:
        return _checked(path, expected, fd)
    except BaseException:
        os.close(fd)
        raise


def _checked(path: Path, expected: RunInfo, fd: int) -> Run:
    name = path.name
    try:
        count, through, value_size, words, digest = parse_header(os.pread(fd, BODY, 0), name)
        found = os.fstat(fd).st_size
        if found != file_size(count, value_size, words):
            raise IndexDamaged(f"{name}: {found} bytes, the header says "
                               f"{file_size(count, value_size, words)}")
        info = RunInfo(name, count, through, value_size, digest.hex())
        if info != expected:
            raise IndexDamaged(f"{name}: the header says {info}, the manifest {expected}")
        n = blocks(count)
        # Read in place: the filter keeps its buffer; the rest become arrays.
        parts = (bytearray(words * 8), bytearray(n * 8), bytearray(n * 8), bytearray(n * CHECK))
        meta = hashlib.sha256()
        offset = BODY + count * (KEY + value_size)
        for part in parts:
            _read_into(fd, part, offset, name)
            meta.update(part)
            offset += len(part)
    except OSError as exc:
        raise IndexDamaged(f"{name}: {exc.strerror or exc}") from None
    if meta.digest() != digest:
        raise IndexDamaged(f"{name}: the meta's SHA-256 is not the header's")
    # The fences are not walked to see that they ascend (a third of a second at 10M ids
    # numbered in their low bits): the writer refused keys out of order, the digest
    # says these are its fences, and each lookup checks that its block holds its key.
    his, los, checks = (_native(code, part) for code, part in zip("QQI", parts[1:], strict=True))
    return Run(path, info, Fences(his, los), RunFilter(words, parts[0]), checks, fd)


def _read_into(fd: int, buffer: bytearray, offset: int, name: str) -> None:
    view = memoryview(buffer)
    while view:
        got = os.preadv(fd, [view[:1 << 24]], offset)
        if got == 0:
            raise IndexDamaged(f"{name}: shorter than its header says")
        view, offset = view[got:], offset + got


def _native(typecode: str, data: bytearray) -> array[int]:
    values = array(typecode)
    values.frombytes(data)
    if sys.byteorder == "little":
        values.byteswap()
    return values
