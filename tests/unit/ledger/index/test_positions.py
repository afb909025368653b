"""The positions index's format and its reader: key ranges of id prefixes, runs read by
range without being loaded, and the id index's files unchanged by the extension."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from execd.ledger.index import positions, runs
from execd.ledger.index.positions import (
    Found,
    View,
    entries_of,
    entry,
    prefix_range,
    read_line,
    unpack,
)
from execd.ledger.index.runs import RunInfo
from execd.ledger.index.store import IndexStore, Manifest, Span, encode_manifest
from execd.ledger.record import LedgerChain
from execd.model.errors import IndexDamaged


@given(st.integers(0, (1 << 128) - 1), st.integers(0, 36), st.integers(0, (1 << 128) - 1))
def test_a_prefix_is_the_key_range_of_the_ids_whose_text_starts_with_it(
        key: int, length: int, other: int) -> None:
    prefix = str(uuid.UUID(int=key))[:length]
    found = prefix_range(prefix)
    assert found is not None
    low, high = found
    assert low <= key < high
    assert (low <= other < high) == str(uuid.UUID(int=other)).startswith(prefix)


def test_a_prefix_no_id_can_start_with_has_no_range() -> None:
    for prefix in ("0123-", "012345678", "g", "00000000-00000", "-"):
        assert prefix_range(prefix) is None, prefix
    assert prefix_range("0") == (0, 1 << 124)


@given(st.integers(0, (1 << 128) - 1), st.integers(1, (1 << 63)), st.integers(0, 1 << 62))
def test_an_entry_holds_its_id_seq_and_offset(intent: int, seq: int, offset: int) -> None:
    assert unpack(entry(intent, seq, offset)) == Found(seq, intent, offset)


def test_the_id_index_s_manifest_is_encoded_as_before() -> None:
    """Without a span, a manifest's bytes are the ones written before positions existed,
    so the digest of every id index already on disk still matches."""
    info = RunInfo("run-00000001.ids", 3, 9, 0, "ab" * 32)
    assert encode_manifest(Manifest(1, 9, 2, (info,))) == (
        b'{"manifest":{"version":1,"through_seq":9,"next_number":2,"runs":[{"name":'
        b'"run-00000001.ids","count":3,"through_seq":9,"value_size":0,"sha256":"' + b"ab" * 32
        + b'"}]},"sha256":"' + encode_manifest(Manifest(1, 9, 2, (info,)))[-66:-2] + b'"}')
    assert b"span" not in encode_manifest(Manifest(1, 9, 2, (info,)))


def test_the_view_finds_every_record_of_a_range_across_runs(tmp_path: Path) -> None:
    """Records of one id spread over several runs (and several ids sharing a high half)
    come back in ledger order; the store's own open (which hashes every run) agrees
    they are whole; the span is kept by compaction."""
    store = IndexStore.create(tmp_path)
    ids = [(n * 0x9E3779B97F4A7C15F39CC0605CEDC835) % (1 << 128) for n in range(50)]
    ids += [ids[0] ^ 1, ids[0] ^ 2]  # same high half as ids[0]
    seq = 0
    for number in range(5):
        batch = []
        for intent in ids:
            seq += 1
            batch.append(entry(intent, seq, seq * 100))
        store.write_run(sorted(batch), seq, positions.VALUE, capacity=1,
                        span=Span(0, seq * 100, seq * 100 + 50, f"h{number}"))
    assert store.compact(filtered=False) is not None
    store.close()
    reopened = IndexStore.open(tmp_path)
    assert len(reopened.manifest.runs) == 2 and reopened.manifest.span is not None
    assert reopened.manifest.span.head_hash == "h4"
    reopened.close()
    view = View.open(tmp_path)
    for intent in (ids[0], ids[7], ids[-1]):
        found = view.between(intent, intent + 1)
        assert [item.intent for item in found] == [intent] * 5
        assert [item.seq for item in found] == sorted(item.seq for item in found)
        assert all(item.offset == item.seq * 100 for item in found)
    prefix = prefix_range(str(uuid.UUID(int=ids[0]))[:20])
    assert prefix is not None
    assert {item.intent for item in view.between(*prefix)} >= {ids[0], ids[0] ^ 1, ids[0] ^ 2}
    assert len(view.between(0, 1 << 128)) == 5 * len(ids)
    view.close()


def test_a_batch_of_lines_gives_what_each_line_names(tmp_path: Path) -> None:
    """Decoded in one call, lines give the entries each read alone names (a start under
    id 0, a record without an intent none), and a line that is not a record spoils the
    batch."""
    chain = LedgerChain()
    bodies = [("start", b'{"clock":"wall"}'), ("tick", b'{"time":3}'),
              ("outcome", b'{"execution_id":"e","intent_id":"%s","intent":{"intent_id":'
               b'"%s"}}' % (str(uuid.UUID(int=5)).encode(), str(uuid.UUID(int=9)).encode())),
              ("order", b'{"venue":"v","intent_id":"%s"}' % str(uuid.UUID(int=1 << 100)).encode())]
    lines = [chain.append(kind, 1, body).rstrip(b"\n") for kind, body in bodies]
    batch = entries_of(lines, 1000)
    assert batch is not None
    starts = [1000 + sum(len(line) + 1 for line in lines[:n]) for n in range(len(lines))]
    assert [unpack(record) for record in batch.entries] == [
        Found(1, 0, starts[0]), Found(3, 5, starts[2]), Found(4, 1 << 100, starts[3])]
    assert batch.last == read_line(lines[-1]) and batch.last_start == starts[3]
    assert batch.end == starts[3] + len(lines[3]) + 1
    assert entries_of([*lines[:2], b"{not a record", lines[3]], 0) is None


def test_a_run_of_positions_may_repeat_a_key_and_no_other_may(tmp_path: Path) -> None:
    """One id with more records than a block (so two fences are equal) opens, merges and
    reads back whole; a repeated key in an id run, or a repeated record, is refused."""
    store = IndexStore.create(tmp_path)
    for number in range(4):
        store.write_run([entry(7, number * 100 + seq, seq) for seq in range(1, 81)],
                        number + 1, positions.VALUE, filtered=False)
    assert store.compact(filtered=False) is not None
    store.close()
    reopened = IndexStore.open(tmp_path)  # checks every run's SHA-256 and its fences
    assert [info.count for info in reopened.manifest.runs] == [320]
    reopened.close()
    view = View.open(tmp_path)
    assert [item.seq for item in view.between(7, 8)] == sorted(
        number * 100 + seq for number in range(4) for seq in range(1, 81))
    view.close()
    with pytest.raises(ValueError, match="with a key above"):
        runs.write(tmp_path / "twice.ids", [entry(7, 1, 1), entry(7, 1, 1)], 1, positions.VALUE)
    with pytest.raises(ValueError, match="with a key above"):
        runs.write(tmp_path / "ids.ids", [bytes(16), bytes(16)], 1)


def test_a_reader_copes_with_a_compaction_under_it(tmp_path: Path) -> None:
    """Runs a reader has open stay readable when a compaction removes them; a manifest
    whose runs are gone each time it is read is reported, never half read."""
    store = IndexStore.create(tmp_path)
    for number in range(4):
        store.write_run([entry(3, number * 10 + 1, number)], number + 1, positions.VALUE,
                        filtered=False)
    view = View.open(tmp_path)
    assert store.compact(filtered=False) is not None
    assert sorted(p.name for p in tmp_path.glob("run-*")) == ["run-00000005.ids"]
    assert [item.seq for item in view.between(3, 4)] == [1, 11, 21, 31]
    view.close()
    (tmp_path / "run-00000005.ids").unlink()
    with pytest.raises(IndexDamaged, match="a run its manifest names is missing"):
        View.open(tmp_path)
    store.close()
