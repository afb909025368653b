"""The index directory: reopening gives the index as it was, a crash at any step of
writing a run or compacting leaves the old index or the new one (plus orphans the next
open removes), and a missing or damaged manifest or run is reported, never trusted."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from execd.ledger.index import filter, runs, store
from execd.ledger.index.filter import BlockedBloom
from execd.ledger.index.runs import RunInfo
from execd.ledger.index.store import MANIFEST, IndexStore, plan_compaction, run_name, tier
from execd.model.errors import IndexDamaged


def _keys(start: int, count: int, step: int = 3) -> list[bytes]:
    return [(start + n * step).to_bytes(16) for n in range(count)]


def _found(index: IndexStore, keys: list[bytes]) -> list[bool]:
    opened = index.open_runs()
    try:
        return [any(key in run for run in opened) for key in keys]
    finally:
        for run in opened:
            run.close()


def _files(directory: Path) -> list[str]:
    return sorted(entry.name for entry in directory.iterdir())


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "ledger" / store.DIRECTORY


def test_reopening_gives_the_index_as_it_was(directory: Path) -> None:
    index = IndexStore.create(directory)
    index.write_run(_keys(0, 500), 10).close()
    index.write_run(_keys(1, 700), 25).close()
    probes = _keys(0, 2200, step=1)
    before = _found(index, probes)
    assert before.count(True) == 1200
    index.close()
    again = IndexStore.open(directory)
    assert again.manifest == index.manifest
    assert again.through_seq == 25
    assert _found(again, probes) == before
    again.close()


def test_no_index_and_a_damaged_manifest_are_reported(directory: Path) -> None:
    with pytest.raises(IndexDamaged, match="no index"):
        IndexStore.open(directory)
    IndexStore.create(directory).write_run(_keys(0, 10), 3).close()
    path = directory / MANIFEST
    good = path.read_bytes()
    edited = good.replace(b'"through_seq":3', b'"through_seq":4', 1)
    assert edited != good
    for damaged, reason in ((edited, "SHA-256"), (good[:-20], "not a manifest"),
                            (b"", "not a manifest"), (b"[]", "not a manifest")):
        path.write_bytes(damaged)
        with pytest.raises(IndexDamaged, match=reason):
            IndexStore.open(directory)
    path.write_bytes(good)
    IndexStore.open(directory).close()


def test_a_missing_or_damaged_run_is_reported(directory: Path) -> None:
    index = IndexStore.create(directory)
    run = index.write_run(_keys(0, 300), 3)
    run.close()
    index.close()
    data = run.path.read_bytes()
    run.path.write_bytes(data[:-1] + bytes([data[-1] ^ 0x80]))
    with pytest.raises(IndexDamaged, match="SHA-256"):
        IndexStore.open(directory)
    run.path.unlink()
    with pytest.raises(IndexDamaged, match=run.path.name):
        IndexStore.open(directory)
    # Rebuilding starts from nothing: every old file goes.
    IndexStore.create(directory).close()
    assert IndexStore.open(directory).manifest.runs == ()


def test_a_crash_between_a_run_and_its_manifest_leaves_the_old_index(directory: Path) -> None:
    index = IndexStore.create(directory)
    index.write_run(_keys(0, 100), 5).close()
    before = index.manifest
    # What write_run has done when it is killed just before the manifest: the run is
    # durable under the next number, and nothing names it.
    runs.write(directory / run_name(before.next_number), _keys(1000, 50), 9).close()
    (directory / f".{MANIFEST}.tmp").write_bytes(b'{"half":')
    index.close()
    again = IndexStore.open(directory)
    assert again.manifest == before
    assert _files(directory) == [MANIFEST, run_name(1)]
    assert _found(again, _keys(1000, 50)) == [False] * 50
    # The number is taken again, and the index goes on as if nothing happened.
    again.write_run(_keys(1000, 50), 9).close()
    assert _found(again, _keys(1000, 50)) == [True] * 50
    assert _files(directory) == [MANIFEST, run_name(1), run_name(2)]


def test_a_run_behind_the_index_is_refused(directory: Path) -> None:
    index = IndexStore.create(directory)
    index.write_run(_keys(0, 3), 10).close()
    for seq in (9, 10):
        with pytest.raises(ValueError, match="not past"):
            index.write_run(_keys(100, 3), seq)


def test_tiers_and_the_compaction_plan() -> None:
    assert [tier(n, 4, 100) for n in (0, 100, 101, 400, 401, 1600, 1601)] == [0, 0, 1, 1, 2, 2, 3]

    def info(name: str, count: int) -> RunInfo:
        return RunInfo(name, count, 1, 0, "")

    small = [info(f"s{n}", 50) for n in range(3)]
    assert plan_compaction(small, 4, 100) == ()
    mid = [info(f"m{n}", 300) for n in range(4)]
    assert plan_compaction([*small, *mid], 4, 100) == tuple(mid)
    five = [*small, info("s3", 90), info("s4", 1)]
    assert plan_compaction([*five, *mid], 4, 100) == tuple(five[:4])  # lowest tier first


def _four_runs(directory: Path) -> tuple[IndexStore, list[bytes]]:
    index = IndexStore.create(directory)
    every: list[bytes] = []
    for n in range(4):
        keys = _keys(n, 200, step=4)
        index.write_run(keys, 10 * (n + 1)).close()
        every += keys
    return index, every


def test_compaction_merges_four_runs_into_one_with_the_same_ids(directory: Path) -> None:
    index, every = _four_runs(directory)
    probes = _keys(0, 1000, step=1)
    before = _found(index, probes)
    done = index.compact(4, 100)
    assert done is not None
    assert done.removed == tuple(run_name(n) for n in range(1, 5))
    assert list(done.added.records()) == sorted(every)
    assert done.added.info.through_seq == 40
    done.added.close()
    assert [info.name for info in index.manifest.runs] == [run_name(5)]
    assert _files(directory) == [MANIFEST, run_name(5)]
    assert _found(index, probes) == before
    assert index.compact(4, 100) is None
    index.close()
    assert _found(IndexStore.open(directory), probes) == before


def test_a_crash_in_the_middle_of_a_compaction_leaves_a_right_index(directory: Path) -> None:
    index, _ = _four_runs(directory)
    probes = _keys(0, 1000, step=1)
    before, manifest = _found(index, probes), index.manifest
    merged = index.merge_due(4, 100)  # killed here: the merged run is written, not live
    assert merged is not None
    merged.run.close()
    index.close()
    again = IndexStore.open(directory)
    assert again.manifest == manifest
    assert merged.run.path.name not in _files(directory)
    assert _found(again, probes) == before
    # Killed after the new manifest, before the inputs were deleted: they are orphans.
    aside = directory.parent / "aside"
    shutil.copytree(directory, aside)
    done = again.compact(4, 100)
    assert done is not None
    done.added.close()
    again.close()
    for name in done.removed:
        shutil.copy(aside / name, directory / name)
    last = IndexStore.open(directory)
    assert _files(directory) == [MANIFEST, done.added.path.name]
    assert _found(last, probes) == before


def test_a_saved_filter_comes_back_and_a_damaged_one_is_reported(directory: Path) -> None:
    index = IndexStore.create(directory)
    assert index.load_filter() is None
    bloom = BlockedBloom(100)
    bloom.update(range(0, 1 << 120, 1 << 113))
    index.save_filter(filter.pack(bloom, 7))
    found = index.load_filter()
    assert found is not None
    again, through = found
    assert through == 7 and again.to_bytes() == bloom.to_bytes() and again.count == 128
    path = directory / store.FILTER
    data = bytearray(path.read_bytes())
    for offset in (0, 20, len(data) - 1):
        data[offset] ^= 0x10
        path.write_bytes(bytes(data))
        with pytest.raises(IndexDamaged, match="filter"):
            index.load_filter()
        data[offset] ^= 0x10
    path.write_bytes(bytes(data[:-8]))
    with pytest.raises(IndexDamaged, match="filter"):
        index.load_filter()
    # A rebuild drops it: its seq would vouch for runs it never saw.
    IndexStore.create(directory)
    assert not path.exists()


def test_a_filter_the_manifest_does_not_name_is_never_trusted(tmp_path: Path) -> None:
    """A filter.bin from another index (whole, with a valid digest) holds other ids: one
    the manifest does not name by its SHA-256 is damaged, so one is built from the runs."""
    mine, theirs = IndexStore.create(tmp_path / "mine"), IndexStore.create(tmp_path / "theirs")
    mine.write_run(_keys(0, 10), 3, through_hash="a").close()
    theirs.write_run(_keys(1, 10), 3, through_hash="b").close()
    their_bloom = BlockedBloom(100)
    their_bloom.update(int.from_bytes(key) for key in _keys(1, 10))
    theirs.save_filter(filter.pack(their_bloom, 3))
    assert theirs.load_filter() is not None
    shutil.copyfile(tmp_path / "theirs" / store.FILTER, tmp_path / "mine" / store.FILTER)
    for index in (mine, IndexStore.open(tmp_path / "mine")):
        with pytest.raises(IndexDamaged, match="not the filter the manifest names"):
            index.load_filter()
    # Saved after the manifest named another: the older file is not vouched for either.
    mine.save_filter(filter.pack(BlockedBloom(100), 3))
    (tmp_path / "mine" / store.FILTER).write_bytes(
        (tmp_path / "theirs" / store.FILTER).read_bytes())
    with pytest.raises(IndexDamaged, match="not the filter the manifest names"):
        mine.load_filter()
    assert IndexStore.open(tmp_path / "mine").manifest.through_hash == "a"


def test_a_huge_saved_filter_is_damaged_before_it_is_read(directory: Path) -> None:
    """A sparse gigabyte at filter.bin is judged from its size, never read into memory;
    a directory there, or at the manifest's name, is swept away by a rebuild."""
    index = IndexStore.create(directory)
    index.write_run(_keys(0, 10), 5)
    with open(directory / store.FILTER, "wb") as handle:
        handle.truncate(1 << 30)
    with pytest.raises(IndexDamaged, match=r"filter\.bin: larger than \d+ bytes \(1073741824\)"):
        index.load_filter()
    index.close()
    (directory / store.FILTER).unlink()
    (directory / store.FILTER / "inside").mkdir(parents=True)
    reopened = IndexStore.open(directory)
    with pytest.raises(IndexDamaged, match=r"filter\.bin: a directory, not a regular file"):
        reopened.load_filter()
    reopened.close()
    (directory / MANIFEST).unlink()
    (directory / MANIFEST).mkdir()
    IndexStore.create(directory).close()
    assert _files(directory) == [MANIFEST]
    assert IndexStore.open(directory).through_seq == 0
