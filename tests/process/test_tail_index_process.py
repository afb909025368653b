"""``execd ledger tail --intent`` over the positions index a real daemon wrote, across two
runs of it (the second goes on with the first's index), as processes: the same bytes as
without the index, with ``-f`` too."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from execd.ledger import checkpoints
from execd.ledger.index import positions
from execd.ledger.index.positions import View
from execd.ledger.index.store import DIRECTORY
from tests.helpers import (
    EXECD,
    ROOT,
    count_outcomes,
    drop,
    intent,
    lines,
    start_daemon,
    stop,
    verify,
    wait_for,
    write_config,
)


def _ids(count: int) -> list[str]:
    return [str(uuid.UUID(int=(n * 0x9E3779B97F4A7C15F39CC0605CEDC835) % (1 << 128)))
            for n in range(1, count + 1)]


def _tail(ledger: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*EXECD, "ledger", "tail", "--ledger", str(ledger), *args],
                          capture_output=True, cwd=ROOT, check=False, timeout=60)


def _followed(ledger: Path, wanted: int, *args: str) -> bytes:
    """The first ``wanted`` bytes ``tail -f`` writes (it never ends by itself)."""
    child = subprocess.Popen([*EXECD, "ledger", "tail", "-f", "--ledger", str(ledger), *args],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    assert child.stdout is not None
    got = b""
    deadline = time.monotonic() + 60
    try:
        while len(got) < wanted and time.monotonic() < deadline:
            ready, _, _ = select.select([child.stdout], [], [], 1.0)
            if ready:
                got += os.read(child.stdout.fileno(), 1 << 16)
    finally:
        child.terminate()
        child.wait(timeout=30)
    return got


def test_tail_reads_the_index_two_runs_of_the_daemon_wrote(tmp_path: Path) -> None:
    config = write_config(tmp_path, level="info",
                          segment_bytes="4096\ncheckpoint_records = 5")
    inbox, ledger, log = tmp_path / "lakehouse" / "inbox", tmp_path / "ledger", tmp_path / "log"
    ids = _ids(60)
    for name, part in (("a.jsonl", ids[:30]), ("b.jsonl", ids[30:])):
        drop(inbox, name, lines(*(intent(n, intent_id=i) for n, i in enumerate(part))))
        process = start_daemon(config, log)
        expected = 30 if name == "a.jsonl" else 60
        wait_for(lambda n=expected: count_outcomes(ledger) >= n, timeout=60)
        assert stop(process) == 0, log.read_text()
    said = log.read_text()
    assert "index.positions_rebuilt" not in said and "index.positions_unwritten" not in said
    assert "index.positions_written" in said
    verify(ledger)
    view = View.open(ledger / DIRECTORY / positions.DIRECTORY)
    through = view.manifest.through_seq
    view.close()
    assert through == checkpoints.through_of(checkpoints.listed(ledger)[0].name)
    asked = [["--intent", ids[4]], ["--intent", ids[45]], ["--intent", ids[7][:1]],
             ["--intent", ids[50][:6], "-n", "1", "--json"]]
    indexed = [_tail(ledger, *args) for args in asked]
    followed = _followed(ledger, len(indexed[2].stdout), "-n", "0", *asked[2])
    aside = tmp_path / "aside"
    shutil.move(ledger / DIRECTORY / positions.DIRECTORY, aside)
    for args, found in zip(asked, indexed, strict=True):
        assert found.returncode == 0 and found.stderr == b"", found.stderr
        assert found.stdout, args
        whole = _tail(ledger, *args)
        assert b"positions index not used" in whole.stderr
        assert whole.stdout == found.stdout, args
    assert followed == _tail(ledger, "-n", "0", *asked[2]).stdout
