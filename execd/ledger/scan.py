"""Reading the ledger back: verification and crash recovery.

Both walk every segment in order and check each record's own hash, its sequence
number and its link to the previous record. They differ only at the first bad
line: ``verify`` reports it; recovery repairs it when it is a torn tail and refuses
to start otherwise. A torn tail is what a crash can leave: an unfinished last line,
or bytes that are not a record at all, with no valid record after them. A readable
record that fails its hash, sequence or link is never torn, wherever it stands.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import msgspec
from msgspec import Struct

from execd.ledger.head import Head
from execd.ledger.record import GENESIS, Record, record_decoder
from execd.ledger.segments import fsync_dir, list_segments
from execd.model.errors import LedgerCorrupt, LedgerTruncated


class TornTail(Struct, frozen=True):
    """Bytes at the end of the ledger that do not form valid records."""

    segment: str
    offset: int
    length: int
    problem: str


class ScanResult(Struct):
    """Where the chain ends.

    ``last_time`` is the largest time any record carries, which need not be the last
    record's: a live outcome is appended when the venue answers, stamped with its
    intent's logical time, after records of later ticks.
    """

    records: int = 0
    next_seq: int = 1
    last_hash: str = GENESIS
    last_time: int = 0
    torn: TornTail | None = None


RecordObserver = Callable[[Record], None]


class Resume(Struct, frozen=True):
    """Where a scan picks up: just after record ``seq`` (already folded elsewhere: a
    checkpoint's). ``offset`` is the byte just after that record in ``segment``;
    ``hash``, ``last_time`` and ``records`` are the chain's as of ``seq``."""

    segment: str
    offset: int
    seq: int
    hash: str
    last_time: int
    records: int


def _problem(line: bytes, expected_seq: int, prev_hash: str) -> tuple[str, Record | None]:
    """Why ``line`` is not the next valid record ("" when it is)."""
    try:
        record = record_decoder.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        return f"unreadable record ({exc})", None
    if not record.hash_ok():
        return f"record seq {record.seq} does not match its hash (edited)", record
    if record.seq != expected_seq:
        if record.seq > expected_seq:
            return (f"expected seq {expected_seq}, found {record.seq} "
                    f"(record {expected_seq} removed or reordered)"), record
        return (f"expected seq {expected_seq}, found {record.seq} "
                "(record repeated or reordered)"), record
    if record.prev != prev_hash:
        return f"record seq {record.seq} does not link to the previous record", record
    return "", record


def _self_consistent(line: bytes) -> bool:
    try:
        return record_decoder.decode(line).hash_ok()
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return False


def _check_head(result: ScanResult, expect: Head | None, source: str) -> None:
    if expect is not None and result.next_seq - 1 < expect.seq:
        raise LedgerTruncated(
            f"the ledger ends at seq {result.next_seq - 1}, but {source} says record "
            f"{expect.seq} (hash {expect.hash[:16]}…) was durable: records were removed "
            "from its end (a segment cut or deleted)")


def scan(
    directory: Path, observe: RecordObserver | None = None, *, repair: bool = False,
    expect: Head | None = None, expect_source: str = "the head witness",
    start: Resume | None = None,
) -> ScanResult:
    """Walk the whole ledger in ``directory``, calling ``observe`` on each valid record.

    A bad line with no self-consistent record after it is a torn tail: with
    ``repair`` it is cut off (and logged by the caller via ``result.torn``);
    without, it is reported in ``result.torn``. A bad line with a valid record
    after it raises :class:`LedgerCorrupt`. With ``expect`` (a head witness), the
    chain must reach its seq with its hash, or :class:`LedgerTruncated` /
    :class:`LedgerCorrupt` is raised.

    With ``start``, the scan picks up there: earlier segments are not read, and the
    result counts from ``start``'s values. A ``start`` whose segment is missing raises
    :class:`LedgerCorrupt`; the caller checks that it points just after a record.
    """
    result = ScanResult()
    segments = list_segments(directory)
    first = begin = 0
    if start is not None:
        names = [path.name for path in segments]
        if start.segment not in names:
            raise LedgerCorrupt(f"{start.segment}: no such segment to resume the scan from")
        first, begin = names.index(start.segment), start.offset
        result = ScanResult(start.records, start.seq + 1, start.hash, start.last_time)
    for index in range(first, len(segments)):
        path = segments[index]
        data = path.read_bytes()
        offset = begin if index == first else 0
        while offset < len(data):
            newline = data.find(b"\n", offset)
            end = len(data) if newline < 0 else newline + 1
            line = data[offset:end]
            problem = "incomplete last line" if newline < 0 else ""
            record = None
            if not problem:
                problem, record = _problem(line[:-1], result.next_seq, result.last_hash)
            if problem:
                if record is not None:
                    # A whole, readable record that fails its checks was not torn by a
                    # crash: it was changed. Cutting it would forget an outcome and
                    # let its intent run again, so refuse instead.
                    raise LedgerCorrupt(f"{path.name} at byte {offset}: {problem}")
                _refuse_if_valid_after(data[end:], segments[index + 1 :], path, offset, problem)
                result.torn = TornTail(path.name, offset, len(data) - offset, problem)
                _check_head(result, expect, expect_source)
                if repair:
                    _cut(path, offset, segments[index + 1 :])
                return result
            assert record is not None
            if expect is not None and record.seq == expect.seq and record.hash != expect.hash:
                raise LedgerCorrupt(
                    f"{path.name} at byte {offset}: record {record.seq} has hash "
                    f"{record.hash[:16]}…, but {expect_source} says {expect.hash[:16]}…: "
                    "the ledger was rewritten from there on")
            if observe is not None:
                observe(record)
            result.records += 1
            result.next_seq = record.seq + 1
            result.last_hash = record.hash
            if record.time > result.last_time:
                result.last_time = record.time
            offset = end
    _check_head(result, expect, expect_source)
    return result


def _refuse_if_valid_after(
    rest: bytes, later: list[Path], path: Path, offset: int, problem: str
) -> None:
    chunks = [rest, *(p.read_bytes() for p in later)]
    for chunk in chunks:
        for line in chunk.split(b"\n"):
            if line and _self_consistent(line):
                raise LedgerCorrupt(
                    f"{path.name} at byte {offset}: {problem}; valid records follow, "
                    "so this is damage inside the ledger, not a torn write"
                )


def _cut(path: Path, offset: int, later: list[Path]) -> None:
    """Truncate a torn tail and drop later segments (which hold no valid record)."""
    with open(path, "r+b") as handle:
        handle.truncate(offset)
        handle.flush()
        os.fsync(handle.fileno())
    for extra in later:
        extra.unlink()
    fsync_dir(path.parent)
