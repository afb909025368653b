"""The ledger: chain format, verification, torn-tail repair, corruption refusal, rotation."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from execd.ledger.record import GENESIS, LedgerChain, Record, record_decoder
from execd.ledger.scan import scan
from execd.ledger.segments import SegmentStore, list_segments
from execd.ledger.writer import Reorder
from execd.model.errors import LedgerCorrupt
from execd.model.messages import Entry, StopRecord
from tests.helpers import EXECD, ROOT


def build(directory: Path, count: int, segment_bytes: int = 1 << 20) -> list[bytes]:
    store = SegmentStore(directory, segment_bytes)
    store.open()
    chain = LedgerChain()
    lines = []
    for n in range(count):
        line = chain.append("stop", n, msgspec.json.encode({"n": n, "text": "é\"x"}))
        store.write_durably(line)
        lines.append(line)
    store.close()
    return lines


def rewrite(directory: Path, lines: list[bytes]) -> None:
    paths = list_segments(directory)
    for path in paths[1:]:
        path.unlink()
    paths[0].write_bytes(b"".join(lines))


def verify(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXECD, "ledger", "verify", "--ledger", str(directory)],
                          capture_output=True, text=True, cwd=ROOT, check=False)


@given(st.integers(0, 2**40), st.dictionaries(st.text(), st.text()))
def test_hand_formatted_line_equals_canonical_encoding(time: int, body: dict[str, str]) -> None:
    chain = LedgerChain(7, "ab" * 32)
    line = chain.append("outcome", time, msgspec.json.encode(body))
    record = record_decoder.decode(line)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert record.head_bytes() == line[: line.rindex(b',"hash"')] + b"}"
    assert record.hash == hashlib.sha256(record.head_bytes()).hexdigest() == chain.prev_hash
    assert (record.seq, record.time, record.prev) == (7, time, "ab" * 32)


def test_verify_accepts_an_intact_chain(tmp_path: Path) -> None:
    build(tmp_path, 5)
    result = verify(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: 5 records, last seq 5" in result.stdout


def test_verify_detects_an_edited_record(tmp_path: Path) -> None:
    lines = build(tmp_path, 5)
    lines[2] = lines[2].replace(b'"n":2', b'"n":9')
    rewrite(tmp_path, lines)
    result = verify(tmp_path)
    assert result.returncode == 1
    assert "record seq 3 does not match its hash (edited)" in result.stdout


def test_verify_detects_an_edit_that_recomputes_the_hash(tmp_path: Path) -> None:
    lines = build(tmp_path, 5)
    record = record_decoder.decode(lines[2])
    forged = Record(record.v, record.seq, record.time, record.kind, record.prev,
                    msgspec.Raw(b'{"n":99}'), "")
    digest = hashlib.sha256(forged.head_bytes()).hexdigest()
    lines[2] = forged.head_bytes()[:-1] + b',"hash":"' + digest.encode() + b'"}\n'
    rewrite(tmp_path, lines)
    result = verify(tmp_path)
    assert result.returncode == 1
    assert "record seq 4 does not link to the previous record" in result.stdout


def test_verify_detects_a_removed_record(tmp_path: Path) -> None:
    lines = build(tmp_path, 5)
    del lines[1]
    rewrite(tmp_path, lines)
    result = verify(tmp_path)
    assert result.returncode == 1
    assert "expected seq 2, found 3 (record 2 removed or reordered)" in result.stdout


def test_verify_detects_swapped_records(tmp_path: Path) -> None:
    lines = build(tmp_path, 5)
    lines[1], lines[2] = lines[2], lines[1]
    rewrite(tmp_path, lines)
    result = verify(tmp_path)
    assert result.returncode == 1
    assert "expected seq 2, found 3" in result.stdout


def test_torn_last_line_is_repaired_on_recovery(tmp_path: Path) -> None:
    lines = build(tmp_path, 4)
    segment = list_segments(tmp_path)[0]
    with open(segment, "ab") as handle:
        handle.write(lines[0][:37])  # a write cut short by a crash
    assert verify(tmp_path).returncode == 1
    result = scan(tmp_path, repair=True)
    assert result.torn is not None and result.torn.problem == "incomplete last line"
    assert result.records == 4 and result.next_seq == 5
    assert segment.read_bytes() == b"".join(lines)
    assert verify(tmp_path).returncode == 0


def test_garbage_after_the_last_record_is_a_torn_tail(tmp_path: Path) -> None:
    lines = build(tmp_path, 3)
    segment = list_segments(tmp_path)[0]
    with open(segment, "ab") as handle:
        handle.write(b"\x00" * 300 + b"\n" + b"\x00" * 10)
    result = scan(tmp_path, repair=True)
    assert result.records == 3
    assert segment.read_bytes() == b"".join(lines)


def test_corruption_followed_by_valid_records_refuses_to_start(tmp_path: Path) -> None:
    lines = build(tmp_path, 6)
    lines[2] = b'{"v":1,"seq":3, garbage}\n'
    rewrite(tmp_path, lines)
    before = list_segments(tmp_path)[0].read_bytes()
    with pytest.raises(LedgerCorrupt, match="valid records follow"):
        scan(tmp_path, repair=True)
    assert list_segments(tmp_path)[0].read_bytes() == before, "refusal must not modify anything"


def test_daemon_refuses_a_corrupt_ledger_with_exit_3(tmp_path: Path) -> None:
    from tests.helpers import write_config

    ledger = tmp_path / "ledger"
    lines = build(ledger, 6)
    lines[1] = lines[1].replace(b'"n":1', b'"n":7')
    rewrite(ledger, lines)
    config = write_config(tmp_path)
    result = subprocess.run([*EXECD, "run", "--config", str(config)], capture_output=True,
                            text=True, cwd=ROOT, timeout=60, check=False)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "ledger.refused" in result.stdout and "edited" in result.stdout


def test_segments_rotate_and_the_chain_spans_them(tmp_path: Path) -> None:
    build(tmp_path, 40, segment_bytes=4096)
    segments = list_segments(tmp_path)
    assert len(segments) > 2
    assert all(p.read_bytes().endswith(b"\n") for p in segments)
    result = scan(tmp_path)
    assert result.records == 40 and result.torn is None
    first = record_decoder.decode(segments[0].read_bytes().splitlines()[0])
    assert first.prev == GENESIS


def test_reorder_releases_in_ingest_order() -> None:
    body = StopRecord("x")
    reorder = Reorder(0)
    assert reorder.push([Entry(2, "stop", 0, body), Entry(4, "stop", 0, body)]) == []
    assert [e.seq for e in reorder.push([Entry(0, "stop", 0, body)])] == [0]
    assert [e.seq for e in reorder.push([Entry(1, "stop", 0, body), Entry(3, "stop", 0, body)])] \
        == [1, 2, 3, 4]
    assert reorder.waiting == 0 and reorder.next_seq == 5


def test_an_edited_last_record_refuses_rather_than_being_cut(tmp_path: Path) -> None:
    lines = build(tmp_path, 4)
    lines[3] = lines[3].replace(b'"n":3', b'"n":8')
    rewrite(tmp_path, lines)
    with pytest.raises(LedgerCorrupt, match="record seq 4 does not match its hash"):
        scan(tmp_path, repair=True)
    assert verify(tmp_path).returncode == 1
