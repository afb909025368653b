"""``execd ledger tail``'s reading, in process (the command itself, as a process:
tests/process/test_tail_process.py)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

import execd.cli.tail
from execd.cli.tail import Filters
from tests.helpers import intent, lines, replay


async def test_records_are_read_in_chunks_that_split_lines_anywhere(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(lines(*(intent(n) for n in range(20))))
    ledger = await replay(tmp_path / "run", [source])
    whole = io.StringIO()
    execd.cli.tail.tail(ledger, whole, last=0, follow=False, as_json=True, filters=Filters())
    for chunk in (1, 7, 100, 4096):
        monkeypatch.setattr(execd.cli.tail, "READ_CHUNK", chunk)
        out = io.StringIO()
        execd.cli.tail.tail(ledger, out, last=0, follow=False, as_json=True, filters=Filters())
        assert out.getvalue() == whole.getvalue()
    assert whole.getvalue().encode() == b"".join(
        p.read_bytes() for p in sorted(ledger.glob("segment-*.jsonl")))
