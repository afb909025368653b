"""``execd ledger verify`` and ``execd run`` as real processes on edited, cut and torn ledgers
(the in-process half is tests/unit/ledger/test_ledger.py)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import msgspec
import pytest

from execd.ledger.record import Record, record_decoder
from execd.ledger.scan import scan
from execd.ledger.segments import list_segments
from execd.model.errors import LedgerCorrupt
from tests.helpers import EXECD, ROOT
from tests.ledgers import build, rewrite


def verify(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXECD, "ledger", "verify", "--ledger", str(directory)],
                          capture_output=True, text=True, cwd=ROOT, check=False)


def test_verify_accepts_an_intact_chain(tmp_path: Path) -> None:
    build(tmp_path, 5)
    result = verify(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: 5 records, last seq 5" in result.stdout


def test_verify_detects_an_edited_record(tmp_path: Path) -> None:
    """An edited record never passes verify."""
    lines = build(tmp_path, 5)
    lines[2] = lines[2].replace(b'"n":2', b'"n":9')
    rewrite(tmp_path, lines)
    result = verify(tmp_path)
    assert result.returncode == 1
    assert "record seq 3 does not match its hash (edited)" in result.stdout


def test_verify_detects_an_edit_that_recomputes_the_hash(tmp_path: Path) -> None:
    """An edit whose hash was recomputed never passes verify: the next record's link breaks."""
    lines = build(tmp_path, 5)
    record = record_decoder.decode(lines[2])
    forged = Record(record.v, record.seq, record.time, record.kind, record.prev,
                    msgspec.Raw(b'{"n":99}'), "")
    digest = hashlib.sha256(forged.head_bytes()).hexdigest()
    lines[2] = forged.head_bytes()[:-1] + b',"hash":"' + digest.encode() + b'"}\n'
    rewrite(tmp_path, lines)
    result = verify(tmp_path)
    assert result.returncode == 1
    assert "record seq 4 does not link to the previous record" in result.stdout


def test_verify_detects_a_removed_record(tmp_path: Path) -> None:
    """A removed record never passes verify."""
    lines = build(tmp_path, 5)
    del lines[1]
    rewrite(tmp_path, lines)
    result = verify(tmp_path)
    assert result.returncode == 1
    assert "expected seq 2, found 3 (record 2 removed or reordered)" in result.stdout


def test_verify_detects_swapped_records(tmp_path: Path) -> None:
    """Reordered records never pass verify."""
    lines = build(tmp_path, 5)
    lines[1], lines[2] = lines[2], lines[1]
    rewrite(tmp_path, lines)
    result = verify(tmp_path)
    assert result.returncode == 1
    assert "expected seq 2, found 3" in result.stdout


def test_torn_last_line_is_repaired_on_recovery(tmp_path: Path) -> None:
    """A last line cut short by a crash never stops a start: recovery cuts exactly that line and the
    ledger verifies again.
    """
    lines = build(tmp_path, 4)
    segment = list_segments(tmp_path)[0]
    with open(segment, "ab") as handle:
        handle.write(lines[0][:37])  # a write cut short by a crash
    assert verify(tmp_path).returncode == 1
    result = scan(tmp_path, repair=True)
    assert result.torn is not None and result.torn.problem == "incomplete last line"
    assert result.records == 4 and result.next_seq == 5
    assert segment.read_bytes() == b"".join(lines)
    assert verify(tmp_path).returncode == 0


def test_daemon_refuses_a_corrupt_ledger_with_exit_3(tmp_path: Path) -> None:
    """The daemon never starts on an edited ledger: it exits 3 with ledger.refused."""
    from tests.helpers import write_config

    ledger = tmp_path / "ledger"
    lines = build(ledger, 6)
    lines[1] = lines[1].replace(b'"n":1', b'"n":7')
    rewrite(ledger, lines)
    config = write_config(tmp_path)
    result = subprocess.run([*EXECD, "run", "--config", str(config)], capture_output=True,
                            text=True, cwd=ROOT, timeout=60, check=False)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "ledger.refused" in result.stdout and "edited" in result.stdout


def test_an_edited_last_record_refuses_rather_than_being_cut(tmp_path: Path) -> None:
    """An edited last record is never taken for a torn tail and cut (its intent would run again):
    recovery refuses.
    """
    lines = build(tmp_path, 4)
    lines[3] = lines[3].replace(b'"n":3', b'"n":8')
    rewrite(tmp_path, lines)
    with pytest.raises(LedgerCorrupt, match="record seq 4 does not match its hash"):
        scan(tmp_path, repair=True)
    assert verify(tmp_path).returncode == 1
