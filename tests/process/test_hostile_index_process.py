"""A real daemon on a ledger whose derived files (the id index, ``archived.json``) are
hostile or damaged: it rebuilds the index, or refuses with one clear line (exit 3),
or (a damaged block met while running) stops so that the restart rebuilds it, and
never hangs on a FIFO, reads a huge file whole, or stops with a traceback."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from execd.ledger import retention
from execd.ledger.index.store import DIRECTORY, FILTER, MANIFEST
from execd.model import reasons
from tests.helpers import (
    EXECD,
    ROOT,
    count_outcomes,
    damage_every_block,
    drop,
    intent,
    lines,
    outcomes,
    start_daemon,
    stop,
    wait_for,
    write_config,
)

OPTIONS = "4096\ncheckpoint_records = 10\ncheckpoints_kept = 3"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stopped daemon's directory: 60 outcomes, checkpoints, an index with runs."""
    directory = tmp_path_factory.mktemp("base")
    config = write_config(directory, segment_bytes=OPTIONS, level="info")
    drop(directory / "lakehouse" / "inbox", "a.jsonl",
         lines({"kind": "tick", "time": 5}, *(intent(n) for n in range(60))))
    process = start_daemon(config, directory / "log")
    try:
        wait_for(lambda: count_outcomes(directory / "ledger") >= 60, timeout=60)
    finally:
        assert stop(process) == 0
    assert list((directory / "ledger" / DIRECTORY).glob("run-*.ids"))
    return directory


def copy(base: Path, to: Path) -> tuple[Path, Path]:
    """A copy of ``base`` with its own config; (config, ledger)."""
    shutil.copytree(base, to, symlinks=True)
    (to / "log").unlink()
    return write_config(to, segment_bytes=OPTIONS, level="info"), to / "ledger"


def fifo_at(name: str) -> Callable[[Path], None]:
    def damage(ledger: Path) -> None:
        (ledger / DIRECTORY / name).unlink(missing_ok=True)
        os.mkfifo(ledger / DIRECTORY / name)
    return damage


def fifo_run(ledger: Path) -> None:
    run = sorted((ledger / DIRECTORY).glob("run-*.ids"))[0]
    run.unlink()
    os.mkfifo(run)


def symlink_to_fifo(ledger: Path) -> None:
    os.mkfifo(ledger.parent / "elsewhere")
    (ledger / DIRECTORY / MANIFEST).unlink()
    (ledger / DIRECTORY / MANIFEST).symlink_to(ledger.parent / "elsewhere")


def sparse(name: str) -> Callable[[Path], None]:
    def damage(ledger: Path) -> None:
        with open(ledger / DIRECTORY / name, "wb") as handle:
            handle.truncate(1 << 30)  # a gigabyte that costs no disk
    return damage


def manifest_dir(ledger: Path) -> None:
    (ledger / DIRECTORY / MANIFEST).unlink()
    (ledger / DIRECTORY / MANIFEST / "inside").mkdir(parents=True)


@pytest.mark.parametrize(("damage", "reason"), [
    (fifo_at(MANIFEST), "MANIFEST.json: a FIFO, not a regular file"),
    (fifo_run, "a FIFO, not a regular file"),
    (symlink_to_fifo, "MANIFEST.json: a symlink, not a regular file"),
    (sparse(MANIFEST), "MANIFEST.json: larger than 1048576 bytes (1073741824)"),
    (manifest_dir, "MANIFEST.json: a directory, not a regular file"),
    (fifo_at(FILTER), None),  # a damaged saved filter is built from the runs: no rebuild
    (sparse(FILTER), None),
], ids=["manifest-fifo", "run-fifo", "manifest-symlink-fifo", "manifest-1G", "manifest-dir",
        "filter-fifo", "filter-1G"])
def test_a_hostile_index_file_is_rebuilt_not_waited_on(
        base: Path, tmp_path: Path, damage: Callable[[Path], None], reason: str | None) -> None:
    """Start-up gets past each (a FIFO would block its open forever, and SIGTERM with
    it), logs the index rebuilt with the reason, keeps refusing the ids it had, and
    stops on SIGTERM."""
    config, ledger = copy(base, tmp_path / "d")
    damage(ledger)
    log = tmp_path / "d" / "log"
    process = start_daemon(config, log)
    try:
        drop(tmp_path / "d" / "lakehouse" / "inbox", "b.jsonl",
             lines(*(intent(n) for n in range(55, 65))))
        wait_for(lambda: count_outcomes(ledger) >= 70 or process.poll() is not None,
                 timeout=30)
    finally:
        if process.poll() is None:
            assert stop(process, timeout=20) == 0
        process.kill()
        process.wait()
    text = log.read_text()
    assert process.returncode == 0 and "Traceback" not in text, text[-2000:]
    rebuilt = [line for line in text.splitlines() if "index.rebuilt" in line]
    if reason is None:
        assert not rebuilt, rebuilt
    else:
        assert len(rebuilt) == 1 and reason in rebuilt[0], rebuilt
    last = outcomes(ledger)[-10:]
    assert [o.get("reason") == reasons.INTENT_DUPLICATE for o in last] == [True] * 5 + [False] * 5


def exits(config: Path, log: Path, status: int, timeout: float = 30,
          **popen: object) -> str:
    """Start ``execd run`` on ``config``; the log once it exits ``status`` without a
    traceback (at most ``timeout`` seconds)."""
    with open(log, "ab") as handle:
        process = subprocess.Popen([*EXECD, "run", "--config", str(config)], stdout=handle,
                                   stderr=subprocess.STDOUT, cwd=ROOT, **popen)  # type: ignore[call-overload]
    try:
        code = process.wait(timeout=timeout)
    finally:
        process.kill()
        process.wait()
    text = log.read_text()
    assert code == status and "Traceback" not in text, text[-3000:]
    return text


def refused(config: Path, log: Path, **popen: object) -> str:
    """Start ``execd run`` on ``config``; the log once it exits 3 (at most 30 s)."""
    return exits(config, log, 3, **popen)


def index_a_file(ledger: Path) -> None:
    shutil.rmtree(ledger / DIRECTORY)
    (ledger / DIRECTORY).write_bytes(b"x")


def index_dangling(ledger: Path) -> None:
    shutil.rmtree(ledger / DIRECTORY)
    (ledger / DIRECTORY).symlink_to(ledger.parent / "not-mounted")


def archived_fifo(ledger: Path) -> None:
    os.mkfifo(ledger / retention.ARCHIVED)


@pytest.mark.parametrize(("damage", "said"), [
    (index_a_file, "index: not a directory; execd keeps the ledger's id index"),
    (index_dangling, "index: a symlink to nothing; execd keeps the ledger's id index"),
    (archived_fifo, "archived.json: not an archive manifest (a FIFO, not a regular file)"),
], ids=["index-file", "index-dangling", "archived-fifo"])
def test_what_start_up_cannot_rebuild_is_refused_in_one_line(
        base: Path, tmp_path: Path, damage: Callable[[Path], None], said: str) -> None:
    """An ``index`` that is no directory may be something the operator put there (a link
    to a disk not mounted yet): never removed. ``archived.json`` says which records left
    the ledger: never rebuilt. Both stop start-up, exit 3, one line naming the path."""
    config, ledger = copy(base, tmp_path / "d")
    damage(ledger)
    text = refused(config, tmp_path / "d" / "log")
    [line] = [line for line in text.splitlines() if "ledger.refused" in line]
    assert str(ledger) in line and said in line, line


def test_an_index_rebuild_that_cannot_be_written_names_the_path_and_errno(
        tmp_path: Path) -> None:
    """The rebuild's run is larger than the file-size limit (EFBIG, as a full disk gives
    ENOSPC): exit 3, naming the index directory and the errno, no traceback."""
    directory = tmp_path / "d"
    config = write_config(directory, level="info",
                          segment_bytes="4096\ncheckpoint_records = 500\ncheckpoints_kept = 2")
    drop(directory / "lakehouse" / "inbox", "a.jsonl",
         lines({"kind": "tick", "time": 5}, *(intent(n) for n in range(1200))))
    process = start_daemon(config, directory / "log")
    try:
        wait_for(lambda: count_outcomes(directory / "ledger") >= 1200, timeout=120)
    finally:
        assert stop(process) == 0
    shutil.rmtree(directory / "ledger" / DIRECTORY)

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (12000, 12000))

    text = refused(config, directory / "log2", preexec_fn=small_files)
    [line] = [line for line in text.splitlines() if "ledger.refused" in line]
    assert f"{directory / 'ledger' / DIRECTORY}: the id index cannot be written" in line
    assert "EFBIG" in line, line


def test_verify_reports_a_fifo_archived_json_instead_of_waiting_on_it(
        base: Path, tmp_path: Path) -> None:
    """``ledger verify`` reads archived.json as start-up does: FAILED naming it, exit 1."""
    _, ledger = copy(base, tmp_path / "d")
    archived_fifo(ledger)
    result = subprocess.run([*EXECD, "ledger", "verify", "--ledger", str(ledger)],
                            capture_output=True, text=True, cwd=ROOT, timeout=30, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith(f"FAILED: {ledger / retention.ARCHIVED}: not an archive "
                                    "manifest (a FIFO, not a regular file)"), result.stdout


def test_a_damaged_block_met_while_running_stops_the_daemon_and_the_restart_rebuilds(
        base: Path, tmp_path: Path) -> None:
    """Runs open by their meta alone, so damage inside a block of records is met only
    when a duplicate's lookup reads it. The daemon cannot answer that intent: it stops
    (exit 1, restarted by systemd) after removing the index's manifest, records nothing
    for the intent, and the next start rebuilds the index and decides every intent once:
    the old ids refused, the new ones filled."""
    config, ledger = copy(base, tmp_path / "d")
    damage_every_block(ledger)
    log = tmp_path / "d" / "log"
    before = count_outcomes(ledger)
    drop(tmp_path / "d" / "lakehouse" / "inbox", "b.jsonl",
         lines(*(intent(n) for n in range(55, 65))))
    text = exits(config, log, 1, timeout=60)
    assert "index.damaged" in text and "index.condemned" in text, text[-3000:]
    assert not (ledger / DIRECTORY / MANIFEST).exists()
    assert count_outcomes(ledger) == before  # the intent met the damage: nothing recorded

    process = start_daemon(config, log)
    try:
        wait_for(lambda: count_outcomes(ledger) >= before + 10 or process.poll() is not None,
                 timeout=60)
    finally:
        if process.poll() is None:
            assert stop(process, timeout=20) == 0
        process.kill()
        process.wait()
    text = log.read_text()
    assert process.returncode == 0, text[-3000:]
    rebuilt = [line for line in text.splitlines() if "index.rebuilt" in line]
    assert len(rebuilt) == 1 and "no index" in rebuilt[0], rebuilt
    last = outcomes(ledger)[before:]
    assert [o["intent_id"] for o in last] == [intent(n)["intent_id"] for n in range(55, 65)]
    assert [o.get("reason") == reasons.INTENT_DUPLICATE for o in last] == [True] * 5 + [False] * 5
