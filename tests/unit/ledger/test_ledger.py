"""The ledger: chain format, torn-tail repair, corruption refusal, rotation, ingest order.

``execd ledger verify`` and the daemon on bad ledgers, as processes:
tests/process/test_ledger_process.py.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from execd.cli.main import main
from execd.ledger.record import GENESIS, LedgerChain, record_decoder
from execd.ledger.scan import scan
from execd.ledger.segments import list_segments
from execd.ledger.writer import Reorder
from execd.model.errors import LedgerCorrupt
from execd.model.messages import Entry, StopRecord
from tests.ledgers import build, rewrite


@given(st.integers(0, 2**40), st.dictionaries(st.text(), st.text()))
def test_hand_formatted_line_equals_canonical_encoding(time: int, body: dict[str, str]) -> None:
    """The hand-formatted ledger line never differs from the canonical encoding that verify hashes.
    """
    chain = LedgerChain(7, "ab" * 32)
    line = chain.append("outcome", time, msgspec.json.encode(body))
    record = record_decoder.decode(line)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert record.head_bytes() == line[: line.rindex(b',"hash"')] + b"}"
    assert record.hash == hashlib.sha256(record.head_bytes()).hexdigest() == chain.prev_hash
    assert (record.seq, record.time, record.prev) == (7, time, "ab" * 32)


def test_garbage_after_the_last_record_is_a_torn_tail(tmp_path: Path) -> None:
    """Bytes after the last record that are no record never stop a start: they are cut as a torn
    tail and every record before them is kept.
    """
    lines = build(tmp_path, 3)
    segment = list_segments(tmp_path)[0]
    with open(segment, "ab") as handle:
        handle.write(b"\x00" * 300 + b"\n" + b"\x00" * 10)
    result = scan(tmp_path, repair=True)
    assert result.records == 3
    assert segment.read_bytes() == b"".join(lines)


def test_corruption_followed_by_valid_records_refuses_to_start(tmp_path: Path) -> None:
    """A bad record followed by valid ones is never cut or repaired: recovery refuses and changes
    nothing.
    """
    lines = build(tmp_path, 6)
    lines[2] = b'{"v":1,"seq":3, garbage}\n'
    rewrite(tmp_path, lines)
    before = list_segments(tmp_path)[0].read_bytes()
    with pytest.raises(LedgerCorrupt, match="valid records follow"):
        scan(tmp_path, repair=True)
    assert list_segments(tmp_path)[0].read_bytes() == before, "refusal must not modify anything"


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
    """Entries that arrive out of order are never released out of ingest order."""
    body = StopRecord("x")
    reorder = Reorder(0)
    assert reorder.push([Entry(2, "stop", 0, body), Entry(4, "stop", 0, body)]) == []
    assert [e.seq for e in reorder.push([Entry(0, "stop", 0, body)])] == [0]
    assert [e.seq for e in reorder.push([Entry(1, "stop", 0, body), Entry(3, "stop", 0, body)])] \
        == [1, 2, 3, 4]
    assert reorder.waiting == 0 and reorder.next_seq == 5


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_segment_name_that_is_no_file_is_reported_not_skipped(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    """A FIFO or a directory named as a segment: verify fails naming it and start-up's scan
    refuses, where skipping it would call the chain whole (and the writer could rotate
    onto the FIFO and block)."""
    build(tmp_path, 3)
    odd = tmp_path / "segment-00000002.jsonl"
    if kind == "fifo":
        os.mkfifo(odd)
    else:
        odd.mkdir()
    what = "a FIFO" if kind == "fifo" else "a directory"
    assert main(["ledger", "verify", "--ledger", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"FAILED: {tmp_path}: segment-00000002.jsonl: {what}, not a "
                          "segment"), out
    with pytest.raises(LedgerCorrupt, match=f"segment-00000002.jsonl: {what}, not a segment"):
        scan(tmp_path, repair=True)
