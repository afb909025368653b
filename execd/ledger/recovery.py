"""What the daemon knows at start-up, rebuilt from the ledger alone.

The ledger is the only durable state. :func:`recover` scans it and folds every record
into a :class:`~execd.ledger.fold.Fold` (which intent ids have an outcome, how far
each input file was consumed, the logical time, the Risk Sentinel's positions, pacing
and trading state), then holds pending what live orders left open.
"""

from __future__ import annotations

from pathlib import Path

from execd.ledger import head
from execd.ledger.fold import Fold
from execd.ledger.scan import ScanResult, scan
from execd.ledger.segments import list_segments
from execd.ledger.snapshot import ChainEnd, Snapshot, take
from execd.model.errors import LedgerCorrupt, WitnessUnreadable
from execd.sentinel.risk import Risk


class RecoveredState(Fold):
    """The daemon's starting state, as the ledger records it: the fold, and where the
    chain ends."""

    def __init__(self, risk: Risk | None = None) -> None:
        super().__init__(risk)
        self.scan = ScanResult()
        # The ledger has records and no head witness beside it (deleted, or written
        # before witnesses existed): a cut end could not be noticed this time.
        self.head_missing = False
        # With checkpoints on: the fold as it stood before the holds, which the running
        # checkpointer starts from (app/checkpointer.py).
        self.unheld: Snapshot | None = None
        # The ledger's size (every segment) once recovered: where the next record goes.
        self.ledger_bytes = 0

    def end(self) -> ChainEnd:
        """Where the recovered chain ends, for a snapshot of this fold."""
        scanned = self.scan
        return ChainEnd(scanned.next_seq - 1, scanned.last_hash, scanned.records,
                        scanned.last_time, self.ledger_bytes)


def recover(directory: Path, *, repair: bool = True, risk: Risk | None = None,
            fold_key: str | None = None) -> RecoveredState:
    """Scan (and with ``repair``, mend a torn tail of) the ledger in ``directory``.

    With ``risk``, also rebuild its positions, pacing and trading state. With
    ``fold_key`` (checkpoints are on, under a config of that key), keep the fold as it
    is before the holds in ``unheld``.
    """
    state = RecoveredState(risk)
    try:
        expect = head.read(directory)
    except WitnessUnreadable as exc:
        raise LedgerCorrupt(
            f"{exc}; it is written only by execd: if you know why it is damaged, check the "
            "chain with `execd ledger verify --expect SEQ:HASH` against the last ledger.head "
            "logged, then remove it") from None
    state.scan = scan(directory, state.observe, repair=repair, expect=expect)
    state.head_missing = expect is None and state.scan.records > 0
    state.ledger_bytes = sum(path.stat().st_size for path in list_segments(directory))
    if fold_key is not None:
        state.unheld = take(state, state.end(), fold_key)
    if risk is not None:
        # Orders still open at the venue for all we know: held pending, as when sent.
        for order, _ in state.unresolved.values():
            risk.hold(order.venue, order.symbol, order.side, order.requested_quantity)
    return state
