"""The inbox protocol against the real ``execd run``: one owner, and producers who break it."""

from __future__ import annotations

import subprocess
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
    wait_for,
    write_config,
)

pytestmark = pytest.mark.slow


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
