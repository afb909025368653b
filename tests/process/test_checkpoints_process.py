"""Checkpoints under a real daemon whose storage misbehaves: it keeps trading."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from execd.ledger import checkpoints
from tests.helpers import (
    EXECD,
    ROOT,
    count_outcomes,
    drop,
    intent,
    lines,
    records,
    stop,
    verify,
    wait_for,
    write_config,
)

# Root lists a mode-000 directory: the daemon runs without the capabilities that allow it,
# as an unprivileged daemon user would (setpriv execs it, so the pid is the daemon's).
_NO_DAC = "-dac_override,-dac_read_search"
UNPRIVILEGED = (["setpriv", f"--bounding-set={_NO_DAC}", f"--inh-caps={_NO_DAC}"]
                if os.geteuid() == 0 else [])


def start_unprivileged(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """``execd run`` with no power to read what its permissions forbid."""
    handle = open(log, "ab")  # noqa: SIM115 - owned by the process
    return subprocess.Popen([*UNPRIVILEGED, *EXECD, "run", "--config", str(config)],
                            stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)


@pytest.mark.skipif(bool(UNPRIVILEGED) and shutil.which("setpriv") is None,
                    reason="running as root, and no setpriv to drop the capabilities")
def test_an_unlistable_checkpoints_directory_is_ignored_and_trading_goes_on(
        tmp_path: Path) -> None:
    """checkpoints/ that the daemon cannot list (mode 000): start-up passes it over with the
    reason and folds the whole ledger, every later checkpoint is recorded as skipped, and
    every intent still gets its outcome."""
    config = write_config(tmp_path, level="info",
                          segment_bytes=f"{1 << 20}\ncheckpoint_records = 5")
    inbox, ledger, log = tmp_path / "lakehouse" / "inbox", tmp_path / "ledger", tmp_path / "log"
    drop(inbox, "a.jsonl", lines(*(intent(n) for n in range(12))))
    process = start_unprivileged(config, log)
    wait_for(lambda: count_outcomes(ledger) >= 12, timeout=60)
    assert stop(process) == 0
    assert checkpoints.listed(ledger)
    (ledger / checkpoints.DIRECTORY).chmod(0)
    try:
        drop(inbox, "b.jsonl", lines(*(intent(n) for n in range(100, 112))))
        process = start_unprivileged(config, log)
        wait_for(lambda: count_outcomes(ledger) >= 24 or process.poll() is not None,
                 timeout=60)
        assert stop(process) == 0, log.read_text()
    finally:
        (ledger / checkpoints.DIRECTORY).chmod(0o750)
    # The first start had no snapshot to look at: every line is the second start's (its
    # stray temp files and its listing, both refused).
    ignored = [line for line in log.read_text().splitlines() if "checkpoint.ignored" in line]
    assert ignored and all("Permission denied" in line and "checkpoints/" in line
                           for line in ignored), ignored
    skipped = [r for r in records(ledger) if r["kind"] == "checkpoint"
               and r["body"]["snapshot"] is None]
    assert skipped and all("Permission denied" in r["body"]["skipped"] for r in skipped)
    assert count_outcomes(ledger) == 24
    verify(ledger)
