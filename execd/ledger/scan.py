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
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec
from msgspec import Struct

from execd.ledger.head import Head
from execd.ledger.record import GENESIS, Record, record_decoder
from execd.ledger.segments import (
    MAX_LINE,
    READ_CHUNK,
    Line,
    fsync_dir,
    list_segments,
    odd_segments,
    read_lines,
)
from execd.model.errors import LedgerCorrupt, LedgerTruncated
from execd.model.progress import PROGRESS


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
    """Where a scan picks up: just after record ``seq`` (already folded elsewhere)."""

    segment: str
    """The segment file's name."""
    offset: int
    """The byte offset just after record ``seq`` in it."""
    seq: int
    hash: str
    """Record ``seq``'s hash."""
    last_time: int
    """The largest time in records <= ``seq``."""
    records: int
    """How many records <= ``seq`` (so ``ScanResult.records`` stays the total)."""


def _problem(line: bytes, expected_seq: int, prev_hash: str) -> tuple[str, Record | None]:
    """Why ``line`` is not the next valid record ("" when it is)."""
    try:
        record = record_decoder.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        return f"unreadable record ({exc})", None
    problem = record.problem(line)
    if problem:
        return problem, record
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


Claim = tuple[Head, str]
"""A head someone says was durable, and who says it (named in the error)."""


def _claims(expect: Head | Sequence[Claim] | None, source: str) -> list[Claim]:
    if expect is None:
        return []
    if isinstance(expect, Head):
        return [(expect, source)]
    return list(expect)


def _check_head(result: ScanResult, claims: list[Claim]) -> None:
    for expect, source in claims:
        if result.next_seq - 1 < expect.seq:
            raise LedgerTruncated(
                f"the ledger ends at seq {result.next_seq - 1}, but {source} says record "
                f"{expect.seq} (hash {expect.hash[:16]}…) was durable: records were removed "
                "from its end (a segment cut or deleted)")


def _rewritten(where: str, seq: int, found: str, source: str, said: str) -> LedgerCorrupt:
    return LedgerCorrupt(
        f"{where}: record {seq} has hash {found[:16]}…, but {source} says {said[:16]}…: "
        "the ledger was rewritten from there on")


def _resume(segments: list[Path], start: Resume, claims: list[Claim]) -> int:
    """The index of ``start``'s segment in ``segments``, once ``start`` is known to point
    just after a line of it; claims at or before ``start.seq`` checked against it."""
    names = [path.name for path in segments]
    if start.segment not in names:
        raise LedgerCorrupt(f"{start.segment}: no such segment to resume the scan from")
    index = names.index(start.segment)
    with open(segments[index], "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if start.offset > size:
            raise LedgerCorrupt(f"{start.segment}: cannot resume the scan at byte "
                                f"{start.offset}, past its end ({size} bytes)")
        if start.offset > 0:
            handle.seek(start.offset - 1)
            if handle.read(1) != b"\n":
                raise LedgerCorrupt(f"{start.segment}: cannot resume the scan at byte "
                                    f"{start.offset}, which does not follow a line's end")
    for expect, source in claims:
        if expect.seq == start.seq and expect.hash != start.hash:
            raise _rewritten(f"{start.segment} at byte {start.offset}", start.seq,
                             start.hash, source, expect.hash)
    return index


# A scan beats (execd.model.progress) at each segment and every this many records.
BEAT_EVERY = 1 << 16


def scan(
    directory: Path, observe: RecordObserver | None = None, *, repair: bool = False,
    expect: Head | Sequence[Claim] | None = None, expect_source: str = "the head witness",
    start: Resume | None = None, chunk: int = READ_CHUNK, max_line: int = MAX_LINE,
) -> ScanResult:
    """Walk the ledger in ``directory``, calling ``observe`` on each valid record.

    A bad line with no self-consistent record after it is a torn tail: with
    ``repair`` it is cut off (and logged by the caller via ``result.torn``);
    without, it is reported in ``result.torn``. A bad line with a valid record
    after it raises :class:`LedgerCorrupt`. With ``expect`` (a head witness, named
    by ``expect_source``, or a sequence of (head, who says it) claims, all checked in
    the same pass), the chain must reach each claim's seq with its hash, or
    :class:`LedgerTruncated` / :class:`LedgerCorrupt` is raised.

    With ``start``, the scan picks up just after record ``start.seq`` (folded
    elsewhere, a checkpoint's): earlier segments are not read, and the result counts
    from ``start``'s values. A ``start`` whose segment is not in the directory, or
    whose offset is past that segment's end or not just after a line, raises
    :class:`LedgerCorrupt` (the caller falls back to a full scan). A claim at
    ``start.seq`` must have ``start.hash``; one before it cannot be checked here, and
    is the caller's business.

    Segments are read in chunks of ``chunk`` bytes; a line longer than ``max_line``
    is an unreadable record, never held whole (:func:`execd.ledger.segments.read_lines`).
    """
    claims = _claims(expect, expect_source)
    odd = odd_segments(directory)
    if odd:
        raise LedgerCorrupt(f"{directory}: {odd[0]}, not a segment: execd writes each "
                            "segment as a regular file; move it out of the ledger directory")
    segments = list_segments(directory)
    result = ScanResult()
    first, offset = 0, 0
    if start is not None:
        first, offset = _resume(segments, start, claims), start.offset
        result = ScanResult(start.records, start.seq + 1, start.hash, start.last_time)
    wanted: dict[int, list[Claim]] = {}
    for claim in claims:
        if claim[0].seq >= result.next_seq:
            wanted.setdefault(claim[0].seq, []).append(claim)
    progress = PROGRESS.get()
    for index in range(first, len(segments)):
        path = segments[index]
        if progress is not None:
            progress()
        for line in read_lines(path, offset if index == first else 0, chunk, max_line,
                               partial=True):
            problem, record = _judge(line, result, max_line)
            if problem:
                if record is not None:
                    # A whole, readable record that fails its checks was not torn by a
                    # crash: it was changed. Cutting it would forget an outcome and
                    # let its intent run again, so refuse instead.
                    raise LedgerCorrupt(f"{path.name} at byte {line.start}: {problem}"
                                        + _archive_hint(directory, result.next_seq))
                size = _refuse_if_valid_after(line.end, segments[index:], line.start, problem,
                                              chunk, max_line)
                result.torn = TornTail(path.name, line.start, size - line.start, problem)
                _check_head(result, claims)
                if repair:
                    _cut(path, line.start, segments[index + 1 :])
                return result
            assert record is not None
            for said, source in wanted.get(record.seq, ()):
                if record.hash != said.hash:
                    raise _rewritten(f"{path.name} at byte {line.start}", record.seq,
                                     record.hash, source, said.hash)
            if observe is not None:
                observe(record)
            result.records += 1
            if progress is not None and not result.records % BEAT_EVERY:
                progress()
            result.next_seq = record.seq + 1
            result.last_hash = record.hash
            if record.time > result.last_time:
                result.last_time = record.time
    _check_head(result, claims)
    return result


def _archive_hint(directory: Path, expected: int) -> str:
    """When record 1 is not where the ledger starts and an archive is there but no
    ``archived.json`` says what it holds: that lost file, the likelier cause."""
    from execd.ledger import retention  # it imports this module

    if expected != 1 or (directory / retention.ARCHIVED).exists():
        return ""
    if not (directory / retention.ARCHIVE).is_dir():
        return ""
    return (f"; {directory / retention.ARCHIVED} is missing beside "
            f"{directory / retention.ARCHIVE}/: the records before are archived, and that "
            f"file says so. Restore it: copy {retention.ARCHIVE}/{retention.MANIFEST} to "
            f"{retention.ARCHIVED}")


def _judge(line: Line, result: ScanResult, max_line: int) -> tuple[str, Record | None]:
    """Why ``line`` is not the record after ``result`` ("" when it is), and the record."""
    if not line.complete:
        return "incomplete last line", None
    if line.too_long:
        return f"unreadable record (longer than {max_line} bytes)", None
    return _problem(line.data, result.next_seq, result.last_hash)


def _refuse_if_valid_after(
    end: int, segments: list[Path], offset: int, problem: str, chunk: int, max_line: int
) -> int:
    """Raise LedgerCorrupt if a self-consistent record follows the bad line that ends at
    ``end`` in ``segments[0]`` (at ``offset``), reading one bounded line at a time;
    else the number of bytes ``segments[0]`` held as read."""
    size = end
    for number, path in enumerate(segments):
        for line in read_lines(path, end if number == 0 else 0, chunk, max_line, partial=True):
            if number == 0:
                size = line.end
            if line.data and _self_consistent(line.data):
                raise LedgerCorrupt(
                    f"{segments[0].name} at byte {offset}: {problem}; valid records follow, "
                    "so this is damage inside the ledger, not a torn write"
                )
    return size
def _cut(path: Path, offset: int, later: list[Path]) -> None:
    """Truncate a torn tail and drop later segments (which hold no valid record)."""
    with open(path, "r+b") as handle:
        handle.truncate(offset)
        handle.flush()
        os.fsync(handle.fileno())
    for extra in later:
        extra.unlink()
    fsync_dir(path.parent)
