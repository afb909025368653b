"""Sorted run files: every key written is found with its value, no other key is, a merge
is the sorted union, and a run that was damaged on disk is never opened as if whole
(a lookup in a damaged run could refuse a new intent or, worse, admit a duplicate)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from execd.ledger.index import runs
from execd.ledger.index.runs import FENCE_EVERY, HEADER, Run, RunInfo
from execd.model.errors import IndexDamaged

KEYS = st.binary(min_size=16, max_size=16)
# Sizes around the block boundaries, where an off-by-one would hide a key.
COUNTS = st.sampled_from([0, 1, 2, FENCE_EVERY - 1, FENCE_EVERY, FENCE_EVERY + 1,
                          3 * FENCE_EVERY + 7])


def _records(keys: list[bytes], value_size: int) -> list[bytes]:
    return [key + (i.to_bytes(8) if value_size else b"") for i, key in enumerate(keys)]


def _distinct(draw: st.DrawFn, count: int) -> list[bytes]:
    keys: set[bytes] = set(draw(st.lists(KEYS, min_size=count, max_size=count)))
    while len(keys) < count:  # a repeat drawn: top up with keys nobody else draws
        keys.add(len(keys).to_bytes(16))
    return sorted(keys)


@st.composite
def sorted_keys(draw: st.DrawFn) -> list[bytes]:
    return _distinct(draw, draw(COUNTS))


@settings(max_examples=60, deadline=None)
@given(sorted_keys(), st.lists(KEYS, max_size=40), st.sampled_from([0, 8]))
def test_every_key_written_is_found_and_no_other(keys: list[bytes], probes: list[bytes],
                                                 value_size: int) -> None:
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "run-00000001.ids"
        records = _records(keys, value_size)
        written = runs.write(path, records, through_seq=9, value_size=value_size)
        loaded = runs.load(path, written.info)
        try:
            for run in (written, loaded):
                assert len(run) == len(keys)
                for record in records:
                    assert run.get(record[:16]) == record[16:]
                for probe in probes:
                    assert (probe in run) == (probe in set(keys))
                assert list(run.records()) == records
                assert list(run.keys()) == [int.from_bytes(key) for key in keys]
        finally:
            written.close()
            loaded.close()
        assert path.stat().st_size == HEADER.size + len(keys) * (16 + value_size)


@settings(max_examples=100)
@given(st.lists(st.lists(KEYS, max_size=60), max_size=5))
def test_a_merge_is_the_sorted_union(sources: list[list[bytes]]) -> None:
    streams = [iter(sorted(set(source))) for source in sources]
    assert list(runs.merge(streams)) == sorted(set().union(*map(set, sources)))


def test_a_merge_keeps_the_earliest_value_of_a_key() -> None:
    key = bytes(16)
    first, later = [key + (5).to_bytes(8)], [key + (9).to_bytes(8)]
    assert list(runs.merge([iter(later), iter(first)])) == first


def test_keys_out_of_order_or_repeated_are_refused_and_leave_no_file(tmp_path: Path) -> None:
    path = tmp_path / "run-00000001.ids"
    for records in ([b"b" * 16, b"a" * 16], [b"a" * 16, b"a" * 16], [b"short"]):
        with pytest.raises(ValueError, match="record"):
            runs.write(path, records, 1)
        assert not path.exists()


def _written(tmp_path: Path, count: int = 1000) -> tuple[Path, RunInfo]:
    path = tmp_path / "run-00000001.ids"
    keys = sorted((n * 7919 % 1_000_003).to_bytes(16) for n in range(count))
    run = runs.write(path, keys, 4)
    run.close()
    return path, run.info


def _load(path: Path, info: RunInfo) -> Run:
    run = runs.load(path, info)
    run.close()
    return run


@pytest.mark.parametrize("offset", [0, 9, 17, 40, HEADER.size, HEADER.size + 16 * 500, -1])
def test_one_flipped_byte_anywhere_is_found(tmp_path: Path, offset: int) -> None:
    path, info = _written(tmp_path)
    _load(path, info)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IndexDamaged, match=path.name):
        _load(path, info)


def test_a_cut_or_extended_run_is_found(tmp_path: Path) -> None:
    path, info = _written(tmp_path)
    data = path.read_bytes()
    for damaged in (data[:-16], data[:-3], data + bytes(16), data[:10], b""):
        path.write_bytes(damaged)
        with pytest.raises(IndexDamaged, match=path.name):
            _load(path, info)


def test_a_run_the_manifest_describes_otherwise_is_refused(tmp_path: Path) -> None:
    path, info = _written(tmp_path)
    for other in (RunInfo(info.name, info.count, 5, 0, info.sha256),
                  RunInfo(info.name, info.count - 1, 4, 0, info.sha256),
                  RunInfo(info.name, info.count, 4, 0, "0" * 64)):
        with pytest.raises(IndexDamaged, match="the manifest"):
            _load(path, other)
    with pytest.raises(IndexDamaged, match="No such file"):
        _load(tmp_path / "run-00000002.ids", info)
