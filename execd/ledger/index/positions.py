"""The positions index: where each record that names an intent is, for ``tail --intent``.

``<ledger_dir>/index/positions/`` is an index directory of its own
(:mod:`execd.ledger.index.store`: immutable runs, an atomic manifest, size-tiered
compaction) beside the duplicate-id index, never inside it. Each record of a run is
32 bytes, big-endian:

====== ===== ==================================================================
offset bytes
0      16    the intent id (the run's key)
16     8     the record's seq                  } the 16-byte value
24     8     the record's byte-global offset   }
====== ===== ==================================================================

An intent has several records (its outcome, its order, each send), so a key repeats
(runs.py allows it for 16-byte values, :data:`~execd.ledger.index.runs.REPEATS`:
records, key and value, strictly ascend), and an id prefix is one key range, read in
id then ledger order. (A key of the id's high half and the seq would keep keys
unique, but ids numbered in their low bits, as a producer that counts its intents
makes them, would then all share one high half: one range as long as the history.)
Every record whose body has an ``intent_id`` is in it,
and every ``start`` record too, under the id 0: tail reads them to know each run's
clock (cli/tail.py), and a record of intent 0 is told from a start by reading it.

The offset is byte-global (ledger/places.py), not a segment and an offset in it: it
is what the checkpointer already counts for a snapshot's ``resume``, it stays true
when old segments are archived (their bytes still count), and the manifest's
:class:`~execd.ledger.index.store.Span` says which bytes the runs were read from
and names the last record by its hash, so a reader can tell an index that belongs to
another ledger (or one restored from a backup) by reading one record.

The index is derived state (DESIGN §3): the daemon writes it (app/position_runs.py);
a reader (:class:`View`) only reads, checks each run's header against the manifest,
and checks every record it is pointed at; anything wrong means the linear read.
"""

from __future__ import annotations

import os
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import msgspec
from msgspec import Struct

from execd.ledger.index.runs import BODY, KEY, RunInfo, file_size, parse_header
from execd.ledger.index.store import Manifest, read_manifest
from execd.model.errors import IndexDamaged

DIRECTORY = "positions"
VALUE = 16
ENTRY = struct.Struct(">QQQQ")
SIZE = ENTRY.size
_M64 = (1 << 64) - 1
# Records read per system call while scanning a key range.
_SCAN_RECORDS = 4096
# Dashes sit here in an id's canonical text (model/ids.py: UUIDs as msgspec writes them).
_DASHES = (8, 13, 18, 23)


class Found(NamedTuple):
    """One record of the index: a ledger record's seq, intent id and offset."""

    seq: int
    intent: int
    offset: int


def entry(intent: int, seq: int, offset: int) -> bytes:
    """The run record for the ledger record ``seq`` of ``intent`` at byte ``offset``."""
    return ENTRY.pack(intent >> 64, intent & _M64, seq, offset)


def unpack(record: bytes | memoryview) -> Found:
    """The :class:`Found` a run record holds."""
    high, low, seq, offset = ENTRY.unpack(record)
    return Found(seq, (high << 64) | low, offset)


class _Body(Struct):
    intent_id: uuid.UUID | None = None


class _Line(Struct):
    seq: int
    kind: str
    hash: str
    body: _Body


class _Entry(Struct):
    seq: int
    kind: str
    body: _Body


_decode_line = msgspec.json.Decoder(_Line).decode
# Without the hash (only the last line's is needed): a tenth less to decode.
_decode_entries = msgspec.json.Decoder(list[_Entry]).decode


class Named(NamedTuple):
    """What a stored line says of itself for the index."""

    seq: int
    hash: str
    intent: int | None
    """The intent id it names (0 for a ``start``), None when it names none."""


def read_line(line: bytes) -> Named | None:
    """What the stored ``line`` names, or None when it is not a record with a
    well-formed body (such a line is never indexed; the index holds what the writer
    wrote). Pure."""
    try:
        found = _decode_line(line)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if found.kind == "start":
        return Named(found.seq, found.hash, 0)
    intent = found.body.intent_id
    return Named(found.seq, found.hash, None if intent is None else intent.int)


class Batch(NamedTuple):
    """The index's records for consecutive stored lines, and where the last one is."""

    entries: list[bytes]
    last: Named
    last_start: int
    end: int
    """Just after the last line."""


def entries_of(lines: list[bytes], first: int) -> Batch | None:
    """The run records for the consecutive stored ``lines`` (LFs removed, the first at
    byte-global offset ``first``); None when they are not all records. Pure.

    The daemon's writer pays for this in its own thread, beside the pipeline, for every
    record: the lines are decoded in one call, as one JSON array (a call a line costs
    about a microsecond more).
    """
    try:
        found = _decode_entries(b"[" + b",".join(lines) + b"]")
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    last = read_line(lines[-1]) if lines else None
    if last is None or len(found) != len(lines):
        return None
    pack, entries, at = ENTRY.pack, [], first
    for line, record in zip(lines, found, strict=True):
        if record.kind == "start":
            entries.append(pack(0, 0, record.seq, at))
        elif (intent := record.body.intent_id) is not None:
            key = intent.int
            entries.append(pack(key >> 64, key & _M64, record.seq, at))
        at += len(line) + 1
    return Batch(entries, last, at - len(lines[-1]) - 1, at)


def prefix_range(prefix: str) -> tuple[int, int] | None:
    """The ids ``[low, high)`` whose canonical text starts with ``prefix`` (lower-case
    hex digits and dashes), or None when no id's can (a dash out of place). Pure."""
    if len(prefix) > 36 or any((char == "-") != (at in _DASHES) for at, char in
                               enumerate(prefix)):
        return None
    digits = prefix.replace("-", "")
    if not all(char in "0123456789abcdef" for char in digits):
        return None
    shift = 4 * (32 - len(digits))
    value = int(digits, 16) if digits else 0
    return value << shift, (value + 1) << shift


class _RunFile(NamedTuple):
    name: str
    fd: int
    records: int


class View:
    """The positions index as a reader sees it: its manifest and its runs, opened for
    reading and checked against the manifest (header, size, value size), never hashed
    whole (that would read the whole index: its records are checked as they are used).
    """

    def __init__(self, manifest: Manifest, files: list[_RunFile]) -> None:
        self.manifest = manifest
        self._files = files

    @classmethod
    def open(cls, directory: Path, attempts: int = 3) -> View:
        """The index in ``directory``. A run that vanishes between reading the manifest
        and opening it (a compaction made live meanwhile) means reading the manifest
        again, ``attempts`` times. IndexDamaged when there is none or it is damaged."""
        for _ in range(attempts):
            manifest = read_manifest(directory)
            files: list[_RunFile] = []
            try:
                for info in manifest.runs:
                    files.append(_open_run(directory / info.name, info))
                return cls(manifest, files)
            except FileNotFoundError:
                continue
            finally:
                if len(files) != len(manifest.runs):
                    for run in files:
                        os.close(run.fd)
        raise IndexDamaged(f"{directory}: a run its manifest names is missing (the manifest "
                           f"read {attempts} times)")

    def between(self, low: int, high: int) -> list[Found]:
        """Every record of an id in ``[low, high)``, in ledger order. Blocking: a binary
        search and a sequential read of the range in each run."""
        found: list[Found] = []
        for run in self._files:
            found.extend(_scan(run, low, high))
        found.sort()
        return found

    def close(self) -> None:
        """Close every run's descriptor."""
        for run in self._files:
            os.close(run.fd)
        self._files = []


def _open_run(path: Path, info: RunInfo) -> _RunFile:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        count = _checked_header(path.name, fd, info)
    except OSError as exc:
        os.close(fd)
        if isinstance(exc, FileNotFoundError):
            raise
        raise IndexDamaged(f"{path.name}: {exc.strerror or exc}") from None
    except BaseException:
        os.close(fd)
        raise
    return _RunFile(path.name, fd, count)


def _checked_header(name: str, fd: int, info: RunInfo) -> int:
    """The count of records of the run open on ``fd``, once its header agrees with the
    manifest's ``info`` and its size with its header; IndexDamaged if not."""
    count, through, value_size, words, digest = parse_header(os.pread(fd, BODY, 0), name)
    found = RunInfo(name, count, through, value_size, digest.hex())
    if found != info or value_size != VALUE:
        raise IndexDamaged(f"{name}: the header says {found}, the manifest {info}")
    size = os.fstat(fd).st_size
    if size != file_size(count, VALUE, words):
        raise IndexDamaged(f"{name}: {size} bytes, not what its header says")
    return count


def _key_at(run: _RunFile, index: int) -> bytes:
    data = os.pread(run.fd, KEY, BODY + index * SIZE)
    if len(data) != KEY:
        raise IndexDamaged(f"{run.name}: shorter than its header says")
    return data


def _scan(run: _RunFile, low: int, high: int) -> Iterator[Found]:
    """The records of ``run`` with an id in ``[low, high)``: the first found by
    bisection (a read of one key a step), then read on while ids stay in range."""
    first = low.to_bytes(KEY)
    lo, hi = 0, run.records
    while lo < hi:
        middle = (lo + hi) // 2
        if _key_at(run, middle) < first:
            lo = middle + 1
        else:
            hi = middle
    previous = b""
    for start in range(lo, run.records, _SCAN_RECORDS):
        want = min(_SCAN_RECORDS, run.records - start) * SIZE
        data = os.pread(run.fd, want, BODY + start * SIZE)
        if len(data) != want:
            raise IndexDamaged(f"{run.name}: shorter than its header says")
        for at in range(0, want, SIZE):
            record = data[at:at + SIZE]
            if record <= previous:
                raise IndexDamaged(f"{run.name}: records out of order")
            previous = record
            found = unpack(record)
            if found.intent >= high:
                return
            yield found
