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


def recover(directory: Path, *, repair: bool = True, risk: Risk | None = None) -> RecoveredState:
    """Scan (and with ``repair``, mend a torn tail of) the ledger in ``directory``.

    With ``risk``, also rebuild its positions, pacing and trading state.
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
    if risk is not None:
        # Orders still open at the venue for all we know: held pending, as when sent.
        for order, _ in state.unresolved.values():
            risk.hold(order.venue, order.symbol, order.side, order.requested_quantity)
    return state
