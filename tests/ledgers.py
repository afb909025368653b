"""Small ledgers for the ledger tests: built on disk one durable record at a time, then
rewritten (edited, cut, reordered) as an attacker or a crash would."""

from __future__ import annotations

from pathlib import Path

import msgspec

from execd.ledger.record import LedgerChain
from execd.ledger.segments import SegmentStore, list_segments


def build(directory: Path, count: int, segment_bytes: int = 1 << 20) -> list[bytes]:
    store = SegmentStore(directory, segment_bytes)
    store.open()
    chain = LedgerChain()
    lines = []
    for n in range(count):
        line = chain.append("stop", n, msgspec.json.encode({"n": n, "text": "é\"x"}))
        store.write_durably(line)
        lines.append(line)
    store.close()
    return lines


def rewrite(directory: Path, lines: list[bytes]) -> None:
    paths = list_segments(directory)
    for path in paths[1:]:
        path.unlink()
    paths[0].write_bytes(b"".join(lines))
