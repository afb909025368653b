"""The inbox protocol against the real ``execd run``: one owner, and producers who break it."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import (
    EXECD,
    ROOT,
    control_socket,
    count_outcomes,
    ctl,
    drop,
    intent,
    lines,
    outcomes,
    start_daemon,
    started,
    stop,
    wait_for,
    write_config,
)


def test_a_second_daemon_on_the_same_lakehouse_stops_untouched(tmp_path: Path) -> None:
    """Its own ledger and socket, the first one's lakehouse: it must not adopt work/."""
    path = write_config(tmp_path)
    lakehouse = tmp_path / "lakehouse"
    process = start_daemon(path, tmp_path / "daemon.log")
    try:
        wait_for(lambda: ctl(path, "status").returncode == 0)
        # A file the first daemon has claimed and not finished looks like a leftover
        # to anyone else: park one in work/ as a stop would leave it.
        (lakehouse / "work" / "parked.jsonl").write_bytes(lines(intent(7)))
        second = tmp_path / "second"
        other = write_config(second, lakehouse=lakehouse)
        result = subprocess.run([*EXECD, "run", "--config", str(other)], capture_output=True,
                                text=True, cwd=ROOT, timeout=60)
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"another process holds the lakehouse in {lakehouse}" in result.stdout
        assert not list((second / "ledger").glob("segment-*"))
        assert not control_socket(second).exists()
        assert (lakehouse / "work" / "parked.jsonl").exists()
        # The owner goes on as before.
        drop(lakehouse / "inbox", "a.jsonl", lines(intent(1)))
        wait_for(lambda: count_outcomes(tmp_path / "ledger") == 1)
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0
    assert [o["status"] for o in outcomes(tmp_path / "ledger")] == ["FILLED"]




def file_outcomes(ledger: Path) -> list[tuple[str, str, str]]:
    """(file, reason, detail) of every whole-file outcome (line 0)."""
    return [(o["source"][0], o["reason"], o["detail"]) for o in outcomes(ledger)
            if o["source"][1] == 0 and o["status"] == "QUARANTINED"]


def test_a_file_written_in_place_is_read_only_once_it_is_stable(tmp_path: Path) -> None:
    """A producer writes straight into the inbox, in pieces: nothing is read half-written."""
    _, process = started(tmp_path, settle=300)
    ledger = tmp_path / "ledger"
    try:
        target = tmp_path / "lakehouse" / "inbox" / "slow.jsonl"
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as handle:
            for n in range(1, 6):
                handle.write(lines(intent(n)))
                handle.flush()
                time.sleep(0.1)
        wait_for(lambda: count_outcomes(ledger) == 5)
    finally:
        assert stop(process) == 0
    assert [o["status"] for o in outcomes(ledger)] == ["FILLED"] * 5
    assert (tmp_path / "lakehouse" / "archive" / "slow.jsonl").exists()


def test_bad_names_and_things_that_are_not_files_are_refused_and_the_daemon_goes_on(
        tmp_path: Path) -> None:
    path, process = started(tmp_path)
    ledger = tmp_path / "ledger"
    inbox = tmp_path / "lakehouse" / "inbox"
    try:
        inbox.mkdir(parents=True, exist_ok=True)
        os_inbox = bytes(inbox)
        import os

        # Not UTF-8; 245 characters twice (a repeat could not be claimed with a suffix);
        # a FIFO; a directory; a symlink.
        with open(os.path.join(os_inbox, b"bad-\xff\xfe.jsonl"), "wb") as handle:
            handle.write(lines(intent(1)))
        long = "x" * 239 + ".jsonl"
        drop(inbox, long, lines(intent(2)))
        wait_for(lambda: not (inbox / long).exists())
        drop(inbox, long, lines(intent(3)))
        os.mkfifo(inbox / "pipe.jsonl")
        (inbox / "dir.jsonl").mkdir()
        (tmp_path / "elsewhere.jsonl").write_bytes(lines(intent(4)))
        (inbox / "link.jsonl").symlink_to(tmp_path / "elsewhere.jsonl")
        drop(inbox, "z-good.jsonl", lines(intent(5)))
        wait_for(lambda: count_outcomes(ledger) == 7)
        assert ctl(path, "status").returncode == 0
    finally:
        assert stop(process) == 0
    refused = {(reason, detail.removesuffix("; not read"))
               for _, reason, detail in file_outcomes(ledger)}
    assert refused == {
        ("INPUT_FILE_NAME_INVALID", "the name is not UTF-8 (bytes 6261642dfffe2e6a736f6e6c)"),
        ("INPUT_FILE_NAME_INVALID",
         f"the name is 245 bytes long; input file names may be at most 240 bytes "
         f"({long[:60]!r}…)"),
        ("INPUT_FILE_UNREADABLE", "not a regular file (a FIFO)"),
        ("INPUT_FILE_UNREADABLE", "not a regular file (a directory)"),
        ("INPUT_FILE_UNREADABLE", "not a regular file (a symlink)"),
    } and len(file_outcomes(ledger)) == 6  # the long name, twice
    assert [o["intent_id"][-1] for o in outcomes(ledger) if o["status"] == "FILLED"] == ["5"]
    rejected = sorted(p.name for p in (tmp_path / "lakehouse" / "rejected").iterdir())
    assert "bad-\\xff\\xfe.jsonl.refused-1" in rejected and "pipe.jsonl.refused-1" in rejected
    assert not any((tmp_path / "lakehouse" / "inbox").iterdir())


def test_changes_after_the_claim_are_recorded(tmp_path: Path) -> None:
    """Appended after the rename; truncated and rewritten while read; deleted from work/.

    (Appended *before* the file settles is no change at all: it is claimed only once
    stable. A file already moved to archive/ is no longer watched.)
    """
    import os
    import signal

    # Chunks of 4 KiB and one intent per batch: a 400-line file takes many chunks.
    path, process = started(tmp_path, chunk=4096, items=1, q=1)
    ledger = tmp_path / "ledger"
    inbox = tmp_path / "lakehouse" / "inbox"
    work = tmp_path / "lakehouse" / "work"
    try:
        # 1. Renamed in, then appended to through the producer's still-open handle
        # while the reader is half-way through it.
        inbox.mkdir(parents=True, exist_ok=True)
        temp = inbox / ".a.tmp"
        with open(temp, "wb") as handle:
            handle.write(lines(*(intent(n) for n in range(1, 401))))
            handle.flush()
            os.replace(temp, inbox / "a.jsonl")
            wait_for(lambda: count_outcomes(ledger) >= 20)
            assert count_outcomes(ledger) < 400, "read to its end already: make it longer"
            handle.write(lines(intent(401)))
        wait_for(lambda: any(f == "a.jsonl" for f, _, _ in file_outcomes(ledger)))
    finally:
        assert stop(process) == 0
    changes = file_outcomes(ledger)
    assert [(f, r) for f, r, _ in changes] == [("a.jsonl", "INPUT_FILE_CHANGED")]
    assert changes[0][2].startswith("appended to after it was claimed")
    assert "every line was read" in changes[0][2]
    assert sum(1 for o in outcomes(ledger) if o["status"] == "FILLED") == 401
    assert (tmp_path / "lakehouse" / "rejected" / "a.jsonl").exists()

    # 2. Truncated and rewritten while it is read (in place, through work/).
    path, process = started(tmp_path, chunk=4096, items=1, q=1)
    try:
        drop(inbox, "c.jsonl", lines(*(intent(500 + n) for n in range(400))))
        wait_for(lambda: count_outcomes(ledger) >= 421)
        with open(work / "c.jsonl", "r+b") as handle:
            handle.truncate(0)
            handle.write(lines(intent(999)))
        wait_for(lambda: any(f == "c.jsonl" for f, _, _ in file_outcomes(ledger)))
    finally:
        assert stop(process) == 0
    rewritten = [d for f, r, d in file_outcomes(ledger) if f == "c.jsonl"]
    assert len(rewritten) == 1 and rewritten[0].startswith(("truncated while", "rewritten while"))
    assert (tmp_path / "lakehouse" / "rejected" / "c.jsonl").exists()

    # 3. Deleted from work/ while the daemon was down, half read.
    base = count_outcomes(ledger)
    drop(inbox, "b.jsonl", lines(*(intent(1000 + n) for n in range(400))))
    process = start_daemon(path, tmp_path / "daemon.log")
    wait_for(lambda: count_outcomes(ledger) >= base + 20)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert count_outcomes(ledger) < base + 400, "read to its end before the kill"
    (work / "b.jsonl").unlink()
    _, process = started(tmp_path, chunk=4096, items=1, q=1)
    try:
        wait_for(lambda: any(f == "b.jsonl" for f, _, _ in file_outcomes(ledger)))
    finally:
        assert stop(process) == 0
    gone = [d for f, r, d in file_outcomes(ledger) if f == "b.jsonl"]
    assert len(gone) == 1 and gone[0].startswith("deleted from work/ after it was claimed")


def test_a_file_the_daemon_may_not_read_is_refused_and_the_daemon_goes_on(
        tmp_path: Path) -> None:
    """Before: PermissionError out of the reader, exit 1, and the same again on every restart.

    The tests run as root, which reads everything: the daemon runs without the
    capabilities that let root ignore file permissions (setpriv), as a service user would.
    """
    import os
    import shutil

    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed")
    path = write_config(tmp_path)
    ledger = tmp_path / "ledger"
    inbox = tmp_path / "lakehouse" / "inbox"
    log = open(tmp_path / "daemon.log", "ab")  # noqa: SIM115 - owned by the process
    process = subprocess.Popen(
        [setpriv, "--bounding-set=-dac_override,-dac_read_search", *EXECD, "run", "--config",
         str(path)], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_for(lambda: ctl(path, "status").returncode == 0)
        secret = inbox / ".secret.tmp"
        secret.write_bytes(lines(intent(1)))
        secret.chmod(0)
        os.replace(secret, inbox / "a-secret.jsonl")
        drop(inbox, "b-open.jsonl", lines(intent(2)))
        wait_for(lambda: count_outcomes(ledger) == 2)
        assert process.poll() is None
    finally:
        assert stop(process) == 0
    assert file_outcomes(ledger) == [
        ("a-secret.jsonl", "INPUT_FILE_UNREADABLE", "Permission denied; not read")]
    assert outcomes(ledger)[1]["status"] == "FILLED"
    assert (tmp_path / "lakehouse" / "rejected" / "a-secret.jsonl").exists()
