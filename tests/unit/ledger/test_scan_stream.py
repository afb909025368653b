"""The ledger's readers stream: bounded chunks, bounded lines, the same answers whatever
the chunk size; one pass for several head claims; a scan resumed after any record.

The scan's torn, corrupt and witness rules themselves: tests/unit/ledger/test_ledger.py
and tests/pipeline/test_crash_states.py.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from execd.ledger.head import Head
from execd.ledger.record import Record, record_decoder
from execd.ledger.scan import Resume, ScanResult, scan
from execd.ledger.segments import Line, list_segments, read_lines
from execd.model.errors import LedgerCorrupt, LedgerTruncated
from tests import bulk_ledger
from tests.ledgers import build


def test_the_bulk_template_is_the_real_encoding() -> None:
    ours, real = bulk_ledger.template()
    assert ours == real


def lines_of(path: Path, chunk: int, max_line: int = 1 << 20) -> list[Line]:
    return list(read_lines(path, 0, chunk, max_line, partial=True))


def test_lines_are_the_same_whatever_the_chunk_size(tmp_path: Path) -> None:
    """Lines split across every chunk boundary come out whole and identical; an
    over-long line is reported at its place, the same for every chunk size."""
    build(tmp_path, 5)
    segment = list_segments(tmp_path)[0]
    stored = segment.read_bytes()
    long_line = b"x" * 400
    segment.write_bytes(stored + b"\n" + long_line + b"\nshort\r\n" + b"y" * 500)
    expected = lines_of(segment, 1 << 20, max_line=300)
    assert [line.data for line in expected[:5]] == stored.split(b"\n")[:5]
    assert expected[5] == Line(b"", len(stored), len(stored) + 1, True, False)
    assert expected[6] == Line(b"", len(stored) + 1, len(stored) + 402, True, True)
    assert expected[7].data == b"short\r" and expected[7].complete
    assert expected[8] == Line(b"", expected[7].end, expected[7].end + 500, False, True)
    assert len(expected) == 9
    for chunk in range(1, 420):
        assert lines_of(segment, chunk, max_line=300) == expected, chunk
    assert [line.data for line in read_lines(segment)][:5] == stored.split(b"\n")[:5]
    assert all(line.complete for line in read_lines(segment)), "no partial line by default"


def observed(directory: Path, **options: object) -> tuple[ScanResult, list[Record]]:
    seen: list[Record] = []
    result = scan(directory, seen.append, **options)  # type: ignore[arg-type]
    return result, seen


@pytest.mark.parametrize("tail", [b"", b"\x00" * 300 + b"\n" + b"\x00" * 10, b'{"v":1,"se'])
def test_a_scan_is_the_same_whatever_the_chunk_size(tmp_path: Path, tail: bytes) -> None:
    lines = build(tmp_path, 12, segment_bytes=1024)
    last = list_segments(tmp_path)[-1]
    with open(last, "ab") as handle:
        handle.write(tail)
    whole, records = observed(tmp_path)
    assert whole.records == 12 and [r.seq for r in records] == list(range(1, 13))
    assert (whole.torn is None) == (not tail)
    for chunk in (1, 2, 3, 7, 64, 255, 256, 1000):
        assert observed(tmp_path, chunk=chunk) == (whole, records), chunk
    assert len(lines) == 12


def test_an_over_long_line_is_an_unreadable_record(tmp_path: Path) -> None:
    """Longer than the bound: never held, reported as unreadable; a torn tail at the end,
    damage inside the ledger when valid records follow."""
    lines = build(tmp_path, 4)
    segment = list_segments(tmp_path)[0]
    segment.write_bytes(b"".join(lines[:2]) + b"z" * 5000 + b"\n")
    result = scan(segment.parent, max_line=4096, chunk=100)
    assert result.records == 2 and result.torn is not None
    assert result.torn.problem == "unreadable record (longer than 4096 bytes)"
    assert (result.torn.offset, result.torn.length) == (len(lines[0] + lines[1]), 5001)
    segment.write_bytes(b"".join(lines[:2]) + b"z" * 5000 + b"\n" + b"".join(lines[2:]))
    with pytest.raises(LedgerCorrupt, match=r"longer than 4096 bytes\); valid records follow"):
        scan(segment.parent, max_line=4096, chunk=100)
    with pytest.raises(LedgerCorrupt, match="JSON is malformed"):  # under the default bound
        scan(segment.parent)


def test_valid_records_after_a_torn_line_are_found_in_later_segments(tmp_path: Path) -> None:
    build(tmp_path, 30, segment_bytes=1024)
    segments = list_segments(tmp_path)
    assert len(segments) > 3
    data = segments[1].read_bytes()
    segments[1].write_bytes(data[:-5])  # the last line of a middle segment torn
    with pytest.raises(LedgerCorrupt, match="incomplete last line; valid records follow"):
        scan(tmp_path, chunk=16)


def test_several_claims_are_checked_in_one_pass(tmp_path: Path) -> None:
    lines = build(tmp_path, 8)
    records = [record_decoder.decode(line) for line in lines]
    good = [(Head(3, records[2].hash), "the witness"), (Head(6, records[5].hash), "--expect")]
    assert scan(tmp_path, expect=good).records == 8
    for bad in (1, 0):
        claims = list(good)
        claims[bad] = (Head(claims[bad][0].seq, "f" * 64), claims[bad][1])
        with pytest.raises(LedgerCorrupt, match=f"but {claims[bad][1]} says ffffffff"):
            scan(tmp_path, expect=claims)
    with pytest.raises(LedgerTruncated, match="but --expect says record 9"):
        scan(tmp_path, expect=[good[0], (Head(9, "a" * 64), "--expect")])
    same_seq = [(Head(3, records[2].hash), "the witness"), (Head(3, "e" * 64), "--expect")]
    with pytest.raises(LedgerCorrupt, match="but --expect says eeeeeeee"):
        scan(tmp_path, expect=same_seq)


def resume_points(directory: Path) -> list[Resume]:
    """A Resume just after each record, from a full scan's own positions."""
    points = []
    records = last_time = 0
    for path in list_segments(directory):
        for line in read_lines(path):
            record = record_decoder.decode(line.data)
            records += 1
            last_time = max(last_time, record.time)
            points.append(Resume(path.name, line.end, record.seq, record.hash, last_time,
                                 records))
    return points


def test_a_scan_resumed_after_any_record_sees_the_suffix(tmp_path: Path) -> None:
    build(tmp_path, 25, segment_bytes=1024)
    assert len(list_segments(tmp_path)) > 3
    whole, records = observed(tmp_path)
    points = resume_points(tmp_path)
    assert len(points) == 25
    for at, start in enumerate(points):
        assert observed(tmp_path, start=start, chunk=50) == (whole, records[at + 1:]), at
        head = Head(start.seq, start.hash)
        assert scan(tmp_path, start=start, expect=head).records == 25
        with pytest.raises(LedgerCorrupt, match="the ledger was rewritten"):
            scan(tmp_path, start=start, expect=Head(start.seq, "0" * 64))
        if at:
            # A witness before the resume point cannot be checked there: the caller's.
            assert scan(tmp_path, start=start, expect=Head(1, "0" * 64)).records == 25


def test_a_resumed_scan_still_finds_a_torn_tail_and_corruption(tmp_path: Path) -> None:
    lines = build(tmp_path, 10)
    segment = list_segments(tmp_path)[0]
    start = resume_points(tmp_path)[4]
    with open(segment, "ab") as handle:
        handle.write(b'{"v":1,"seq":11')
    result = scan(tmp_path, start=start)
    assert result.records == 10 and result.torn is not None
    assert result.torn.offset == len(b"".join(lines))
    result = scan(tmp_path, start=start, repair=True)
    assert segment.read_bytes() == b"".join(lines)
    edited = list(lines)
    edited[7] = edited[7].replace(b'"n":7', b'"n":8')
    segment.write_bytes(b"".join(edited))
    with pytest.raises(LedgerCorrupt, match="record seq 8 does not match its hash"):
        scan(tmp_path, start=start)


def test_a_resume_point_that_is_not_in_the_ledger_is_refused(tmp_path: Path) -> None:
    lines = build(tmp_path, 4)
    start = resume_points(tmp_path)[1]
    cases = {
        "no such segment": Resume("segment-00000009.jsonl", 0, 2, start.hash, 0, 2),
        "past its end": Resume(start.segment, 10**6, 2, start.hash, 0, 2),
        "does not follow a line's end": Resume(start.segment, start.offset - 3, 2,
                                               start.hash, 0, 2),
    }
    for problem, bad in cases.items():
        with pytest.raises(LedgerCorrupt, match=problem):
            scan(tmp_path, start=bad)
    assert scan(tmp_path, start=Resume(start.segment, len(b"".join(lines)), 4,
                                       record_decoder.decode(lines[3]).hash, 3, 4)).records == 4


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """One 16 MiB segment of real outcome records."""
    directory = tmp_path_factory.mktemp("big")
    return directory, bulk_ledger.build(directory, 16 << 20)


def test_a_scan_of_a_big_segment_holds_a_chunk_not_the_segment(big: tuple[Path, int]) -> None:
    directory, count = big
    assert list_segments(directory)[0].stat().st_size >= 16 << 20
    tracemalloc.start()
    try:
        result = scan(directory, chunk=256 << 10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.records == count and result.torn is None
    assert peak < 2 << 20, f"peak {peak} bytes for a {16 << 20}-byte segment"
