"""The positions index's format and its reader: key ranges of id prefixes, runs read by
range without being loaded, and the id index's files unchanged by the extension."""

from __future__ import annotations

import uuid
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from execd.ledger.index import positions
from execd.ledger.index.positions import Found, View, entry, prefix_range, unpack
from execd.ledger.index.runs import RunInfo
from execd.ledger.index.store import IndexStore, Manifest, Span, encode_manifest


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
