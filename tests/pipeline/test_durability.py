"""Storage faults: an fsync error stops the daemon, is never retried, and loses nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from execd.app.daemon import Daemon
from execd.cli.serve import root_cause
from execd.config import schema as config
from execd.ledger.scan import scan
from execd.ledger.segments import SegmentStore
from execd.model.errors import LedgerIOError
from tests.helpers import intent, lines, write_config


class FailingFsync(SegmentStore):
    """A real segment store whose fsync fails (EIO) on the Nth durable write."""

    def __init__(self, directory: Path, segment_bytes: int, fail_on: int) -> None:
        super().__init__(directory, segment_bytes)
        self.fail_on = fail_on
        self.calls = 0

    def write_durably(self, data: bytes) -> None:
        self.calls += 1
        if self.calls == self.fail_on:
            real = os.fsync

            def broken(fd: int) -> None:
                raise OSError(5, "Input/output error")

            os.fsync = broken  # type: ignore[assignment]
            try:
                super().write_durably(data)
            finally:
                os.fsync = real
        else:
            super().write_durably(data)


async def test_fsync_error_stops_the_pipeline_without_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed fsync is never retried and nothing is written after it, and what was written before
    it never reads as corruption.
    """
    source = tmp_path / "in.jsonl"
    source.write_bytes(lines(*(intent(n) for n in range(5000))))
    loaded = config.load(write_config(tmp_path, commit_records=500, items=100, q=1))
    stores: list[FailingFsync] = []

    def make(directory: Path, segment_bytes: int) -> FailingFsync:
        stores.append(FailingFsync(directory, segment_bytes, fail_on=3))
        return stores[-1]

    monkeypatch.setattr("execd.app.daemon.SegmentStore", make)
    daemon = Daemon(loaded, mode="replay", inputs=[source], ledger_dir=tmp_path / "ledger")
    with pytest.raises(BaseException) as caught:  # noqa: PT011 - an ExceptionGroup; its root cause is checked next
        await daemon.run()
    assert isinstance(root_cause(caught.value), LedgerIOError)
    assert stores[0].calls == 3, "nothing may be written after a failed fsync"
    # What was durably acknowledged before the failure verifies; the rest is a torn tail
    # or intact, never corruption.
    result = scan(tmp_path / "ledger", repair=True)
    assert result.records >= 2
