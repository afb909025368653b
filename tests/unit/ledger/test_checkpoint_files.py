"""The snapshot files in checkpoints/: what is at a temp name is never followed or waited on,
a failed write leaves nothing behind, and pruning counts only what a record vouches for."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from execd.ledger import checkpoints

DATA = b"snapshot bytes " * 1000


def directory(ledger: Path) -> Path:
    (ledger / checkpoints.DIRECTORY).mkdir(parents=True, exist_ok=True)
    return ledger / checkpoints.DIRECTORY


def temp_of(ledger: Path, through: int) -> Path:
    return directory(ledger) / f".{checkpoints.name(through)}.tmp"


def test_a_fifo_at_the_temp_name_is_replaced_not_opened(tmp_path: Path) -> None:
    """Opening a FIFO for writing blocks until a reader comes: the write would never end."""
    os.mkfifo(temp_of(tmp_path, 7))
    checkpoints.write(tmp_path, checkpoints.name(7), DATA)
    written = directory(tmp_path) / checkpoints.name(7)
    assert stat.S_ISREG(written.lstat().st_mode) and written.read_bytes() == DATA
    assert not temp_of(tmp_path, 7).exists()


def test_a_symlink_at_the_temp_name_is_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"not execd's")
    ledger = tmp_path / "ledger"
    temp_of(ledger, 7).symlink_to(outside)
    checkpoints.write(ledger, checkpoints.name(7), DATA)
    assert outside.read_bytes() == b"not execd's"
    written = directory(ledger) / checkpoints.name(7)
    assert not written.is_symlink() and written.read_bytes() == DATA


@contextlib.contextmanager
def small_files() -> Iterator[None]:
    """Files this process writes may hold 4 KiB at most: a real write error (EFBIG), as a
    full disk gives ENOSPC, partway through a snapshot.

    Only around the write itself: the limit is the whole process's, and pytest's own
    output (a file, under CI) must not meet it.
    """
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, old_limit[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)


def test_a_failed_write_leaves_no_temp_file(tmp_path: Path) -> None:
    """A partial temp file would keep the space the ledger's next commit needs."""
    with pytest.raises(OSError, match="File too large"), small_files():
        checkpoints.write(tmp_path, checkpoints.name(7), DATA)
    assert list(directory(tmp_path).iterdir()) == []


def test_a_directory_at_the_snapshot_name_fails_the_write_cleanly(tmp_path: Path) -> None:
    (directory(tmp_path) / checkpoints.name(7)).mkdir()
    with pytest.raises(IsADirectoryError):
        checkpoints.write(tmp_path, checkpoints.name(7), DATA)
    assert [p.name for p in directory(tmp_path).iterdir()] == [checkpoints.name(7)]


def test_strays_are_removed_but_nothing_they_point_to(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"keep")
    ledger = tmp_path / "ledger"
    temp_of(ledger, 3).write_bytes(b"half")
    temp_of(ledger, 4).symlink_to(outside)
    temp_of(ledger, 5).mkdir()
    assert sorted(checkpoints.remove_strays(ledger)) == sorted(
        [temp_of(ledger, 3).name, temp_of(ledger, 4).name])
    assert outside.read_bytes() == b"keep" and temp_of(ledger, 5).is_dir()


def test_prune_passes_over_what_is_not_a_file(tmp_path: Path) -> None:
    """A directory with a snapshot's name is neither removed nor counted, and never stops
    the prune of the files around it."""
    for through in (10, 20, 30, 40):
        (directory(tmp_path) / checkpoints.name(through)).write_bytes(DATA)
    (directory(tmp_path) / checkpoints.name(35)).mkdir()
    (directory(tmp_path) / checkpoints.name(5)).mkdir()
    good = {checkpoints.name(x) for x in (10, 20, 30, 40)}
    removed, skipped = checkpoints.prune(tmp_path, 2, 40, good)
    assert removed == [checkpoints.name(20), checkpoints.name(10)]
    assert sorted(p.name for p in skipped) == [checkpoints.name(5), checkpoints.name(35)]
    assert {p.name for p in checkpoints.listed(tmp_path)} == {
        checkpoints.name(x) for x in (40, 35, 30, 5)}


def test_prune_counts_only_vouched_snapshots_as_kept(tmp_path: Path) -> None:
    """An unvouched file (another run's, or anything with the name) never takes the place of
    a snapshot a record vouches for; one past the newest record belongs to no chain."""
    for through in (10, 20, 30, 50):
        (directory(tmp_path) / checkpoints.name(through)).write_bytes(DATA)
    removed, _ = checkpoints.prune(tmp_path, 1, 30, {checkpoints.name(10)})
    assert sorted(removed) == [checkpoints.name(50)]
    removed, _ = checkpoints.prune(tmp_path, 1, 30, {checkpoints.name(30)})
    assert sorted(removed) == [checkpoints.name(10), checkpoints.name(20)]


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = directory(tmp_path) / checkpoints.name(7)
    with open(path, "wb") as handle:
        handle.truncate(1 << 40)  # sparse: a TiB that reading would have to allocate
    with pytest.raises(ValueError, match=r"larger than 4096 bytes \(1099511627776\)"):
        checkpoints.read(path, 4096)

