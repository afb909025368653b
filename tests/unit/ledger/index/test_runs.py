"""Sorted run files: every key written is found with its value, no other key is, a merge
is the sorted union, and a run damaged on disk is never trusted: it does not open, or
every read of the damaged block raises (a lookup in a damaged run could refuse a new
intent or, worse, admit a duplicate)."""

from __future__ import annotations

import tempfile
from array import array
from bisect import bisect_right
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from execd.ledger.index import runs
from execd.ledger.index.filter import probe as hash_of
from execd.ledger.index.runs import BODY, FENCE_EVERY, HEADER, Fences, Run, RunInfo
from execd.model.errors import IndexDamaged, RunDamaged

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
    if draw(st.booleans()):
        return _distinct(draw, draw(COUNTS))
    # Ids numbered in their low bits (bench/paper.py's): many blocks start with the same
    # high half, and the fences must tell them apart by the low one.
    highs = draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))
    count = draw(COUNTS)
    lows = draw(st.lists(st.integers(0, 4 * count + 4), min_size=count, max_size=count))
    keys = {((highs[n % len(highs)] << 64) | low).to_bytes(16) for n, low in enumerate(lows)}
    return sorted(keys)


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
                for key in keys:  # the run's filter never calls one of its keys absent
                    assert run.filter.may_hold(*hash_of(int.from_bytes(key)))
                    assert run.has(int.from_bytes(key))
        finally:
            written.close()
            loaded.close()
        words, blocks = written.filter.words, -(-len(keys) // FENCE_EVERY)
        # Records, the filter, then each block's fence (16 bytes) and CRC (4).
        assert path.stat().st_size == (BODY + len(keys) * (16 + value_size) + 8 * words
                                       + 20 * blocks)


HALVES = st.one_of(st.integers(0, (1 << 64) - 1), st.sampled_from([0, 1, 1 << 63, (1 << 64) - 1]))


@settings(max_examples=200)
@given(st.lists(st.tuples(HALVES, HALVES), max_size=300), st.lists(st.tuples(HALVES, HALVES)))
def test_fences_find_the_block_a_bisect_of_whole_keys_finds(firsts: list[tuple[int, int]],
                                                            probes: list[tuple[int, int]]) -> None:
    # The radix table and the low halves' tie-break answer as one bisect of 128-bit keys.
    keys = sorted({(high << 64) | low for high, low in firsts})
    fences = Fences(array("Q", [k >> 64 for k in keys]), array("Q", [k & (1 << 64) - 1
                                                                     for k in keys]))
    asked = [*keys, *((high << 64) | low for high, low in probes)]
    for key in asked:
        assert fences.block(key) == bisect_right(keys, key) - 1
    # Filled whole (as the checkpointer's thread does) after some lookups filled some.
    fences.fill()
    for key in asked:
        assert fences.block(key) == bisect_right(keys, key) - 1


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


def test_the_last_block_ends_where_the_records_do(tmp_path: Path) -> None:
    # The filter's words follow the last (short) block: a read past the records would
    # find a "key" in them and refuse a new intent as a duplicate.
    keys = [n.to_bytes(16) for n in range(1, FENCE_EVERY + 5)]
    run = runs.write(tmp_path / "run-00000001.ids", keys, 1)
    data = run.path.read_bytes()
    end = BODY + 16 * len(keys)
    for at in range(end, len(data) - 15, 16):
        words = data[at:at + 16]
        if int.from_bytes(words) > len(keys):
            assert run.get(words) is None and not run.has(int.from_bytes(words))
    run.close()


def test_a_version_2_run_is_damaged(tmp_path: Path) -> None:
    path, info = _written(tmp_path)
    data = bytearray(path.read_bytes())
    data[8:10] = (2).to_bytes(2)
    path.write_bytes(bytes(data))
    with pytest.raises(IndexDamaged, match="not a version-3 run header"):
        _load(path, info)


def _damaged_reads_raise(path: Path, info: RunInfo, keys: list[bytes]) -> None:
    """After damage to ``path``: it does not open, or each lookup answers as the whole
    run did or raises RunDamaged, and reading it whole raises RunDamaged."""
    try:
        run = runs.load(path, info)
    except IndexDamaged as exc:
        refused: IndexDamaged | None = exc
    else:
        refused = None
    if refused is not None:
        assert path.name in str(refused)
        return
    held = set(keys)
    try:
        # What a hostile neighbour of each key would look like, too: absent keys.
        for key in [*keys, *((int.from_bytes(k) + 1).to_bytes(16) for k in keys)]:
            answers = _answers(run, key)
            assert answers in ((key in held, key in held), path), (key, answers)
        with pytest.raises(RunDamaged):
            list(run.records())
        with pytest.raises(RunDamaged):
            list(run.keys())
    finally:
        run.close()


def _answers(run: Run, key: bytes) -> tuple[bool, bool] | Path:
    """(has, get found) for ``key``, or the path a RunDamaged names."""
    try:
        return run.has(int.from_bytes(key)), run.get(key) is not None
    except RunDamaged as exc:
        return exc.path


def _regions(count: int, words: int) -> list[int]:
    # The first and last byte of every part of the file, and a middle record's.
    end = BODY + 16 * count
    blocks = -(-count // FENCE_EVERY)
    meta = [end, end + 8 * words, end + 8 * words + 8 * blocks, end + 8 * words + 16 * blocks]
    return [0, 9, 17, 33, 40, HEADER.size, BODY - 1, BODY, BODY + 16 * (count // 2) + 3,
            end - 1, *meta, *(at - 1 for at in meta[1:]), -1]


@pytest.mark.parametrize("region", range(len(_regions(1, 1))))
def test_one_flipped_bit_in_any_part_is_never_trusted(tmp_path: Path, region: int) -> None:
    path, info = _written(tmp_path)
    keys = sorted((n * 7919 % 1_000_003).to_bytes(16) for n in range(1000))
    opened = runs.load(path, info)
    opened.close()
    offset = _regions(1000, opened.filter.words)[region]
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    _damaged_reads_raise(path, info, keys)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_one_flipped_bit_anywhere_is_never_trusted(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as work:
        path, info = _written(Path(work), count=200)
        keys = sorted((n * 7919 % 1_000_003).to_bytes(16) for n in range(200))
        content = bytearray(path.read_bytes())
        content[data.draw(st.integers(0, len(content) - 1))] ^= 1 << data.draw(st.integers(0, 7))
        path.write_bytes(bytes(content))
        _damaged_reads_raise(path, info, keys)


def test_two_blocks_swapped_are_found(tmp_path: Path) -> None:
    # Whole blocks in each other's places: each is a whole block, CRC and all, but not
    # the one its fence and CRC name.
    path, info = _written(tmp_path)
    keys = sorted((n * 7919 % 1_000_003).to_bytes(16) for n in range(1000))
    data = bytearray(path.read_bytes())
    step = 16 * FENCE_EVERY
    first, second = BODY + 2 * step, BODY + 5 * step
    data[first:first + step], data[second:second + step] = (data[second:second + step],
                                                            data[first:first + step])
    path.write_bytes(bytes(data))
    run = runs.load(path, info)
    try:
        with pytest.raises(RunDamaged):
            run.has(int.from_bytes(keys[2 * FENCE_EVERY]))
    finally:
        run.close()
    _damaged_reads_raise(path, info, keys)


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


def test_a_lookup_that_lands_in_the_wrong_block_is_damage_not_an_answer(
        tmp_path: Path) -> None:
    # Were the fences' table wrong (it is filled as lookups go), a key would be looked
    # for in a block that cannot hold it and called absent: a duplicate admitted. The
    # block's range is checked against the key instead.
    keys = [n.to_bytes(16) for n in range(0, 40 * FENCE_EVERY, 2)]
    run = runs.write(tmp_path / "run-00000001.ids", keys, 1)
    try:
        fences = run.fences
        assert fences.block(int.from_bytes(keys[-1])) == len(fences) - 1
        fences._starts[0] = 0
        fences._starts[1] = 3  # the only slot: every lookup bisects blocks 0 to 2
        with pytest.raises(RunDamaged):
            run.has(int.from_bytes(keys[-1]))
        assert run.has(int.from_bytes(keys[1]))
    finally:
        run.close()
