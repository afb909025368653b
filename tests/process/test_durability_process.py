"""Storage faults in the real ``execd run`` process: a ledger that cannot be written exits 1
(the in-process half is tests/pipeline/test_durability.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.helpers import EXECD, ROOT, drop, intent, lines, write_config


def test_daemon_exits_1_when_the_ledger_cannot_be_written(tmp_path: Path) -> None:
    """The daemon never runs on without a ledger it can write: it exits 1 with ledger.io_failed."""
    config_path = write_config(tmp_path, level="info")
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    os.symlink("/dev/full", ledger / "segment-00000001.jsonl")  # every write: ENOSPC
    drop(tmp_path / "lakehouse" / "inbox", "a.jsonl", lines(intent(1)))
    result = subprocess.run([*EXECD, "run", "--config", str(config_path)], capture_output=True,
                            text=True, cwd=ROOT, timeout=60, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ledger.io_failed" in result.stdout and "No space left on device" in result.stdout
